/**
 * The Konfig SDK for JavaScript and TypeScript: read a namespace's resolved config with typed
 * getters, watch it change, start from a last-known-good file when the server is down.
 */
export { Konfig, USER_AGENT, type KonfigOptions, type ReadResult, type RetryPolicy } from "./client.js";
export { Config, type JsonValue } from "./config.js";
export { Watch, type ChangeListener, type ErrorListener, type WatchOptions } from "./watch.js";
export {
  Conflict,
  ConnectionError,
  Forbidden,
  KonfigError,
  MissingKey,
  NotFound,
  PayloadTooLarge,
  PreconditionFailed,
  RateLimited,
  ServerError,
  Unauthenticated,
  ValidationError,
  WrongType,
  type ErrorDetails,
} from "./errors.js";
