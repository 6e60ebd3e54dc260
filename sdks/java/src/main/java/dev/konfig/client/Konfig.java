package dev.konfig.client;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpHeaders;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ThreadLocalRandom;

/**
 * The Konfig client: reads a namespace's resolved config ({@link #get}) and follows its changes
 * ({@link #watch}). Configured from {@code KONFIG_URL} and {@code KONFIG_TOKEN} by {@link
 * #fromEnv()} or {@link #builder()}; safe for use by many threads.
 */
public final class Konfig {
    /** Sent with every request. */
    public static final String USER_AGENT = "konfig-java/0.1.0";

    private final String url;
    private final String token;
    private final String instance;
    private final boolean failFast;
    private final Duration timeout;
    private final RetryPolicy retry;
    private final HttpClient http;
    private final LastKnownGood cache;
    private final System.Logger logger;

    private Konfig(Builder builder) {
        String url = builder.url == null ? "" : builder.url.strip();
        if (url.isEmpty()) {
            throw new IllegalArgumentException("konfig: no server URL: set KONFIG_URL or Konfig.builder().url(...)");
        }
        URI parsed = URI.create(url);
        if (!"http".equals(parsed.getScheme()) && !"https".equals(parsed.getScheme())) {
            throw new IllegalArgumentException("konfig: the server URL must start with http:// or https://, not " + url);
        }
        this.url = url.replaceAll("/+$", "");
        this.token = builder.token == null || builder.token.isBlank() ? null : builder.token.strip();
        this.instance = builder.instance == null || builder.instance.isBlank()
                ? defaultInstance(builder.hostname)
                : builder.instance.strip();
        this.failFast = builder.failFast;
        this.timeout = builder.timeout;
        this.retry = builder.retry;
        this.http = builder.http != null ? builder.http : HttpClient.newBuilder()
                .version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(builder.timeout)
                .followRedirects(HttpClient.Redirect.NEVER) // the token must not travel elsewhere
                .build();
        this.cache = builder.cachePath == null ? null : new LastKnownGood(builder.cachePath);
        this.logger = builder.logger != null ? builder.logger : System.getLogger("dev.konfig.client");
    }

    /** A client for {@code KONFIG_URL} with the token {@code KONFIG_TOKEN} and default options. */
    public static Konfig fromEnv() {
        return builder().build();
    }

    /** A builder whose URL and token start from {@code KONFIG_URL} and {@code KONFIG_TOKEN}. */
    public static Builder builder() {
        return new Builder(System.getenv());
    }

    /** The resolved config of namespace {@code name}, e.g. {@code payments/production}.
     *
     * <p>When the server cannot be reached (or answers 5xx) and the last-known-good file holds a
     * copy, that copy answers, {@linkplain Config#isStale() stale}, with a logged warning; with
     * {@code failFast}, the error at once.
     *
     * @throws KonfigException the server's refusal ({@code Unauthenticated}, {@code Forbidden},
     *     {@code NotFound}, ...) or {@code Connection}
     */
    public Config get(String name) {
        try {
            return read(name, null, null);
        } catch (KonfigException e) {
            Config stale = fallback(name, e);
            if (stale != null) {
                return stale;
            }
            throw e;
        }
    }

    /** Follows {@code name}: {@code listener} gets the current config, then every change. */
    public Watch watch(String name, Watch.ChangeListener listener) {
        return watch(name, new WatchOptions().onChange(listener));
    }

    /** Follows {@code name} as {@code options} say; the watch runs on its own (daemon) thread. */
    public Watch watch(String name, WatchOptions options) {
        Watch watch = new Watch(this, name, options.copy());
        watch.start();
        return watch;
    }

    /** The server this client reads from. */
    public String url() {
        return url;
    }

    boolean failFast() {
        return failFast;
    }

    HttpClient http() {
        return http;
    }

    System.Logger logger() {
        return logger;
    }

    /**
     * One GET of {@code name}'s resolved config: conditional with {@code etag}, a long poll with
     * {@code wait}. Null on 304; what it reads is saved to the last-known-good file.
     */
    Config read(String name, String etag, Duration wait) {
        String path = configPath(name);
        Map<String, String> headers = new HashMap<>(Map.of("Accept", "application/json"));
        Duration limit = timeout;
        if (etag != null) {
            headers.put("If-None-Match", etag);
            if (wait != null && !wait.isZero()) {
                path += "?wait=" + Math.max(1, (wait.toMillis() + 999) / 1000);
                limit = wait.plusSeconds(15);
            }
        }
        HttpResponse<String> response = send(path, headers, limit);
        if (response.statusCode() == 304) {
            return null;
        }
        ObjectNode values = Json.object(response.body());
        if (values == null) {
            throw new KonfigException.Server("INTERNAL", name + ": the answer is not a JSON object", response.statusCode(), Map.of());
        }
        Config config = new Config(name, values, response.headers().firstValue("ETag").orElse(null), false, null);
        remember(config);
        return config;
    }

    /** A GET, retried on network errors and 5xx (it is idempotent) unless {@code failFast}. */
    private HttpResponse<String> send(String path, Map<String, String> headers, Duration limit) {
        int attempts = failFast ? 1 : retry.attempts();
        for (int attempt = 1; ; attempt++) {
            KonfigException failure;
            try {
                HttpResponse<String> response = once(request(path, headers).timeout(limit).build());
                if (response.statusCode() < 300 || response.statusCode() == 304) {
                    return response;
                }
                if (response.statusCode() < 400) {
                    throw redirected(response.statusCode(), response.headers());
                }
                failure = errorFromResponse(response.statusCode(), response.headers(), response.body());
            } catch (KonfigException.Connection e) {
                failure = e;
            }
            boolean again = failure instanceof KonfigException.Connection || failure instanceof KonfigException.Server;
            if (attempt >= attempts || !again || Thread.currentThread().isInterrupted() || !sleep(pause(attempt))) {
                throw failure;
            }
        }
    }

    private HttpResponse<String> once(HttpRequest request) {
        CompletableFuture<HttpResponse<String>> future = http.sendAsync(request, HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
        try {
            return future.get();
        } catch (InterruptedException e) {
            future.cancel(true);
            Thread.currentThread().interrupt(); // a stopped watch: its loop sees the flag
            throw new KonfigException.Connection("interrupted", e);
        } catch (ExecutionException e) {
            throw connectionError(e.getCause());
        }
    }

    /** {@code HOSTNAME-pid} (a pod's name in Kubernetes), or {@code java-pid}. */
    private static String defaultInstance(String hostname) {
        String host = hostname == null || hostname.isBlank() ? "java" : hostname.strip();
        return host + "-" + ProcessHandle.current().pid();
    }

    /** A request for {@code path} with the token and the SDK's headers. */
    HttpRequest.Builder request(String path, Map<String, String> headers) {
        HttpRequest.Builder request = HttpRequest.newBuilder(URI.create(url + path)).GET()
                .header("User-Agent", USER_AGENT)
                // Who this is, for the server's usage analytics (which instance holds which revision).
                .header("X-Konfig-Instance", instance)
                .header("X-Konfig-SDK", USER_AGENT);
        headers.forEach(request::header);
        if (token != null) {
            request.header("Authorization", "Bearer " + token);
        }
        return request;
    }

    /** A redirect, never followed: the token would go with it, perhaps to another host. */
    KonfigException redirected(int status, HttpHeaders headers) {
        String location = headers.firstValue("Location").orElse("elsewhere");
        return new KonfigException("REDIRECTED", "Konfig at " + url + " answered " + status + " to " + location
                + ": set KONFIG_URL to the server itself (this SDK follows no redirect)", status, Map.of("location", location), null);
    }

    KonfigException.Connection connectionError(Throwable cause) {
        String why = cause == null ? "no answer" : describe(cause);
        return new KonfigException.Connection("cannot reach Konfig at " + url + ": " + why, cause);
    }

    /** The last-known-good copy of {@code name} when {@code error} allows falling back to it. */
    Config fallback(String name, KonfigException error) {
        boolean unreachable = error instanceof KonfigException.Connection || error instanceof KonfigException.Server;
        if (failFast || cache == null || !unreachable) {
            return null;
        }
        Config stale = cache.get(name);
        if (stale != null) {
            logger.log(System.Logger.Level.WARNING, String.format(
                    "konfig: Konfig is unreachable (%s); using the last-known-good %s saved %s from %s",
                    error.getMessage(), name, stale.savedAt().map(Object::toString).orElse("at an unknown time"), cache.path()));
        }
        return stale;
    }

    void remember(Config config) {
        if (cache == null) {
            return;
        }
        try {
            cache.put(config);
        } catch (IOException | RuntimeException e) {
            logger.log(System.Logger.Level.WARNING, String.format(
                    "konfig: could not save the last-known-good file %s: %s", cache.path(), describe(e)));
        }
    }

    String configPath(String name) {
        StringBuilder path = new StringBuilder("/api/v1/config");
        for (String segment : name.split("/", -1)) {
            path.append('/').append(URLEncoder.encode(segment, StandardCharsets.UTF_8).replace("+", "%20"));
        }
        return path.toString();
    }

    private Duration pause(int retry) {
        double ceiling = Math.min(this.retry.cap().toNanos(), this.retry.base().toNanos() * Math.pow(2, retry));
        return Duration.ofNanos((long) (ThreadLocalRandom.current().nextDouble() * ceiling));
    }

    /** A jittered exponential pause after {@code failures} failures in a row (watch reconnects):
     * between half and all of {@code min(30 s, 0.5 s * 2^(failures - 1))}. */
    static Duration backoff(int failures) {
        double ceiling = Math.min(30e9, 0.5e9 * Math.pow(2, Math.max(0, failures - 1)));
        return Duration.ofNanos((long) (ceiling / 2 + ThreadLocalRandom.current().nextDouble() * ceiling / 2));
    }

    /** Sleeps {@code pause}; false when interrupted (the flag stays set). */
    static boolean sleep(Duration pause) {
        try {
            Thread.sleep(pause.toMillis(), (int) (pause.toNanos() % 1_000_000));
            return true;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    /** The error an answer of status >= 400 stands for, whatever its body. */
    static KonfigException errorFromResponse(int status, HttpHeaders headers, String body) {
        JsonNode error = null;
        ObjectNode parsed = Json.object(body == null ? "" : body);
        if (parsed != null && parsed.get("error") instanceof ObjectNode) {
            error = parsed.get("error");
        }
        // Not the error shape (a proxy's page): the status alone tells.
        String code = Json.text(error, "code");
        String message = Json.text(error, "message");
        Map<String, Object> details = Map.of();
        if (error != null && error.get("details") instanceof ObjectNode) {
            details = Json.MAPPER.convertValue(error.get("details"), Json.MAP);
        }
        if (code.isEmpty()) {
            code = CODES_BY_STATUS.getOrDefault(status, status >= 500 ? "INTERNAL" : "ERROR");
        }
        if (message.isEmpty()) {
            message = "HTTP " + status;
        }
        Duration retryAfter = null;
        String header = headers.firstValue("Retry-After").orElse("");
        try {
            double seconds = Double.parseDouble(header);
            if (seconds >= 0) {
                retryAfter = Duration.ofMillis((long) (seconds * 1000));
            }
        } catch (NumberFormatException e) {
            // No hint, or an HTTP date: the backoff decides.
        }
        return KonfigException.of(code, message, status, details, retryAfter);
    }

    private static final Map<Integer, String> CODES_BY_STATUS = Map.of(
            401, "UNAUTHENTICATED",
            403, "FORBIDDEN",
            404, "NOT_FOUND",
            409, "CONFLICT",
            412, "PRECONDITION_FAILED",
            413, "PAYLOAD_TOO_LARGE",
            422, "VALIDATION_ERROR",
            429, "RATE_LIMITED");

    /** The HTTP status a code stands for (an {@code error} event carries the code alone). */
    static int statusOf(String code) {
        if ("INTERNAL".equals(code)) {
            return 500;
        }
        return CODES_BY_STATUS.entrySet().stream()
                .filter(entry -> entry.getValue().equals(code))
                .map(Map.Entry::getKey)
                .findFirst()
                .orElse(0);
    }

    /** A throwable's first message down its causes (java.net.http's often has none at the top). */
    static String describe(Throwable error) {
        for (Throwable cause = error; cause != null; cause = cause.getCause()) {
            if (cause.getMessage() != null && !cause.getMessage().isBlank()) {
                return cause.getClass().getSimpleName() + ": " + cause.getMessage();
            }
        }
        return error.getClass().getSimpleName();
    }

    /** Options of a {@link Konfig}; every setter returns the builder. */
    public static final class Builder {
        private String url;
        private String token;
        private String instance;
        private final String hostname;
        private Path cachePath;
        private boolean failFast;
        private Duration timeout = Duration.ofSeconds(10);
        private RetryPolicy retry = RetryPolicy.DEFAULT;
        private HttpClient http;
        private System.Logger logger;

        Builder(Map<String, String> env) {
            this.url = env.get("KONFIG_URL");
            this.token = env.get("KONFIG_TOKEN");
            this.instance = env.get("KONFIG_INSTANCE");
            this.hostname = env.get("HOSTNAME");
        }

        /**
         * Names this process to the server's usage analytics ({@code X-Konfig-Instance}; default:
         * {@code KONFIG_INSTANCE}, else {@code HOSTNAME} and the process id).
         */
        public Builder instance(String instance) {
            this.instance = instance;
            return this;
        }

        /** The server, e.g. {@code https://konfig.example.com} (default: {@code KONFIG_URL}). */
        public Builder url(String url) {
            this.url = url;
            return this;
        }

        /** An API token, {@code kfg_…} (default: {@code KONFIG_TOKEN}). */
        public Builder token(String token) {
            this.token = token;
            return this;
        }

        /** Turns on the last-known-good file at {@code path}. */
        public Builder cachePath(Path path) {
            this.cachePath = path;
            return this;
        }

        /** Never fall back to the last-known-good file, never retry: fail at once. */
        public Builder failFast(boolean failFast) {
            this.failFast = failFast;
            return this;
        }

        /** How long one read may take (default 10 s; a long poll adds its wait). */
        public Builder timeout(Duration timeout) {
            this.timeout = Objects.requireNonNull(timeout);
            return this;
        }

        /** How reads are retried (default {@link RetryPolicy#DEFAULT}). */
        public Builder retry(RetryPolicy retry) {
            this.retry = Objects.requireNonNull(retry);
            return this;
        }

        /** The HTTP client to use (default: a new one, HTTP/1.1). */
        public Builder httpClient(HttpClient http) {
            this.http = http;
            return this;
        }

        /** Where stale-config warnings go (default: {@code System.getLogger("dev.konfig.client")}). */
        public Builder logger(System.Logger logger) {
            this.logger = logger;
            return this;
        }

        /** The client. */
        public Konfig build() {
            return new Konfig(this);
        }
    }
}
