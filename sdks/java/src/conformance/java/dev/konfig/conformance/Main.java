package dev.konfig.conformance;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.json.JsonMapper;
import dev.konfig.client.Config;
import dev.konfig.client.Konfig;
import dev.konfig.client.KonfigException;
import dev.konfig.client.Watch;
import dev.konfig.client.WatchOptions;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

/**
 * The conformance suite's driver (tests/sdks/ in the Konfig repository): one JSON line per
 * result on stdout, the same commands and output as the Python, JavaScript and Go drivers.
 *
 * <pre>
 *   konfig-conformance read NS [--cache PATH] [--fail-fast]
 *   konfig-conformance get NS KEY string|number|boolean|json
 *   konfig-conformance watch NS COUNT [--mode auto|sse|poll] [--wait SECONDS] [--cache PATH] [--fail-fast]
 * </pre>
 *
 * <p>The server and token come from KONFIG_URL and KONFIG_TOKEN. A failure prints {"error":
 * {"code", "type", "status", "message"}} and exits 1.
 */
public final class Main {
    private static final ObjectMapper JSON = JsonMapper.builder().build();

    private Main() {}

    public static void main(String[] args) {
        int code;
        try {
            code = run(args);
        } catch (KonfigException e) {
            code = fail(e);
        } catch (RuntimeException e) {
            code = fail(e);
        }
        System.out.flush();
        System.exit(code);
    }

    private static int run(String[] args) {
        List<String> positional = new ArrayList<>();
        Map<String, String> flags = new HashMap<>();
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("--fail-fast")) {
                flags.put("fail-fast", "1");
            } else if (args[i].startsWith("--") && i + 1 < args.length) {
                flags.put(args[i].substring(2), args[++i]);
            } else {
                positional.add(args[i]);
            }
        }
        if (positional.size() < 2) {
            System.err.println("usage: konfig-conformance read|get|watch NS ...");
            return 2;
        }
        String command = positional.get(0);
        String name = positional.get(1);
        List<String> rest = positional.subList(2, positional.size());
        Konfig.Builder builder = Konfig.builder().failFast(flags.containsKey("fail-fast"));
        if (flags.containsKey("cache")) {
            builder.cachePath(Path.of(flags.get("cache")));
        }
        Konfig konfig = builder.build();
        switch (command) {
            case "read" -> print(shown(konfig.get(name)));
            case "get" -> {
                if (rest.size() != 2) {
                    throw new IllegalArgumentException("get NS KEY TYPE");
                }
                Config config = konfig.get(name);
                String key = rest.get(0);
                Object value = switch (rest.get(1)) {
                    case "string" -> config.getString(key);
                    case "number" -> config.getNumber(key);
                    case "boolean" -> config.getBoolean(key);
                    case "json" -> config.getJson(key);
                    default -> throw new IllegalArgumentException("unknown type " + rest.get(1));
                };
                print(Map.of("value", value));
            }
            case "watch" -> {
                return watch(konfig, name, rest.isEmpty() ? 1 : Integer.parseInt(rest.get(0)), flags);
            }
            default -> {
                System.err.println("unknown command " + command);
                return 2;
            }
        }
        return 0;
    }

    private static int watch(Konfig konfig, String name, int count, Map<String, String> flags) {
        AtomicInteger remaining = new AtomicInteger(count);
        AtomicReference<Watch> watching = new AtomicReference<>();
        CountDownLatch ready = new CountDownLatch(1);
        CountDownLatch enough = new CountDownLatch(1);
        WatchOptions options = new WatchOptions()
                .mode(WatchOptions.Mode.valueOf(flags.getOrDefault("mode", "auto").toUpperCase(Locale.ROOT)))
                .waitTime(Duration.ofSeconds(Long.parseLong(flags.getOrDefault("wait", "30"))))
                .onChange((config, previous) -> {
                    awaitQuietly(ready);
                    if (remaining.get() <= 0) {
                        return; // enough: the watch is being stopped
                    }
                    Map<String, Object> line = shown(config);
                    line.put("mode", mode(watching.get()));
                    print(line);
                    if (remaining.decrementAndGet() == 0) {
                        enough.countDown();
                    }
                })
                .onError((error, retrying) -> {
                    if (retrying) {
                        awaitQuietly(ready);
                        print(Map.of("retrying", Map.of("code", error.code(), "mode", mode(watching.get()))));
                    }
                });
        Watch watch = konfig.watch(name, options);
        watching.set(watch);
        ready.countDown();
        watch.done().whenComplete((ended, error) -> enough.countDown());
        awaitQuietly(enough);
        if (remaining.get() <= 0) {
            watch.stop();
            return 0;
        }
        watch.await(); // ended by an error: it is thrown here
        return 0;
    }

    private static String mode(Watch watch) {
        return watch.mode().name().toLowerCase(Locale.ROOT);
    }

    private static Map<String, Object> shown(Config config) {
        Map<String, Object> line = new LinkedHashMap<>();
        line.put("config", config.values());
        line.put("stale", config.isStale());
        line.put("etag", config.etag().orElse(null));
        return line;
    }

    private static int fail(RuntimeException error) {
        Map<String, Object> line = new LinkedHashMap<>();
        if (error instanceof KonfigException) {
            KonfigException konfig = (KonfigException) error;
            line.put("code", konfig.code());
            line.put("type", error.getClass().getSimpleName());
            line.put("status", konfig.status() == 0 ? null : konfig.status());
        } else {
            line.put("code", "DRIVER");
            line.put("type", error.getClass().getSimpleName());
            line.put("status", null);
        }
        line.put("message", String.valueOf(error.getMessage()));
        print(Map.of("error", line));
        return 1;
    }

    private static synchronized void print(Object line) {
        try {
            System.out.println(JSON.writeValueAsString(line));
            System.out.flush();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static void awaitQuietly(CountDownLatch latch) {
        try {
            latch.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
