import { MissingKey, WrongType } from "./errors.js";

/** A JSON value as the read path answers it. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** One resolved config: the values of a namespace merged over what it inherits. */
export class Config {
  /** The namespace this config was read for. */
  readonly namespace: string;
  /** Every key and its value, as the server resolved them. */
  readonly values: Readonly<Record<string, JsonValue>>;
  /** The server's ETag for this content (it changes exactly when the content does). */
  readonly etag: string | undefined;
  /** True when the server was unreachable and this came from the last-known-good file. */
  readonly stale: boolean;
  /** When this content was saved to the last-known-good file (for a stale config). */
  readonly savedAt: Date | undefined;

  constructor(
    namespace: string,
    values: Record<string, JsonValue>,
    etag: string | undefined,
    options: { stale?: boolean; savedAt?: Date } = {},
  ) {
    this.namespace = namespace;
    this.values = Object.freeze({ ...values });
    this.etag = etag;
    this.stale = options.stale ?? false;
    this.savedAt = options.savedAt;
  }

  /** The keys of the config. */
  keys(): string[] {
    return Object.keys(this.values);
  }

  /** Whether the config has `key`. */
  has(key: string): boolean {
    return Object.prototype.hasOwnProperty.call(this.values, key);
  }

  /** The string value of `key`; `fallback` when missing; a `WrongType` error for another type. */
  getString(key: string, fallback?: string): string {
    return this.typed(key, "string", fallback, (v): v is string => typeof v === "string");
  }

  /** The number value of `key`; `fallback` when missing; a `WrongType` error for another type. */
  getNumber(key: string, fallback?: number): number {
    return this.typed(key, "number", fallback, (v): v is number => typeof v === "number");
  }

  /** The boolean value of `key`; `fallback` when missing; a `WrongType` error for another type. */
  getBoolean(key: string, fallback?: boolean): boolean {
    return this.typed(key, "boolean", fallback, (v): v is boolean => typeof v === "boolean");
  }

  /** The value of `key` as JSON (any type); `fallback` when missing. */
  getJSON<T = JsonValue>(key: string, fallback?: T): T {
    if (!this.has(key)) {
      if (fallback !== undefined) return fallback;
      throw this.missing(key);
    }
    return this.values[key] as T;
  }

  private typed<T>(key: string, type: string, fallback: T | undefined, is: (v: unknown) => v is T): T {
    if (!this.has(key)) {
      if (fallback !== undefined) return fallback;
      throw this.missing(key);
    }
    const value = this.values[key];
    if (!is(value)) {
      const actual = value === null ? "null" : Array.isArray(value) ? "array" : typeof value;
      throw new WrongType(`${this.namespace}: ${key} is a ${actual}, not a ${type}`, {
        code: "WRONG_TYPE",
        details: { key, expected: type, actual },
      });
    }
    return value;
  }

  private missing(key: string): MissingKey {
    return new MissingKey(`${this.namespace} has no key ${key}`, {
      code: "MISSING_KEY",
      details: { key },
    });
  }
}
