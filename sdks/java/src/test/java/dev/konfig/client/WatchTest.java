package dev.konfig.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.OutputStream;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class WatchTest {
    /** The configs a watch's listener got, in order. */
    static final class Seen {
        final BlockingQueue<Config> configs = new LinkedBlockingQueue<>();
        final BlockingQueue<String> errors = new LinkedBlockingQueue<>();

        WatchOptions options() {
            return new WatchOptions()
                    .onChange((config, previous) -> configs.add(config))
                    .onError((error, retrying) -> errors.add(error.code() + (retrying ? " retrying" : " final")));
        }

        Config next() throws InterruptedException {
            Config config = configs.poll(10, TimeUnit.SECONDS);
            if (config == null) {
                throw new AssertionError("no config within 10 s");
            }
            return config;
        }
    }

    static String change(String etag, String config) {
        return "id: " + etag + "\nevent: change\ndata: {\"etag\": \"\\\"" + etag + "\\\"\", \"config\": " + config + "}\n\n";
    }

    @Test
    void serverSentEventsAreFollowedAcrossChunksCrlfAndCommentsAndA401EventEndsTheWatch() throws Exception {
        try (TestServer server = new TestServer((exchange, count) -> {
            OutputStream out = TestServer.stream(exchange);
            TestServer.event(out, "retry: 2000\n\n: ping\n\n");
            TestServer.event(out, change("e1", "{\"port\": 1}"));
            TestServer.event(out, "id: e2\r\nevent: change\r\ndata: {\"etag\": \"\\\"e2\\\"\", ");
            TestServer.event(out, "\"config\": {\"port\": 2}}\r\n\r\n");
            TestServer.event(out, "event: error\ndata: {\"code\": \"UNAUTHENTICATED\", \"message\": \"the token was revoked\"}\n\n");
        })) {
            Seen seen = new Seen();
            Watch watch = server.client().build().watch("payments/production", seen.options());
            assertEquals(1, seen.next().getInt("port"));
            Config second = seen.next();
            assertEquals(2, second.getInt("port"));
            assertEquals("\"e2\"", second.etag().orElseThrow());
            KonfigException.Unauthenticated ended = assertThrows(KonfigException.Unauthenticated.class, watch::await);
            assertEquals("the token was revoked", ended.getMessage());
            assertEquals(401, ended.status());
            assertEquals(List.of("UNAUTHENTICATED final"), List.copyOf(seen.errors));
            assertEquals(WatchOptions.Mode.SSE, watch.mode());
            assertEquals("text/event-stream", server.requests.get(0).header("Accept"));
            assertEquals("/api/v1/config/payments/production/events", server.requests.get(0).path());
        }
    }

    @Test
    void withNoEventStreamOnOfferAWatchLongPollsWithTheETag() throws Exception {
        try (TestServer server = new TestServer((exchange, count) -> {
            if (exchange.getRequestURI().getPath().endsWith("/events")) {
                TestServer.send(exchange, 404, "text/html", "<html>not here</html>"); // a proxy's page
            } else if (count == 2) {
                TestServer.json(exchange, 200, "{\"port\": 1}", "ETag", "\"e1\"");
            } else if (count == 3) {
                TestServer.send(exchange, 304, "application/json", "", "ETag", "\"e1\"");
            } else {
                TestServer.json(exchange, 200, "{\"port\": 2}", "ETag", "\"e2\"");
            }
        })) {
            Seen seen = new Seen();
            Watch watch = server.client().build().watch("a", seen.options().waitTime(Duration.ofSeconds(5)));
            assertEquals(1, seen.next().getInt("port"));
            assertEquals(2, seen.next().getInt("port"));
            watch.stop();
            watch.await(); // stopped: no error
            assertEquals(WatchOptions.Mode.POLL, watch.mode());
            assertNull(server.requests.get(1).header("If-None-Match"));
            assertEquals("\"e1\"", server.requests.get(2).header("If-None-Match"));
            assertEquals("wait=5", server.requests.get(2).query());
            assertTrue(seen.errors.isEmpty(), seen.errors::toString);
        }
    }

    @Test
    void aSilentStreamIsReopenedResumingFromTheLastEvent() throws Exception {
        try (TestServer server = new TestServer((exchange, count) -> {
            if (count == 1) {
                sleep(2_000); // no answer at all, for longer than the idle timeout
                return;
            }
            OutputStream out = TestServer.stream(exchange);
            if (count == 2) {
                TestServer.event(out, change("e1", "{\"port\": 1}"));
                sleep(2_000); // silent for longer than the idle timeout
            } else {
                TestServer.event(out, change("e2", "{\"port\": 2}"));
                sleep(2_000);
            }
        })) {
            Seen seen = new Seen();
            Watch watch = server.client().build().watch("a", seen.options().idleTimeout(Duration.ofMillis(300)));
            assertEquals(1, seen.next().getInt("port"));
            assertEquals(2, seen.next().getInt("port"));
            watch.stop();
            assertNull(server.requests.get(1).header("Last-Event-ID"));
            assertEquals("\"e1\"", server.requests.get(2).header("Last-Event-ID"));
            // The unanswered request and the silent stream, reported.
            assertEquals(List.of("INTERNAL retrying", "INTERNAL retrying"), List.copyOf(seen.errors));
        }
    }

    @Test
    void a429OnTheStreamIsWaitedOutAndTheWatchGoesOn() throws Exception {
        try (TestServer server = new TestServer((exchange, count) -> {
            if (count == 1) {
                TestServer.json(exchange, 429, TestServer.error("RATE_LIMITED", "slow down"), "Retry-After", "1");
                return;
            }
            OutputStream out = TestServer.stream(exchange);
            TestServer.event(out, change("e1", "{\"port\": 1}"));
            sleep(5_000);
        })) {
            Seen seen = new Seen();
            long started = System.nanoTime();
            Watch watch = server.client().build().watch("a", seen.options());
            assertEquals(1, seen.next().getInt("port"));
            assertTrue(System.nanoTime() - started >= 900_000_000L, "Retry-After was not waited out");
            assertEquals("RATE_LIMITED retrying", seen.errors.poll());
            watch.stop();
        }
    }

    @Test
    void aDeletedNamespaceEndsTheWatchAndStopFromAListenerEndsItQuietly() throws Exception {
        try (TestServer server = new TestServer((exchange, count) -> {
            OutputStream out = TestServer.stream(exchange);
            TestServer.event(out, change("e1", "{\"port\": 1}"));
            if (exchange.getRequestURI().getPath().contains("gone")) {
                TestServer.event(out, "event: deleted\ndata: {\"namespace\": \"gone\"}\n\n");
            }
            sleep(5_000);
        })) {
            Konfig konfig = server.client().build();
            Watch gone = konfig.watch("gone", (config, previous) -> { });
            KonfigException.NotFound deleted = assertThrows(KonfigException.NotFound.class, gone::await);
            assertEquals("namespace gone was deleted", deleted.getMessage());

            CountDownLatch called = new CountDownLatch(1);
            Watch[] holder = new Watch[1];
            CountDownLatch assigned = new CountDownLatch(1);
            Watch stopping = konfig.watch("a", (config, previous) -> {
                try {
                    assigned.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                holder[0].stop();
                called.countDown();
            });
            holder[0] = stopping;
            assigned.countDown();
            assertTrue(called.await(10, TimeUnit.SECONDS));
            stopping.done().get(10, TimeUnit.SECONDS); // completes normally
            assertFalse(stopping.done().isCompletedExceptionally());
            assertEquals(1, stopping.current().orElseThrow().getInt("port"));
        }
    }

    static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
