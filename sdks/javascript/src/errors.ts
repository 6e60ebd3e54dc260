/**
 * One error tree, mapped back from the server's error shape
 * `{"status": "error", "error": {"code", "message", "details"}}`.
 */

export type ErrorDetails = Record<string, unknown>;

export interface KonfigErrorOptions {
  code: string;
  status?: number | undefined;
  details?: ErrorDetails | undefined;
  cause?: unknown;
}

/** Base of every error the SDK throws: `code` is the server's error code. */
export class KonfigError extends Error {
  readonly code: string;
  readonly status: number | undefined;
  readonly details: ErrorDetails;

  constructor(message: string, options: KonfigErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = options.code;
    this.status = options.status;
    this.details = options.details ?? {};
  }
}

/** 422: the request or a value failed validation; `details` names the rule. */
export class ValidationError extends KonfigError {}
/** 401: no token, or an expired, revoked or wrong one. */
export class Unauthenticated extends KonfigError {}
/** 403: the token's scopes do not allow this. */
export class Forbidden extends KonfigError {}
/** 404: no such namespace in your tenant (or it was deleted while watched). */
export class NotFound extends KonfigError {}
/** 409: the object exists already, or the change clashes with the current state. */
export class Conflict extends KonfigError {}
/** 412: `If-Match` named a version that is no longer current. */
export class PreconditionFailed extends KonfigError {}
/** 413: the body is over the server's size limit. */
export class PayloadTooLarge extends KonfigError {}

/** 429: slow down; `retryAfter` is the server's hint in seconds, when it gave one. */
export class RateLimited extends KonfigError {
  readonly retryAfter: number | undefined;

  constructor(message: string, options: KonfigErrorOptions & { retryAfter?: number | undefined }) {
    super(message, options);
    this.retryAfter = options.retryAfter;
  }
}

/** 5xx: the server failed or is unavailable. */
export class ServerError extends KonfigError {}
/** The server could not be reached (refused, timed out, DNS, TLS). */
export class ConnectionError extends KonfigError {}
/** A typed getter found no such key in the config (and was given no default). */
export class MissingKey extends KonfigError {}
/** A typed getter found a value of another type than it was asked for. */
export class WrongType extends KonfigError {}

type ErrorClass = new (message: string, options: KonfigErrorOptions) => KonfigError;

const BY_CODE: Record<string, ErrorClass> = {
  VALIDATION_ERROR: ValidationError,
  UNAUTHENTICATED: Unauthenticated,
  FORBIDDEN: Forbidden,
  NOT_FOUND: NotFound,
  CONFLICT: Conflict,
  PRECONDITION_FAILED: PreconditionFailed,
  PAYLOAD_TOO_LARGE: PayloadTooLarge,
  RATE_LIMITED: RateLimited,
};

const BY_STATUS: Record<number, string> = {
  401: "UNAUTHENTICATED",
  403: "FORBIDDEN",
  404: "NOT_FOUND",
  409: "CONFLICT",
  412: "PRECONDITION_FAILED",
  413: "PAYLOAD_TOO_LARGE",
  422: "VALIDATION_ERROR",
  429: "RATE_LIMITED",
};

/** The error for a code and message, as an answer's body or an `error` event carries them. */
export function errorFor(
  code: string,
  message: string,
  status?: number,
  details?: ErrorDetails,
  retryAfter?: number,
): KonfigError {
  if (status !== undefined && status >= 500) {
    return new ServerError(message, { code: code || "INTERNAL", status, details });
  }
  if (code === "RATE_LIMITED") {
    return new RateLimited(message, { code, status, details, retryAfter });
  }
  const cls = BY_CODE[code] ?? (code === "INTERNAL" ? ServerError : KonfigError);
  return new cls(message, { code: code || "ERROR", status, details });
}

/** The error an HTTP answer of status >= 400 stands for, whatever its body. */
export async function errorFromResponse(response: Response): Promise<KonfigError> {
  let code = "";
  let message = "";
  let details: ErrorDetails = {};
  try {
    const body: unknown = await response.json();
    const error = isObject(body) ? body.error : undefined;
    if (isObject(error)) {
      code = typeof error.code === "string" ? error.code : "";
      message = typeof error.message === "string" ? error.message : "";
      details = isObject(error.details) ? error.details : {};
    }
  } catch {
    // Not the error shape (a proxy's page): the status alone tells.
  }
  const status = response.status;
  code ||= BY_STATUS[status] ?? (status >= 500 ? "INTERNAL" : "ERROR");
  message ||= `HTTP ${status} ${response.statusText}`.trim();
  const header = response.headers.get("Retry-After");
  const retryAfter = header !== null && Number.isFinite(Number(header)) ? Number(header) : undefined;
  return errorFor(code, message, status, details, retryAfter);
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
