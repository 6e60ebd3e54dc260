import assert from "node:assert/strict";
import { mkdtemp, readdir, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { LastKnownGood } from "../cache.js";
import { Config, KonfigError, MissingKey, NotFound, RateLimited, ServerError, WrongType } from "../index.js";
import { errorFor, errorFromResponse } from "../errors.js";

const config = new Config("payments/production", { port: 8080, name: "api", on: true, tags: ["a"], nothing: null }, '"e1"');

test("typed getters answer the value of their type", () => {
  assert.equal(config.getNumber("port"), 8080);
  assert.equal(config.getString("name"), "api");
  assert.equal(config.getBoolean("on"), true);
  assert.deepEqual(config.getJSON("tags"), ["a"]);
  assert.equal(config.getJSON("nothing"), null);
  assert.deepEqual(config.keys().sort(), ["name", "nothing", "on", "port", "tags"]);
});

test("typed getters refuse another type and a missing key, unless given a fallback", () => {
  assert.throws(() => config.getString("port"), (e: unknown) => e instanceof WrongType && e.code === "WRONG_TYPE");
  assert.throws(() => config.getNumber("on"), WrongType);
  assert.throws(() => config.getBoolean("tags"), /tags is a array, not a boolean/);
  assert.throws(() => config.getNumber("absent"), (e: unknown) => e instanceof MissingKey && e.code === "MISSING_KEY");
  assert.equal(config.getNumber("absent", 5), 5);
  assert.equal(config.getString("absent", "x"), "x");
  assert.equal(config.getJSON("absent", { a: 1 }).a, 1);
  assert.throws(() => config.getJSON("absent"), MissingKey);
});

test("an error answer maps to the class of its code, a 5xx to ServerError", async () => {
  const body = JSON.stringify({ status: "error", error: { code: "NOT_FOUND", message: "no namespace named x", details: { a: 1 } } });
  const missing = await errorFromResponse(new Response(body, { status: 404 }));
  assert.ok(missing instanceof NotFound);
  assert.deepEqual([missing.code, missing.status, missing.message, missing.details], ["NOT_FOUND", 404, "no namespace named x", { a: 1 }]);
  const limited = await errorFromResponse(new Response("slow down", { status: 429, headers: { "Retry-After": "3" } }));
  assert.ok(limited instanceof RateLimited);
  assert.equal(limited.retryAfter, 3);
  const failed = await errorFromResponse(new Response("<html>bad gateway</html>", { status: 502, statusText: "Bad Gateway" }));
  assert.ok(failed instanceof ServerError);
  assert.equal(failed.message, "HTTP 502 Bad Gateway");
  const odd = errorFor("SOMETHING_NEW", "new");
  assert.ok(odd instanceof KonfigError && !(odd instanceof ServerError));
});

test("the last-known-good file is replaced whole, mode 0600, and keeps other namespaces", async () => {
  const dir = await mkdtemp(join(tmpdir(), "konfig-lkg-"));
  const file = new LastKnownGood(join(dir, "nested", "lkg.json"));
  assert.equal(await file.get("a"), undefined);
  await Promise.all([file.put("a", { x: 1 }, '"1"'), file.put("b", { y: 2 }, undefined)]);
  assert.deepEqual((await file.get("a"))?.value, { x: 1 });
  assert.equal((await file.get("a"))?.etag, '"1"');
  assert.deepEqual((await file.get("b"))?.value, { y: 2 });
  assert.equal((await stat(file.path)).mode & 0o777, 0o600);
  assert.deepEqual(await readdir(join(dir, "nested")), ["lkg.json"]);
  await writeFile(file.path, "not json");
  assert.equal(await file.get("a"), undefined); // unreadable: ignored, then replaced
  await file.put("a", { x: 3 }, undefined);
  assert.deepEqual((await file.get("a"))?.value, { x: 3 });
});
