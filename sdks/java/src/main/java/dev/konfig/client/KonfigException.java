package dev.konfig.client;

import java.time.Duration;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Optional;

/**
 * Every error the SDK throws. {@link #code()} is the server's error code ({@code UNAUTHENTICATED},
 * {@code NOT_FOUND}, ...) or one of the client's own: {@code CONNECTION_ERROR}, {@code
 * MISSING_KEY}, {@code WRONG_TYPE}. Catch a nested class to handle one kind: {@code catch
 * (KonfigException.Unauthenticated e)}.
 */
public class KonfigException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final String code;
    private final int status;
    private final transient Map<String, Object> details;

    public KonfigException(String code, String message, int status, Map<String, Object> details, Throwable cause) {
        super(message, cause);
        this.code = code;
        this.status = status;
        this.details = details == null ? Map.of() : Collections.unmodifiableMap(new LinkedHashMap<>(details));
    }

    /** The server's error code, or the client's own ({@code CONNECTION_ERROR}, ...). */
    public String code() {
        return code;
    }

    /** The HTTP status of the answer; 0 when there was none (the server was not reached). */
    public int status() {
        return status;
    }

    /** The server's details, e.g. {@code {"namespace": "shared"}}; the getters' key and types. */
    public Map<String, Object> details() {
        return details;
    }

    /** 422: the request or a value failed validation; {@link #details()} names the rule. */
    public static class Validation extends KonfigException {
        private static final long serialVersionUID = 1L;

        public Validation(String code, String message, int status, Map<String, Object> details) {
            super(code, message, status, details, null);
        }
    }

    /** 401: no token, or an expired, revoked or wrong one. */
    public static class Unauthenticated extends KonfigException {
        private static final long serialVersionUID = 1L;

        public Unauthenticated(String code, String message, int status, Map<String, Object> details) {
            super(code, message, status, details, null);
        }
    }

    /** 403: the token's scopes do not allow this. */
    public static class Forbidden extends KonfigException {
        private static final long serialVersionUID = 1L;

        public Forbidden(String code, String message, int status, Map<String, Object> details) {
            super(code, message, status, details, null);
        }
    }

    /** 404: no such namespace in your tenant (or it was deleted while watched). */
    public static class NotFound extends KonfigException {
        private static final long serialVersionUID = 1L;

        public NotFound(String code, String message, int status, Map<String, Object> details) {
            super(code, message, status, details, null);
        }
    }

    /** 409: the object exists already, or the change clashes with the current state. */
    public static class Conflict extends KonfigException {
        private static final long serialVersionUID = 1L;

        public Conflict(String code, String message, int status, Map<String, Object> details) {
            super(code, message, status, details, null);
        }
    }

    /** 412: {@code If-Match} named a version that is no longer current. */
    public static class PreconditionFailed extends KonfigException {
        private static final long serialVersionUID = 1L;

        public PreconditionFailed(String code, String message, int status, Map<String, Object> details) {
            super(code, message, status, details, null);
        }
    }

    /** 413: the body is over the server's size limit. */
    public static class PayloadTooLarge extends KonfigException {
        private static final long serialVersionUID = 1L;

        public PayloadTooLarge(String code, String message, int status, Map<String, Object> details) {
            super(code, message, status, details, null);
        }
    }

    /** 429: slow down; {@link #retryAfter()} is the server's hint, when it gave one. */
    public static class RateLimited extends KonfigException {
        private static final long serialVersionUID = 1L;

        private final Duration retryAfter;

        public RateLimited(String code, String message, int status, Map<String, Object> details, Duration retryAfter) {
            super(code, message, status, details, null);
            this.retryAfter = retryAfter;
        }

        /** The server's {@code Retry-After}. */
        public Optional<Duration> retryAfter() {
            return Optional.ofNullable(retryAfter);
        }
    }

    /** 5xx: the server failed or is unavailable (retried for reads; a stale copy may answer). */
    public static class Server extends KonfigException {
        private static final long serialVersionUID = 1L;

        public Server(String code, String message, int status, Map<String, Object> details) {
            super(code, message, status, details, null);
        }
    }

    /** {@code CONNECTION_ERROR}: the server could not be reached (refused, timed out, DNS, TLS). */
    public static class Connection extends KonfigException {
        private static final long serialVersionUID = 1L;

        public Connection(String message, Throwable cause) {
            super("CONNECTION_ERROR", message, 0, Map.of(), cause);
        }
    }

    /** {@code MISSING_KEY}: a typed getter found no such key (and was given no fallback). */
    public static class MissingKey extends KonfigException {
        private static final long serialVersionUID = 1L;

        public MissingKey(String message, Map<String, Object> details) {
            super("MISSING_KEY", message, 0, details, null);
        }
    }

    /** {@code WRONG_TYPE}: a typed getter found a value of another type than it was asked for. */
    public static class WrongType extends KonfigException {
        private static final long serialVersionUID = 1L;

        public WrongType(String message, Map<String, Object> details) {
            super("WRONG_TYPE", message, 0, details, null);
        }
    }

    /**
     * The error a code stands for, as an error answer or an {@code error} event carries it: the
     * class of the code, {@link Server} for any 5xx.
     */
    static KonfigException of(String code, String message, int status, Map<String, Object> details, Duration retryAfter) {
        if (status >= 500) {
            return new Server(code.isEmpty() ? "INTERNAL" : code, message, status, details);
        }
        switch (code) {
            case "VALIDATION_ERROR":
                return new Validation(code, message, status, details);
            case "UNAUTHENTICATED":
                return new Unauthenticated(code, message, status, details);
            case "FORBIDDEN":
                return new Forbidden(code, message, status, details);
            case "NOT_FOUND":
                return new NotFound(code, message, status, details);
            case "CONFLICT":
                return new Conflict(code, message, status, details);
            case "PRECONDITION_FAILED":
                return new PreconditionFailed(code, message, status, details);
            case "PAYLOAD_TOO_LARGE":
                return new PayloadTooLarge(code, message, status, details);
            case "RATE_LIMITED":
                return new RateLimited(code, message, status, details, retryAfter);
            case "INTERNAL":
            case "UNAVAILABLE":
                return new Server(code, message, status, details);
            default:
                return new KonfigException(code.isEmpty() ? "ERROR" : code, message, status, details, null);
        }
    }

    /** Worth another try: the network, a 5xx, a 429. */
    boolean isTransient() {
        return this instanceof Connection || this instanceof Server || this instanceof RateLimited;
    }
}
