/**
 * The last-known-good file: the configs a service last read, so it can start during an outage.
 *
 * The same JSON as the Python and Go SDKs write, `{"version": 1, "configs": {name: {"json":
 * {value, etag, saved_at}}}}`, so one file serves a service whatever its language. Every write
 * goes to a temporary file (mode 0600) in the same directory, then a rename puts it in place: a
 * reader, or a crash, never sees half a file.
 */
import { randomBytes } from "node:crypto";
import { mkdir, open, readFile, rename, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

import { isObject } from "./errors.js";
import type { JsonValue } from "./config.js";

export interface CachedConfig {
  value: Record<string, JsonValue>;
  etag: string | undefined;
  savedAt: Date;
}

type Entries = Record<string, Record<string, unknown>>;

export class LastKnownGood {
  readonly path: string;
  private writing: Promise<void> = Promise.resolve();

  constructor(path: string) {
    this.path = path;
  }

  /** The saved config of `name`, or undefined when there is none (or the file is unreadable). */
  async get(name: string): Promise<CachedConfig | undefined> {
    const entry = (await this.read())[name]?.json;
    if (!isObject(entry) || !isObject(entry.value)) return undefined;
    const etag = typeof entry.etag === "string" ? entry.etag : undefined;
    const savedAt = new Date(Number(entry.saved_at ?? 0) * 1000);
    return { value: entry.value as Record<string, JsonValue>, etag, savedAt };
  }

  /** Save `value` as the last-known-good config of `name` (writes are queued, never interleaved). */
  put(name: string, value: Record<string, JsonValue>, etag: string | undefined): Promise<void> {
    const write = async (): Promise<void> => {
      const configs = await this.read();
      configs[name] = { ...configs[name], json: { value, etag: etag ?? null, saved_at: Date.now() / 1000 } };
      await this.write({ version: 1, configs });
    };
    this.writing = this.writing.then(write, write);
    return this.writing;
  }

  private async read(): Promise<Entries> {
    let text: string;
    try {
      text = await readFile(this.path, "utf8");
    } catch {
      return {};
    }
    try {
      const content: unknown = JSON.parse(text);
      const configs = isObject(content) ? content.configs : undefined;
      return isObject(configs) ? (configs as Entries) : {};
    } catch {
      return {}; // a file that is not ours to read: the next write replaces it
    }
  }

  private async write(content: unknown): Promise<void> {
    const directory = dirname(this.path);
    await mkdir(directory, { recursive: true });
    const temp = join(directory, `.${basename(this.path)}.${randomBytes(6).toString("hex")}`);
    const file = await open(temp, "wx", 0o600);
    try {
      await file.writeFile(JSON.stringify(content), "utf8");
      await file.sync();
      await file.close();
      await rename(temp, this.path);
    } catch (error) {
      await file.close().catch(() => undefined);
      await unlink(temp).catch(() => undefined);
      throw error;
    }
  }
}
