package dev.konfig.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class KonfigTest {
    static final String RESOLVED = "{\"timeout\": 10, \"currency\": \"USD\"}";

    @Test
    void aReadSendsTheTokenAndAnswersTheResolvedConfig() throws IOException {
        try (TestServer server = new TestServer((exchange, count) ->
                TestServer.json(exchange, 200, RESOLVED, "ETag", "\"abc\""))) {
            Config config = server.client().build().get("payments/eu west");
            assertEquals(10, config.getInt("timeout"));
            assertEquals("\"abc\"", config.etag().orElseThrow());
            assertFalse(config.isStale());
            TestServer.Request request = server.requests.get(0);
            assertEquals("/api/v1/config/payments/eu%20west", request.path());
            assertEquals("Bearer kfg_test", request.header("Authorization"));
            assertEquals(Konfig.USER_AGENT, request.header("User-Agent"));
        }
    }

    @Test
    void anErrorAnswerMapsToTheClassOfItsCodeAndA5xxToServer() throws IOException {
        Map<Integer, String[]> answers = Map.of(
                1, new String[] {"401", TestServer.error("UNAUTHENTICATED", "the token was revoked")},
                2, new String[] {"403", TestServer.error("FORBIDDEN", "not yours")},
                3, new String[] {"404", "<html>a proxy's page</html>"},
                4, new String[] {"429", TestServer.error("RATE_LIMITED", "slow down")});
        try (TestServer server = new TestServer((exchange, count) -> {
            String[] answer = answers.get(count);
            TestServer.json(exchange, Integer.parseInt(answer[0]), answer[1], "Retry-After", "7");
        })) {
            Konfig konfig = server.client().build();
            KonfigException.Unauthenticated refused = assertThrows(KonfigException.Unauthenticated.class, () -> konfig.get("a"));
            assertEquals("UNAUTHENTICATED", refused.code());
            assertEquals(401, refused.status());
            assertEquals("the token was revoked", refused.getMessage());
            assertEquals(Map.of("namespace", "payments/production"), refused.details());
            assertEquals("FORBIDDEN", assertThrows(KonfigException.Forbidden.class, () -> konfig.get("a")).code());
            KonfigException.NotFound missing = assertThrows(KonfigException.NotFound.class, () -> konfig.get("a"));
            assertEquals("HTTP 404", missing.getMessage()); // not the error shape: the status tells
            KonfigException.RateLimited limited = assertThrows(KonfigException.RateLimited.class, () -> konfig.get("a"));
            assertEquals(Duration.ofSeconds(7), limited.retryAfter().orElseThrow());
            assertEquals(4, server.requests.size()); // a 4xx is never retried
        }
    }

    @Test
    void aRedirectIsNotFollowedSoTheTokenStaysWithTheServer() throws IOException {
        try (TestServer elsewhere = new TestServer((exchange, count) -> TestServer.json(exchange, 200, RESOLVED));
                TestServer server = new TestServer((exchange, count) -> TestServer.send(exchange, 302, "text/html", "",
                        "Location", elsewhere.url() + "/api/v1/config/a"))) {
            Konfig konfig = server.client().build();
            KonfigException redirected = assertThrows(KonfigException.class, () -> konfig.get("a"));
            assertEquals("REDIRECTED", redirected.code());
            assertEquals(302, redirected.status());
            assertTrue(redirected.getMessage().contains("set KONFIG_URL to the server itself"), redirected.getMessage());
            assertEquals(1, server.requests.size()); // not retried
            assertTrue(elsewhere.requests.isEmpty());
            KonfigException ended = assertThrows(KonfigException.class, () -> konfig.watch("a", (config, previous) -> { }).await());
            assertEquals("REDIRECTED", ended.code());
            assertTrue(elsewhere.requests.isEmpty());
        }
    }

    @Test
    void readsAreRetriedOn5xxThenAnswerAndFailFastDoesNotRetry() throws IOException {
        try (TestServer server = new TestServer((exchange, count) -> {
            if (count % 3 != 0) {
                TestServer.json(exchange, 503, TestServer.error("UNAVAILABLE", "starting"));
            } else {
                TestServer.json(exchange, 200, RESOLVED);
            }
        })) {
            assertEquals("USD", server.client().build().get("a").getString("currency"));
            assertEquals(3, server.requests.size());
            KonfigException.Server failed = assertThrows(KonfigException.Server.class,
                    () -> server.client().failFast(true).build().get("a"));
            assertEquals(503, failed.status());
            assertEquals(4, server.requests.size());
        }
    }

    @Test
    void theLastKnownGoodFileIsReplacedWholeMode0600AndKeepsOtherNamespaces(@TempDir Path dir) throws IOException {
        Path cache = dir.resolve("state").resolve("konfig.json");
        try (TestServer server = new TestServer((exchange, count) -> TestServer.json(exchange, 200,
                exchange.getRequestURI().getPath().endsWith("/a") ? RESOLVED : "{\"port\": 8080, \"rate\": 0.1}",
                "ETag", "\"" + count + "\""))) {
            Konfig konfig = server.client().cachePath(cache).build();
            konfig.get("a");
            konfig.get("b");
        }
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(cache)));
        try (Stream<Path> files = Files.list(cache.getParent())) {
            assertEquals(List.of("konfig.json"), files.map(p -> p.getFileName().toString()).collect(Collectors.toList()));
        }
        var saved = Json.MAPPER.readTree(cache.toFile());
        assertEquals(1, saved.get("version").asInt());
        assertEquals("{\"port\":8080,\"rate\":0.1}", saved.at("/configs/b/json/value").toString()); // exact numbers
        assertEquals("\"1\"", saved.at("/configs/a/json/etag").textValue());
        assertTrue(saved.at("/configs/a/json/saved_at").isNumber());
    }

    @Test
    void anUnreachableServerAnswersTheStaleCopyUnlessFailFast(@TempDir Path dir) throws IOException {
        Path cache = dir.resolve("konfig.json");
        String url;
        try (TestServer server = new TestServer((exchange, count) -> TestServer.json(exchange, 200, RESOLVED, "ETag", "\"e\""))) {
            url = server.url();
            server.client().cachePath(cache).build().get("payments/production");
        }
        Konfig.Builder down = new Konfig.Builder(Map.of("KONFIG_URL", url))
                .retry(new RetryPolicy(2, Duration.ofMillis(1), Duration.ofMillis(2)));
        Config stale = down.cachePath(cache).build().get("payments/production");
        assertTrue(stale.isStale());
        assertEquals("USD", stale.getString("currency"));
        assertEquals("\"e\"", stale.etag().orElseThrow());
        Instant savedAt = stale.savedAt().orElseThrow();
        assertTrue(Duration.between(savedAt, Instant.now()).abs().compareTo(Duration.ofMinutes(1)) < 0, savedAt::toString);
        KonfigException.Connection unreachable = assertThrows(KonfigException.Connection.class,
                () -> down.failFast(true).build().get("payments/production"));
        assertEquals("CONNECTION_ERROR", unreachable.code());
        assertEquals(0, unreachable.status());
        assertTrue(unreachable.getMessage().startsWith("cannot reach Konfig at " + url), unreachable.getMessage());
        // No copy of this one: the error.
        assertThrows(KonfigException.Connection.class, () -> down.failFast(false).build().get("payments/other"));
    }

    @Test
    void theEnvironmentConfiguresAClientAndBadOptionsAreRefused() throws IOException {
        int port;
        try (ServerSocket socket = new ServerSocket(0)) {
            port = socket.getLocalPort();
        }
        Konfig konfig = new Konfig.Builder(Map.of("KONFIG_URL", "http://127.0.0.1:" + port + "/", "KONFIG_TOKEN", "kfg_x")).build();
        assertEquals("http://127.0.0.1:" + port, konfig.url());
        assertThrows(KonfigException.Connection.class, () -> konfig.get("a"));
        IllegalArgumentException none = assertThrows(IllegalArgumentException.class, () -> new Konfig.Builder(Map.of()).build());
        assertTrue(none.getMessage().contains("KONFIG_URL"));
        assertThrows(IllegalArgumentException.class, () -> new Konfig.Builder(Map.of()).url("ftp://x").build());
        assertThrows(IllegalArgumentException.class, () -> new RetryPolicy(0, Duration.ZERO, Duration.ZERO));
    }

    @Test
    void reconnectPausesAreJitteredGrowAndAreCapped() {
        for (int failures = 1; failures <= 12; failures++) {
            double ceiling = Math.min(30_000, 500 * Math.pow(2, failures - 1));
            long pause = Konfig.backoff(failures).toMillis();
            assertTrue(pause >= ceiling / 2 - 1 && pause <= ceiling, failures + ": " + pause);
        }
        long distinct = Stream.generate(() -> Konfig.backoff(3)).limit(20).distinct().count();
        assertTrue(distinct > 1, "no jitter");
        assertNull(Konfig.errorFromResponse(500, java.net.http.HttpHeaders.of(Map.of(), (a, b) -> true), "")
                .details().get("x"));
        assertInstanceOf(KonfigException.Server.class,
                Konfig.errorFromResponse(502, java.net.http.HttpHeaders.of(Map.of(), (a, b) -> true), "<html>"));
    }
}
