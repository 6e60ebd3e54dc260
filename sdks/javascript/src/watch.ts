import type { Konfig } from "./client.js";
import { backoff, sleep, transient } from "./client.js";
import { Config, type JsonValue } from "./config.js";
import {
  KonfigError,
  NotFound,
  RateLimited,
  ServerError,
  errorFor,
  errorFromResponse,
  isObject,
} from "./errors.js";

/** Called with the new config and the one it replaces (undefined the first time). */
export type ChangeListener = (config: Config, previous: Config | undefined) => void | Promise<void>;
/** Called on every failure; `retrying` is false for the last one (the watch has ended). */
export type ErrorListener = (error: KonfigError, retrying: boolean) => void;

export interface WatchOptions {
  /** `auto` (default): server-sent events, long polls if the stream cannot be had. */
  mode?: "auto" | "sse" | "poll";
  /** How long one long poll waits for a change (default 30 s). */
  waitSeconds?: number;
  /** An event stream silent this long (no event, no heartbeat) is dropped and reopened (default 45 s). */
  idleTimeoutMs?: number;
}

/**
 * A namespace followed by a client: the current config now, then every change.
 *
 * It streams server-sent events and resumes them with `Last-Event-ID` (the last ETag seen), so
 * no change is missed across reconnects; where no stream can be had it long-polls with the
 * ETag instead. Network errors, 5xx and 429 are retried with jittered exponential backoff;
 * a revoked token, a lost permission or a deleted namespace end the watch with that error.
 */
export class Watch {
  readonly name: string;
  /** Ends when `stop()` is called; rejects with the error that ended the watch otherwise. */
  readonly done: Promise<void>;
  /** The latest config seen (`stale` when it came from the last-known-good file). */
  current: Config | undefined;
  /** `sse` or `poll`: how the watch follows changes right now. */
  mode: "sse" | "poll";

  private readonly client: Konfig;
  private readonly options: Required<WatchOptions>;
  private readonly controller = new AbortController();
  private readonly changeListeners: ChangeListener[] = [];
  private readonly errorListeners: ErrorListener[] = [];
  private failures = 0;
  private resolveDone!: () => void;
  private rejectDone!: (error: KonfigError) => void;

  constructor(client: Konfig, name: string, options: WatchOptions = {}) {
    this.client = client;
    this.name = name;
    this.options = { mode: "auto", waitSeconds: 30, idleTimeoutMs: 45_000, ...options };
    this.mode = this.options.mode === "poll" ? "poll" : "sse";
    this.done = new Promise<void>((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    this.done.catch(() => undefined); // a watch nobody awaits must not crash the process
  }

  /** Add a change listener; it is called at once with the current config if there is one. */
  onChange(listener: ChangeListener): this {
    this.changeListeners.push(listener);
    return this;
  }

  /** Add an error listener (connection lost, token revoked, …). */
  onError(listener: ErrorListener): this {
    this.errorListeners.push(listener);
    return this;
  }

  /** Stop following: closes the stream or long poll; `done` resolves. */
  stop(): Promise<void> {
    this.controller.abort();
    return this.done;
  }

  /** @internal Started by `Konfig.watch`. */
  start(): void {
    this.run().then(this.resolveDone, (error: unknown) => {
      this.rejectDone(error instanceof KonfigError ? error : wrap(error));
    });
  }

  private get stopped(): boolean {
    return this.controller.signal.aborted;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let pause: number;
      try {
        const streamed = this.mode === "sse" ? await this.stream() : await this.poll();
        if (!streamed) {
          this.mode = "poll"; // no event stream here (a proxy, an old server): long polls
          continue;
        }
        pause = backoff(1); // the server closed the stream (a restart): reconnect soon
      } catch (error) {
        if (this.stopped) break;
        const failure = error instanceof KonfigError ? error : wrap(error);
        if (!transient(failure) || (this.client.failFast && this.current === undefined)) {
          this.report(failure, false);
          throw failure;
        }
        this.failures += 1;
        if (this.current === undefined) {
          const stale = await this.client.fallback(this.name, failure);
          if (stale !== undefined) await this.emit(stale);
        }
        this.report(failure, true);
        pause = backoff(this.failures);
        if (failure instanceof RateLimited && failure.retryAfter !== undefined) {
          pause = Math.max(pause, failure.retryAfter * 1000);
        }
      }
      await sleep(pause, this.controller.signal);
    }
  }

  /** Long polls until stopped; throws what fails. */
  private async poll(): Promise<boolean> {
    while (!this.stopped) {
      const etag = this.current?.stale ? undefined : this.current?.etag;
      const result = await this.client.read(this.name, {
        etag,
        waitSeconds: this.options.waitSeconds,
        signal: this.controller.signal,
      });
      this.failures = 0;
      if (result.changed) await this.emit(result.config);
    }
    return true;
  }

  /** One event stream, to its end; false when the server offers no stream. */
  private async stream(): Promise<boolean> {
    const idle = new AbortController();
    const signal = AbortSignal.any([this.controller.signal, idle.signal]);
    const headers: Record<string, string> = { Accept: "text/event-stream" };
    if (this.current?.etag && !this.current.stale) headers["Last-Event-ID"] = this.current.etag;
    const response = await this.client.fetchOnce(`${this.client.configPath(this.name)}/events`, {
      headers,
      timeoutMs: 0,
      signal,
    });
    const type = response.headers.get("Content-Type") ?? "";
    // Konfig's own refusals are JSON; a proxy's or an old server's page for the path is not.
    const foreign = NO_STREAM.has(response.status) && !type.startsWith("application/json");
    if (response.status >= 400 && !foreign) {
      throw await errorFromResponse(response);
    }
    if (!type.startsWith("text/event-stream") || response.body === null) {
      await response.body?.cancel();
      if (this.options.mode === "sse") {
        throw new ServerError(`${this.name}: no event stream (${type || "no content type"})`, {
          code: "INTERNAL",
          status: response.status,
        });
      }
      return false;
    }
    this.failures = 0;
    let timer = setTimeout(() => idle.abort(), this.options.idleTimeoutMs);
    try {
      for await (const event of events(response.body)) {
        clearTimeout(timer);
        timer = setTimeout(() => idle.abort(), this.options.idleTimeoutMs);
        await this.dispatch(event);
      }
    } catch (error) {
      if (idle.signal.aborted && !this.stopped) {
        throw errorFor("INTERNAL", `${this.name}: the event stream went silent`, 503);
      }
      throw error;
    } finally {
      clearTimeout(timer);
    }
    return true;
  }

  private async dispatch(event: ServerSentEvent): Promise<void> {
    if (event.type === "change") {
      const body: unknown = JSON.parse(event.data);
      if (!isObject(body) || !isObject(body.config)) return;
      const etag = typeof body.etag === "string" ? body.etag : event.id;
      const values = body.config as Record<string, JsonValue>;
      const config = new Config(this.name, values, etag);
      await this.client.remember(this.name, values, etag);
      await this.emit(config);
    } else if (event.type === "error") {
      const body: unknown = JSON.parse(event.data);
      const code = isObject(body) && typeof body.code === "string" ? body.code : "INTERNAL";
      const message = isObject(body) && typeof body.message === "string" ? body.message : "stream error";
      throw errorFor(code, message, code === "INTERNAL" ? 500 : undefined);
    } else if (event.type === "deleted") {
      throw new NotFound(`namespace ${this.name} was deleted`, { code: "NOT_FOUND", status: 404 });
    }
  }

  private async emit(config: Config): Promise<void> {
    const previous = this.current;
    if (previous !== undefined && !previous.stale && !config.stale && previous.etag === config.etag) {
      return; // the same content again (a reconnect that raced a change)
    }
    this.current = config;
    for (const listener of this.changeListeners) {
      try {
        await listener(config, previous);
      } catch (error) {
        console.error(`konfig: a change listener of ${this.name} failed:`, error);
      }
    }
  }

  private report(error: KonfigError, retrying: boolean): void {
    for (const listener of this.errorListeners) {
      try {
        listener(error, retrying);
      } catch (failure) {
        console.error(`konfig: an error listener of ${this.name} failed:`, failure);
      }
    }
  }
}

/** Statuses that, without Konfig's JSON error body, mean "no event stream here". */
const NO_STREAM = new Set([404, 405, 406, 501]);

interface ServerSentEvent {
  type: string;
  data: string;
  id: string | undefined;
}

/** The events of a `text/event-stream` body (the WHATWG parsing rules; comments are heartbeats). */
export async function* events(body: ReadableStream<Uint8Array>): AsyncGenerator<ServerSentEvent> {
  const decoder = new TextDecoder();
  let buffer = "";
  let type = "";
  let data: string[] = [];
  let id: string | undefined;
  const reader = body.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + (buffer.startsWith("\r\n", end) ? 2 : 1));
        if (line === "") {
          if (data.length > 0) yield { type: type || "message", data: data.join("\n"), id };
          type = "";
          data = [];
          continue;
        }
        if (line.startsWith(":")) {
          yield { type: "heartbeat", data: "", id }; // lets the idle timer see a live stream
          continue;
        }
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "event") type = value;
        else if (field === "data") data.push(value);
        else if (field === "id" && !value.includes("\0")) id = value;
      }
    }
  } finally {
    reader.releaseLock();
  }
}

function wrap(error: unknown): KonfigError {
  const message = error instanceof Error ? error.message : String(error);
  return errorFor("INTERNAL", message, 500);
}
