package dev.konfig.client;

import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.Flow;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * One request for a server-sent event stream. The HTTP client's threads hand its lines over a
 * queue to the watch's thread, which waits for each with the idle timeout and parses them into
 * events (the WHATWG rules; comments are heartbeats). Closing it closes the connection.
 */
final class EventStream implements AutoCloseable {
    /** One event: its type ({@code change}, {@code error}, {@code deleted}), last id and data. */
    record Event(String type, String id, String data) {}

    private enum Marker { OPENED, END }

    private record Ended(HttpResponse<String> response, Throwable error) {}

    private record Failed(Throwable error) {}

    private final Konfig client;
    private final String name;
    private final LinkedBlockingQueue<Object> queue = new LinkedBlockingQueue<>();
    private final Lines lines = new Lines(queue);
    private final CompletableFuture<HttpResponse<String>> exchange;
    private String id;

    EventStream(Konfig client, String name, HttpRequest request) {
        this.client = client;
        this.name = name;
        HttpResponse.BodyHandler<String> handler = info -> {
            String type = info.headers().firstValue("Content-Type").orElse("");
            if (info.statusCode() < 300 && type.startsWith("text/event-stream")) {
                queue.add(Marker.OPENED);
                return HttpResponse.BodySubscribers.fromLineSubscriber(lines, subscriber -> "", StandardCharsets.UTF_8, null);
            }
            return HttpResponse.BodySubscribers.ofString(StandardCharsets.UTF_8);
        };
        exchange = client.http().sendAsync(request, handler);
        exchange.whenComplete((response, error) -> queue.add(new Ended(response, error)));
    }

    /** Null once the stream is open; the whole answer when it is no stream (an error, a proxy's page). */
    HttpResponse<String> open(Duration timeout) throws InterruptedException {
        Object first = queue.poll(timeout.toMillis(), TimeUnit.MILLISECONDS);
        if (first == null) {
            throw new KonfigException.Server("INTERNAL", name + ": the event stream was not answered", 0, Map.of());
        }
        if (first instanceof Ended) {
            Ended ended = (Ended) first;
            if (ended.error != null) {
                throw client.connectionError(unwrap(ended.error));
            }
            return ended.response;
        }
        return null;
    }

    /** The next event; null when the server ended the stream (a restart, a shutdown). */
    Event next(Duration idleTimeout) throws InterruptedException {
        String type = "";
        List<String> data = new ArrayList<>();
        for (;;) {
            Object item = queue.poll(idleTimeout.toMillis(), TimeUnit.MILLISECONDS);
            if (item == null) {
                throw new KonfigException.Server("INTERNAL", name + ": the event stream went silent", 0, Map.of());
            }
            if (item instanceof Failed) {
                throw client.connectionError(((Failed) item).error);
            }
            if (item instanceof Ended && ((Ended) item).error != null) {
                throw client.connectionError(unwrap(((Ended) item).error));
            }
            if (item == Marker.END || item instanceof Ended) {
                return null;
            }
            String line = (String) item;
            if (line.isEmpty()) {
                if (!data.isEmpty()) {
                    return new Event(type.isEmpty() ? "message" : type, id, String.join("\n", data));
                }
                type = "";
                continue;
            }
            if (line.startsWith(":")) {
                continue; // a heartbeat: the wait above saw a live stream
            }
            int colon = line.indexOf(':');
            String field = colon < 0 ? line : line.substring(0, colon);
            String value = colon < 0 ? "" : line.substring(colon + 1);
            if (value.startsWith(" ")) {
                value = value.substring(1);
            }
            switch (field) {
                case "event" -> type = value;
                case "data" -> data.add(value);
                case "id" -> id = value.indexOf('\0') < 0 ? value : id;
                default -> { } // "retry": the watch's backoff decides
            }
        }
    }

    @Override
    public void close() {
        lines.cancel();
        exchange.cancel(true);
    }

    private static Throwable unwrap(Throwable error) {
        return error instanceof CompletionException && error.getCause() != null ? error.getCause() : error;
    }

    /** Puts a stream's lines, its end or its failure on the queue. */
    private static final class Lines implements Flow.Subscriber<String> {
        private final LinkedBlockingQueue<Object> queue;
        private volatile Flow.Subscription subscription;
        private volatile boolean cancelled;

        Lines(LinkedBlockingQueue<Object> queue) {
            this.queue = queue;
        }

        @Override
        public void onSubscribe(Flow.Subscription subscription) {
            this.subscription = subscription;
            if (cancelled) {
                subscription.cancel();
            } else {
                subscription.request(Long.MAX_VALUE);
            }
        }

        @Override
        public void onNext(String line) {
            queue.add(line);
        }

        @Override
        public void onError(Throwable error) {
            queue.add(new Failed(error));
        }

        @Override
        public void onComplete() {
            queue.add(Marker.END);
        }

        void cancel() {
            cancelled = true;
            Flow.Subscription current = subscription;
            if (current != null) {
                current.cancel();
            }
        }
    }
}
