#!/usr/bin/env node
/**
 * The conformance suite's driver (tests/sdks/ in the Konfig repository): one JSON line per
 * result on stdout, the same commands and output as the Go and Python drivers.
 *
 *   konfig-conformance read NS [--cache PATH] [--fail-fast]
 *   konfig-conformance get NS KEY string|number|boolean|json
 *   konfig-conformance watch NS COUNT [--mode auto|sse|poll] [--wait SECONDS] [--cache PATH]
 *
 * The server and token come from KONFIG_URL and KONFIG_TOKEN. A failure prints
 * {"error": {"code", "type", "status"}} and exits 1.
 */
import { Konfig, KonfigError, type Config } from "./index.js";

function print(line: unknown): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function shown(config: Config): Record<string, unknown> {
  return { config: config.values, stale: config.stale, etag: config.etag ?? null };
}

async function main(argv: string[]): Promise<number> {
  const positional: string[] = [];
  const flags: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "--fail-fast") flags["fail-fast"] = "1";
    else if (arg.startsWith("--")) flags[arg.slice(2)] = argv[++i] ?? "";
    else positional.push(arg);
  }
  const [command, name, ...rest] = positional;
  if (!command || !name) {
    process.stderr.write("usage: konfig-conformance read|get|watch NS ...\n");
    return 2;
  }
  const konfig = Konfig.fromEnv({
    cachePath: flags.cache,
    failFast: flags["fail-fast"] === "1",
  });
  if (command === "read") {
    print(shown(await konfig.get(name)));
  } else if (command === "get") {
    const [key, type] = rest as [string, string];
    const config = await konfig.get(name);
    const getters: Record<string, (key: string) => unknown> = {
      string: (k) => config.getString(k),
      number: (k) => config.getNumber(k),
      boolean: (k) => config.getBoolean(k),
      json: (k) => config.getJSON(k),
    };
    const getter = getters[type];
    if (!getter) throw new TypeError(`unknown type ${type}`);
    print({ value: getter(key) });
  } else if (command === "watch") {
    let remaining = Number(rest[0] ?? "1");
    const mode = (flags.mode ?? "auto") as "auto" | "sse" | "poll";
    const watch = konfig.watch(name, undefined, { mode, waitSeconds: Number(flags.wait ?? "30") });
    watch.onError((error, retrying) => {
      if (retrying) print({ retrying: { code: error.code, mode: watch.mode } });
    });
    watch.onChange((config) => {
      print({ ...shown(config), mode: watch.mode });
      if (--remaining <= 0) void watch.stop();
    });
    await watch.done;
  } else {
    process.stderr.write(`unknown command ${command}\n`);
    return 2;
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof KonfigError) {
      print({ error: { code: error.code, type: error.name, status: error.status ?? null, message: error.message } });
    } else {
      print({ error: { code: "DRIVER", type: String((error as Error)?.name), status: null, message: String(error) } });
    }
    process.exitCode = 1;
  },
);
