package dev.konfig.client;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/** How a {@link Watch} follows a namespace, and who hears of it; every setter returns this. */
public final class WatchOptions {
    /** How a watch follows changes. */
    public enum Mode {
        /** Server-sent events; long polls where no event stream can be had (the default). */
        AUTO,
        /** Server-sent events only. */
        SSE,
        /** Long polls only. */
        POLL
    }

    private Mode mode = Mode.AUTO;
    private Duration wait = Duration.ofSeconds(30);
    private Duration idleTimeout = Duration.ofSeconds(45);
    private final List<Watch.ChangeListener> changeListeners = new ArrayList<>();
    private final List<Watch.ErrorListener> errorListeners = new ArrayList<>();

    /** {@code AUTO} (default), {@code SSE} or {@code POLL}. */
    public WatchOptions mode(Mode mode) {
        this.mode = Objects.requireNonNull(mode);
        return this;
    }

    /** How long one long poll waits for a change (default 30 s). */
    public WatchOptions waitTime(Duration wait) {
        this.wait = Objects.requireNonNull(wait);
        return this;
    }

    /** An event stream silent this long, heartbeats included, is dropped and reopened (default 45 s). */
    public WatchOptions idleTimeout(Duration idleTimeout) {
        this.idleTimeout = Objects.requireNonNull(idleTimeout);
        return this;
    }

    /** Adds a listener of the current config, then of every change. */
    public WatchOptions onChange(Watch.ChangeListener listener) {
        changeListeners.add(Objects.requireNonNull(listener));
        return this;
    }

    /** Adds a listener of failures: retried ones, and the one that ends the watch. */
    public WatchOptions onError(Watch.ErrorListener listener) {
        errorListeners.add(Objects.requireNonNull(listener));
        return this;
    }

    Mode mode() {
        return mode;
    }

    Duration waitTime() {
        return wait;
    }

    Duration idleTimeout() {
        return idleTimeout;
    }

    List<Watch.ChangeListener> changeListeners() {
        return changeListeners;
    }

    List<Watch.ErrorListener> errorListeners() {
        return errorListeners;
    }

    WatchOptions copy() {
        WatchOptions copy = new WatchOptions().mode(mode).waitTime(wait).idleTimeout(idleTimeout);
        copy.changeListeners.addAll(changeListeners);
        copy.errorListeners.addAll(errorListeners);
        return copy;
    }
}
