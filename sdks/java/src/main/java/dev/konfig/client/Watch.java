package dev.konfig.client;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;

/**
 * A namespace followed by a client: the current config, then every change, on the watch's own
 * daemon thread.
 *
 * <p>It streams server-sent events and resumes them with {@code Last-Event-ID} (the last ETag
 * seen), so no change is missed across reconnects; where no stream can be had (a proxy's 404
 * page, a wrong content type) it long-polls with {@code If-None-Match} instead. Network errors,
 * 5xx and 429 are retried with jittered exponential backoff ({@code Retry-After} honoured); a
 * revoked token, a lost permission or a deleted namespace end the watch with that error.
 */
public final class Watch {
    /** Called with the new config and the one it replaces (null the first time). */
    @FunctionalInterface
    public interface ChangeListener {
        void onChange(Config config, Config previous);
    }

    /** Called on every failure; {@code retrying} is false for the one that ends the watch. */
    @FunctionalInterface
    public interface ErrorListener {
        void onError(KonfigException error, boolean retrying);
    }

    /** Statuses that, without Konfig's JSON error body, mean "no event stream here". */
    private static final Set<Integer> NO_STREAM = Set.of(404, 405, 406, 501);

    private final Konfig client;
    private final String name;
    private final WatchOptions options;
    private final Thread thread;
    private final CompletableFuture<Void> done = new CompletableFuture<>();
    private volatile Config current;
    private volatile WatchOptions.Mode mode;
    private volatile boolean stopped;
    private int failures; // in a row; the watch thread's own

    Watch(Konfig client, String name, WatchOptions options) {
        this.client = client;
        this.name = name;
        this.options = options;
        this.mode = options.mode() == WatchOptions.Mode.POLL ? WatchOptions.Mode.POLL : WatchOptions.Mode.SSE;
        this.thread = new Thread(this::run, "konfig-watch " + name);
        this.thread.setDaemon(true);
    }

    void start() {
        thread.start();
    }

    /** The namespace followed. */
    public String name() {
        return name;
    }

    /** The latest config seen ({@linkplain Config#isStale() stale} when it came from the last-known-good file). */
    public Optional<Config> current() {
        return Optional.ofNullable(current);
    }

    /** How the watch follows changes right now: {@code SSE} or {@code POLL}. */
    public WatchOptions.Mode mode() {
        return mode;
    }

    /** Completes when the watch has stopped; exceptionally with the {@link KonfigException} that ended it. */
    public CompletableFuture<Void> done() {
        return done.copy();
    }

    /** Blocks until the watch ends: returns when stopped, throws the error that ended it otherwise. */
    public void await() {
        try {
            done.join();
        } catch (CompletionException e) {
            throw (KonfigException) e.getCause();
        }
    }

    /** Stops following (the stream or long poll is closed) and waits until the watch has ended. */
    public void stop() {
        stopped = true;
        if (Thread.currentThread() == thread) {
            return; // from a listener: the loop ends when it returns
        }
        thread.interrupt();
        boolean interrupted = false;
        while (thread.isAlive()) {
            try {
                thread.join();
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    private void run() {
        try {
            follow();
            done.complete(null);
        } catch (KonfigException e) {
            done.completeExceptionally(e);
        } catch (RuntimeException e) {
            KonfigException failure = new KonfigException("INTERNAL", name + ": the watch failed: " + Konfig.describe(e), 0, Map.of(), e);
            report(failure, false);
            done.completeExceptionally(failure);
        } finally {
            if (!done.isDone()) { // an Error (a listener's AssertionError, say): await() must not hang
                done.completeExceptionally(new KonfigException("INTERNAL", name + ": the watch failed", 0, Map.of(), null));
            }
        }
    }

    private void follow() {
        while (!stopped) {
            Duration pause;
            try {
                boolean streamed = mode == WatchOptions.Mode.SSE ? stream() : poll();
                if (stopped) {
                    break;
                }
                if (!streamed) {
                    mode = WatchOptions.Mode.POLL; // no event stream here (a proxy, an old server): long polls
                    continue;
                }
                pause = Konfig.backoff(1); // the server closed the stream (a restart): reconnect soon
            } catch (KonfigException failure) {
                if (stopped) {
                    break;
                }
                if (!failure.isTransient() || (client.failFast() && current == null)) {
                    report(failure, false);
                    throw failure;
                }
                failures++;
                if (current == null) {
                    Config stale = client.fallback(name, failure);
                    if (stale != null) {
                        emit(stale);
                    }
                }
                report(failure, true);
                pause = Konfig.backoff(failures);
                if (failure instanceof KonfigException.RateLimited) {
                    Duration hint = ((KonfigException.RateLimited) failure).retryAfter().orElse(Duration.ZERO);
                    pause = hint.compareTo(pause) > 0 ? hint : pause;
                }
            }
            if (stopped || !Konfig.sleep(pause)) {
                break;
            }
        }
    }

    /** Long polls until stopped; throws what fails. */
    private boolean poll() {
        while (!stopped) {
            Config seen = current;
            String etag = seen != null && !seen.isStale() ? seen.etag().orElse(null) : null;
            Config config = client.read(name, etag, options.waitTime());
            failures = 0;
            if (config != null) {
                emit(config);
            }
        }
        return true;
    }

    /** One event stream, to its end; false when the server offers no stream. */
    private boolean stream() {
        Map<String, String> headers = new HashMap<>(Map.of("Accept", "text/event-stream"));
        Config seen = current;
        if (seen != null && !seen.isStale() && seen.etag().isPresent()) {
            headers.put("Last-Event-ID", seen.etag().get());
        }
        HttpRequest request = client.request(client.configPath(name) + "/events", headers).build();
        try (EventStream events = new EventStream(client, name, request)) {
            HttpResponse<String> refusal = events.open(options.idleTimeout());
            if (refusal != null) {
                return refused(refusal);
            }
            failures = 0;
            for (EventStream.Event event; !stopped && (event = events.next(options.idleTimeout())) != null; ) {
                dispatch(event);
            }
            return true;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt(); // stopped
            return true;
        }
    }

    /** An answer that is no event stream: an error, or false for "long-poll instead". */
    private boolean refused(HttpResponse<String> response) {
        String type = response.headers().firstValue("Content-Type").orElse("");
        // Konfig's own refusals are JSON; a proxy's or an old server's page for the path is not.
        boolean foreign = NO_STREAM.contains(response.statusCode()) && !type.startsWith("application/json");
        if (response.statusCode() >= 400 && !foreign) {
            throw Konfig.errorFromResponse(response.statusCode(), response.headers(), response.body());
        }
        if (response.statusCode() >= 300 && response.statusCode() < 400) {
            throw client.redirected(response.statusCode(), response.headers());
        }
        if (options.mode() == WatchOptions.Mode.SSE) {
            throw new KonfigException.Server("INTERNAL",
                    name + ": no event stream (" + (type.isEmpty() ? "no content type" : type) + ")", response.statusCode(), Map.of());
        }
        return false;
    }

    private void dispatch(EventStream.Event event) {
        String data = event.data();
        switch (event.type()) {
            case "change" -> {
                ObjectNode body = Json.object(data);
                JsonNode values = body == null ? null : body.get("config");
                if (!(values instanceof ObjectNode)) {
                    throw new KonfigException.Server("INTERNAL", name + ": a bad event: " + data, 0, Map.of());
                }
                String etag = Json.text(body, "etag");
                if (etag.isEmpty() && event.id() != null) {
                    etag = '"' + event.id() + '"';
                }
                Config config = new Config(name, (ObjectNode) values, etag.isEmpty() ? null : etag, false, null);
                client.remember(config);
                emit(config);
            }
            case "error" -> {
                ObjectNode body = Json.object(data);
                String code = Json.text(body, "code");
                String message = Json.text(body, "message");
                code = code.isEmpty() ? "INTERNAL" : code;
                throw KonfigException.of(code, message.isEmpty() ? name + ": the event stream failed" : message,
                        Konfig.statusOf(code), Map.of(), null);
            }
            case "deleted" -> throw new KonfigException.NotFound("NOT_FOUND", "namespace " + name + " was deleted", 404, Map.of("namespace", name));
            default -> { } // an event of a later server: not ours
        }
    }

    private void emit(Config config) {
        Config previous = current;
        if (previous != null && !previous.isStale() && !config.isStale() && previous.etag().isPresent()
                && Objects.equals(previous.etag(), config.etag())) {
            return; // the same content again (a reconnect that raced a change)
        }
        current = config;
        for (ChangeListener listener : options.changeListeners()) {
            if (stopped) {
                return;
            }
            try {
                listener.onChange(config, previous);
            } catch (RuntimeException e) {
                client.logger().log(System.Logger.Level.ERROR, "konfig: a change listener of " + name + " failed", e);
            }
        }
    }

    private void report(KonfigException error, boolean retrying) {
        for (ErrorListener listener : options.errorListeners()) {
            try {
                listener.onError(error, retrying);
            } catch (RuntimeException e) {
                client.logger().log(System.Logger.Level.ERROR, "konfig: an error listener of " + name + " failed", e);
            }
        }
    }
}
