import { Config, type JsonValue } from "./config.js";
import type { LastKnownGood } from "./cache.js";
import {
  ConnectionError,
  KonfigError,
  RateLimited,
  ServerError,
  errorFromResponse,
  isObject,
} from "./errors.js";
import { Watch, type ChangeListener, type WatchOptions } from "./watch.js";

export const USER_AGENT = "konfig-javascript/0.1.0";

/** Retries for idempotent calls (reads): network errors and 5xx, never 4xx. */
export interface RetryPolicy {
  /** Attempts in all, the first included (default 3). */
  attempts: number;
  /** The pause before retry n is drawn from [0, min(capMs, baseMs * 2^n)] (default 200). */
  baseMs: number;
  /** Upper bound of one pause (default 5000). */
  capMs: number;
}

export interface KonfigOptions {
  /** The server, e.g. `https://konfig.example.com` (default: `KONFIG_URL`). */
  url?: string;
  /** An API token, `kfg_…` (default: `KONFIG_TOKEN`). */
  token?: string;
  /** Turns on the last-known-good file (Node only): saved on each read, used when unreachable. */
  cachePath?: string;
  /** Never fall back to the last-known-good file and never retry: fail at once. */
  failFast?: boolean;
  /** Time limit of one request that is not a long poll or a stream (default 10000 ms). */
  timeoutMs?: number;
  retry?: Partial<RetryPolicy>;
  /** The `fetch` to use (default: the platform's). */
  fetch?: typeof fetch;
  /** Names this process to the server's usage analytics (`X-Konfig-Instance`; default:
   * `KONFIG_INSTANCE`, else `HOSTNAME` and the process id, else a random id). */
  instance?: string;
}

/** What a read answered: a config, or "unchanged" for a conditional read. */
export type ReadResult = { changed: true; config: Config } | { changed: false };

/** The Konfig client: `new Konfig({url, token})` or `Konfig.fromEnv()`. */
export class Konfig {
  readonly url: string;
  readonly token: string | undefined;
  readonly failFast: boolean;
  readonly timeoutMs: number;
  readonly retry: RetryPolicy;
  readonly cachePath: string | undefined;
  readonly instance: string;
  private readonly fetcher: typeof fetch;
  private cache: Promise<LastKnownGood> | undefined;

  constructor(options: KonfigOptions = {}) {
    const env = environment();
    const url = options.url ?? env.KONFIG_URL;
    if (!url) throw new TypeError("Konfig needs a url: pass {url} or set KONFIG_URL");
    this.url = url.replace(/\/+$/, "");
    this.token = options.token ?? env.KONFIG_TOKEN;
    this.instance = options.instance ?? env.KONFIG_INSTANCE ?? defaultInstance(env);
    this.failFast = options.failFast ?? false;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.retry = { attempts: 3, baseMs: 200, capMs: 5_000, ...options.retry };
    this.cachePath = options.cachePath;
    this.fetcher = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /** A client configured from `KONFIG_URL` and `KONFIG_TOKEN`, with `options` on top. */
  static fromEnv(options: KonfigOptions = {}): Konfig {
    return new Konfig(options);
  }

  /**
   * The resolved config of namespace `name`. When the server cannot be reached (or answers
   * 5xx) and a last-known-good copy exists, that copy, with `stale` true and a warning;
   * with `failFast`, the error at once.
   */
  async get(name: string): Promise<Config> {
    try {
      const result = await this.read(name);
      if (!result.changed) throw new Error("unreachable: an unconditional read answered 304");
      return result.config;
    } catch (error) {
      const stale = await this.fallback(name, error);
      if (stale === undefined) throw error;
      return stale;
    }
  }

  /** Follow `name`: `listener` gets the current config, then each change (see `Watch`). */
  watch(name: string, listener?: ChangeListener, options: WatchOptions = {}): Watch {
    const watch = new Watch(this, name, options);
    if (listener) watch.onChange(listener);
    watch.start();
    return watch;
  }

  /**
   * One read of `name`: conditional when `etag` is given (a long poll as well with `waitSeconds`).
   * Saves what it read to the last-known-good file.
   */
  async read(
    name: string,
    options: { etag?: string | undefined; waitSeconds?: number; signal?: AbortSignal } = {},
  ): Promise<ReadResult> {
    const query = options.etag && options.waitSeconds ? `?wait=${options.waitSeconds}` : "";
    const headers: Record<string, string> = { Accept: "application/json" };
    if (options.etag) headers["If-None-Match"] = options.etag;
    const timeoutMs =
      options.etag && options.waitSeconds ? options.waitSeconds * 1000 + 15_000 : this.timeoutMs;
    const response = await this.send(this.configPath(name) + query, {
      headers,
      timeoutMs,
      signal: options.signal,
    });
    if (response.status === 304) return { changed: false };
    const values: unknown = await response.json();
    if (!isObject(values)) throw new ServerError(`${name}: the answer is not a JSON object`, { code: "INTERNAL" });
    const etag = response.headers.get("ETag") ?? undefined;
    await this.remember(name, values as Record<string, JsonValue>, etag);
    return { changed: true, config: new Config(name, values as Record<string, JsonValue>, etag) };
  }

  /** The URL path of `name`'s resolved config (its slashes stay slashes). */
  configPath(name: string): string {
    return `/api/v1/config/${name.split("/").map(encodeURIComponent).join("/")}`;
  }

  /** The headers every request carries. */
  headers(extra: Record<string, string> = {}): Record<string, string> {
    const headers: Record<string, string> = { ...extra };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    // Browsers refuse to set User-Agent; Node sends it.
    if (typeof window === "undefined") headers["User-Agent"] = USER_AGENT;
    // Who this is, for the server's usage analytics (which instance holds which revision).
    headers["X-Konfig-Instance"] = this.instance;
    headers["X-Konfig-SDK"] = USER_AGENT;
    return headers;
  }

  /** A GET (idempotent, so retried on network errors and 5xx unless `failFast`). */
  async send(
    path: string,
    options: { headers?: Record<string, string>; timeoutMs?: number; signal?: AbortSignal | undefined },
  ): Promise<Response> {
    const attempts = this.failFast ? 1 : Math.max(1, this.retry.attempts);
    for (let attempt = 1; ; attempt++) {
      let response: Response;
      try {
        response = await this.fetchOnce(path, options);
      } catch (error) {
        if (options.signal?.aborted || attempt >= attempts) throw error;
        await sleep(this.pause(attempt), options.signal);
        continue;
      }
      if (response.status >= 500 && attempt < attempts) {
        await response.body?.cancel();
        await sleep(this.pause(attempt), options.signal);
        continue;
      }
      if (response.status >= 400) throw await errorFromResponse(response);
      return response;
    }
  }

  /** One `fetch`, with the time limit; network failures become `ConnectionError`. */
  async fetchOnce(
    path: string,
    options: { headers?: Record<string, string>; timeoutMs?: number; signal?: AbortSignal | undefined },
  ): Promise<Response> {
    const limit = options.timeoutMs ?? this.timeoutMs; // 0: no limit (an event stream)
    const signals = limit > 0 ? [AbortSignal.timeout(limit)] : [];
    if (options.signal) signals.push(options.signal);
    try {
      return await this.fetcher(this.url + path, {
        headers: this.headers(options.headers),
        signal: AbortSignal.any(signals),
      });
    } catch (error) {
      if (options.signal?.aborted) throw error;
      const reason = describe(error);
      throw new ConnectionError(`cannot reach Konfig at ${this.url}: ${reason}`, {
        code: "CONNECTION_ERROR",
        cause: error,
      });
    }
  }

  /** The last-known-good copy of `name` when `error` allows falling back to it. */
  async fallback(name: string, error: unknown): Promise<Config | undefined> {
    if (this.failFast || this.cachePath === undefined) return undefined;
    if (!(error instanceof ConnectionError || error instanceof ServerError)) return undefined;
    const cached = await (await this.lastKnownGood()).get(name);
    if (cached === undefined) return undefined;
    const message =
      `Konfig is unreachable (${error.message}); using the last-known-good ${name} ` +
      `saved ${cached.savedAt.toISOString()} from ${this.cachePath}`;
    if (typeof process !== "undefined" && typeof process.emitWarning === "function") {
      process.emitWarning(message, { type: "KonfigStaleConfigWarning", code: "KONFIG_STALE" });
    } else {
      console.warn(message);
    }
    return new Config(name, cached.value, cached.etag, { stale: true, savedAt: cached.savedAt });
  }

  /** @internal Save what was read to the last-known-good file. */
  async remember(name: string, values: Record<string, JsonValue>, etag: string | undefined) {
    if (this.cachePath === undefined) return;
    await (await this.lastKnownGood()).put(name, values, etag);
  }

  private lastKnownGood(): Promise<LastKnownGood> {
    // Imported on first use: the module needs node:fs, which a browser build has not.
    this.cache ??= import("./cache.js").then(({ LastKnownGood }) => new LastKnownGood(this.cachePath as string));
    return this.cache;
  }

  private pause(retry: number): number {
    return Math.random() * Math.min(this.retry.capMs, this.retry.baseMs * 2 ** retry);
  }
}

/** Whether a watch should try again after `error` (network, 5xx, 429), rather than give up. */
export function transient(error: unknown): boolean {
  return error instanceof ConnectionError || error instanceof ServerError || error instanceof RateLimited;
}

/** A jittered exponential pause (ms) after `failures` consecutive failures: half fixed, half random. */
export function backoff(failures: number, baseMs = 500, capMs = 30_000): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, failures - 1));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error as { cause?: unknown }).cause;
    if (cause instanceof Error && cause.message) return cause.message;
    return error.name === "TimeoutError" ? "timed out" : error.message;
  }
  return String(error);
}

/** `HOSTNAME-pid` where there is a process (a pod's name in Kubernetes), else a random id. */
function defaultInstance(env: Record<string, string | undefined>): string {
  if (typeof process !== "undefined" && typeof process.pid === "number") {
    return `${env.HOSTNAME ?? "node"}-${process.pid}`;
  }
  return globalThis.crypto?.randomUUID?.() ?? `browser-${Math.random().toString(36).slice(2)}`;
}

function environment(): Record<string, string | undefined> {
  return typeof process !== "undefined" && process.env ? process.env : {};
}

export { KonfigError };
