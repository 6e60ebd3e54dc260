import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";

import { Config, ConnectionError, Konfig, Unauthenticated } from "../index.js";
import { events } from "../watch.js";

type Handler = (request: IncomingMessage, response: ServerResponse) => void;

async function serve(handler: Handler): Promise<{ url: string; close: () => Promise<void> }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

function stream(text: string): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  return new ReadableStream({
    start(controller) {
      for (let i = 0; i < bytes.length; i += 7) controller.enqueue(bytes.slice(i, i + 7)); // split anywhere
      controller.close();
    },
  });
}

test("server-sent events are parsed across chunks, CRLF and comments included", async () => {
  const seen = [];
  for await (const event of events(stream('retry: 2000\n\n: ping\r\nid: e1\r\nevent: change\r\ndata: {"a":\ndata: 1}\r\n\r\ndata: x\n\n'))) {
    seen.push(event);
  }
  assert.deepEqual(seen, [
    { type: "heartbeat", data: "", id: undefined },
    { type: "change", data: '{"a":\n1}', id: "e1" },
    { type: "message", data: "x", id: "e1" },
  ]);
});

test("with no event stream on offer, a watch falls back to long polls with the ETag", async () => {
  const seen: string[] = [];
  let version = 1;
  const server = await serve((request, response) => {
    seen.push(`${request.url} ${request.headers["if-none-match"] ?? "-"}`);
    if (request.url?.endsWith("/events")) {
      response.writeHead(404, { "Content-Type": "text/html" }).end("<h1>no</h1>"); // a proxy's page
    } else if (request.headers["if-none-match"] === `"v${version}"`) {
      version += 1; // the long poll is answered by a change
      response.writeHead(200, { ETag: `"v${version}"`, "Content-Type": "application/json" }).end(JSON.stringify({ v: version }));
    } else {
      response.writeHead(200, { ETag: `"v${version}"`, "Content-Type": "application/json" }).end(JSON.stringify({ v: version }));
    }
  });
  try {
    const konfig = new Konfig({ url: server.url, token: "kfg_x" });
    const configs: Config[] = [];
    const watch = konfig.watch("a/b", (config) => {
      configs.push(config);
      if (configs.length === 2) void watch.stop();
    }, { waitSeconds: 5 });
    await watch.done;
    assert.deepEqual(configs.map((c) => c.getNumber("v")), [1, 2]);
    assert.equal(watch.mode, "poll");
  } finally {
    await server.close();
  }
});

test("a 401 ends a watch with the error of its code", async () => {
  const server = await serve((_request, response) => {
    response.writeHead(401, { "Content-Type": "application/json" });
    response.end(JSON.stringify({ status: "error", error: { code: "UNAUTHENTICATED", message: "Invalid API token", details: {} } }));
  });
  try {
    const konfig = new Konfig({ url: server.url, token: "kfg_revoked" });
    const errors: [string, boolean][] = [];
    const watch = konfig.watch("a/b").onError((error, retrying) => errors.push([error.code, retrying]));
    await assert.rejects(watch.done, Unauthenticated);
    assert.deepEqual(errors, [["UNAUTHENTICATED", false]]);
  } finally {
    await server.close();
  }
});

test("reads are retried on 5xx, then answer; fail-fast does not retry", async () => {
  let calls = 0;
  const server = await serve((_request, response) => {
    calls += 1;
    if (calls % 2 === 1) response.writeHead(503).end();
    else response.writeHead(200, { ETag: '"e"', "Content-Type": "application/json" }).end('{"ok": true}');
  });
  try {
    const konfig = new Konfig({ url: server.url, retry: { baseMs: 1, capMs: 5 } });
    assert.equal((await konfig.get("a")).getBoolean("ok"), true);
    assert.equal(calls, 2);
    const fast = new Konfig({ url: server.url, failFast: true });
    await assert.rejects(fast.get("a"), (e: unknown) => e instanceof Error && (e as { code?: string }).code === "INTERNAL");
    assert.equal(calls, 3);
  } finally {
    await server.close();
  }
});

test("an unreachable server is a ConnectionError; KONFIG_URL and KONFIG_TOKEN configure a client", async () => {
  const server = await serve(() => undefined);
  const url = server.url;
  await server.close();
  process.env.KONFIG_URL = `${url}/`;
  process.env.KONFIG_TOKEN = "kfg_env";
  try {
    const konfig = Konfig.fromEnv({ retry: { attempts: 2, baseMs: 1, capMs: 2 } });
    assert.equal(konfig.url, url);
    assert.equal(konfig.token, "kfg_env");
    await assert.rejects(konfig.get("a/b"), (e: unknown) => e instanceof ConnectionError && e.code === "CONNECTION_ERROR");
  } finally {
    delete process.env.KONFIG_URL;
    delete process.env.KONFIG_TOKEN;
  }
  assert.throws(() => new Konfig(), /KONFIG_URL/);
});

test("a silent event stream is dropped and reopened, resuming from the last event", async () => {
  const lastEventIds: (string | undefined)[] = [];
  const server = await serve((request, response) => {
    lastEventIds.push(request.headers["last-event-id"] as string | undefined);
    response.writeHead(200, { "Content-Type": "text/event-stream" });
    if (lastEventIds.length === 1) {
      response.write('id: e1\nevent: change\ndata: {"etag": "\\"e1\\"", "config": {"n": 1}}\n\n');
    } else {
      response.write('id: e2\nevent: change\ndata: {"etag": "\\"e2\\"", "config": {"n": 2}}\n\n');
    }
    // …then nothing: no event, no heartbeat.
  });
  try {
    const konfig = new Konfig({ url: server.url });
    const codes: string[] = [];
    const values: number[] = [];
    const watch = konfig.watch("a/b", (config) => {
      values.push(config.getNumber("n"));
      if (values.length === 2) void watch.stop();
    }, { idleTimeoutMs: 200 });
    watch.onError((error) => codes.push(error.code));
    await watch.done;
    assert.deepEqual(values, [1, 2]);
    assert.deepEqual(codes, ["INTERNAL"]); // "the event stream went silent"
    assert.deepEqual(lastEventIds, [undefined, '"e1"']);
  } finally {
    await server.close();
  }
});

test("reconnect pauses are jittered, grow and are capped", async () => {
  const { backoff } = await import("../client.js");
  const first = Array.from({ length: 50 }, () => backoff(1));
  assert.ok(first.every((p) => p >= 250 && p <= 500));
  assert.ok(new Set(first).size > 40);
  assert.ok(Array.from({ length: 50 }, () => backoff(30)).every((p) => p >= 15_000 && p <= 30_000));
});

test("a 429 on the stream is waited out (Retry-After) and the watch goes on", async () => {
  let calls = 0;
  const server = await serve((_request, response) => {
    calls += 1;
    if (calls === 1) {
      response.writeHead(429, { "Content-Type": "application/json", "Retry-After": "0" });
      response.end(JSON.stringify({ status: "error", error: { code: "RATE_LIMITED", message: "slow down", details: {} } }));
      return;
    }
    response.writeHead(200, { "Content-Type": "text/event-stream" });
    response.write('id: e1\nevent: change\ndata: {"etag": "\\"e1\\"", "config": {"n": 1}}\n\n');
  });
  try {
    const konfig = new Konfig({ url: server.url });
    const failures: [string, boolean][] = [];
    const watch = konfig.watch("a/b", () => void watch.stop());
    watch.onError((error, retrying) => failures.push([error.code, retrying]));
    await watch.done;
    assert.deepEqual(failures, [["RATE_LIMITED", true]]);
    assert.equal(watch.current?.getNumber("n"), 1);
  } finally {
    await server.close();
  }
});
