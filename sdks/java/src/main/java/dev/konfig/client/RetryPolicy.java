package dev.konfig.client;

import java.time.Duration;

/**
 * Retries of idempotent calls (reads) on network errors and 5xx, never on a 4xx. The pause before
 * retry {@code n} is drawn from {@code [0, min(cap, base * 2^n)]} ("full jitter").
 *
 * @param attempts in all, the first included
 * @param base the first pause's ceiling
 * @param cap the longest pause
 */
public record RetryPolicy(int attempts, Duration base, Duration cap) {
    /** 3 attempts, 200 ms doubling, at most 5 s. */
    public static final RetryPolicy DEFAULT = new RetryPolicy(3, Duration.ofMillis(200), Duration.ofSeconds(5));

    public RetryPolicy {
        if (attempts < 1) {
            throw new IllegalArgumentException("attempts must be at least 1, not " + attempts);
        }
        if (base.isNegative() || cap.isNegative()) {
            throw new IllegalArgumentException("pauses cannot be negative");
        }
    }
}
