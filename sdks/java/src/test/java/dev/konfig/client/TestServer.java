package dev.konfig.client;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executors;

/** A real HTTP server on 127.0.0.1 (the JDK's), answering as a test says and keeping what it was asked. */
final class TestServer implements AutoCloseable {
    /** What one request carried. */
    record Request(String path, String query, Map<String, List<String>> headers) {
        String header(String name) {
            List<String> values = headers.get(name.substring(0, 1).toUpperCase() + name.substring(1).toLowerCase());
            return values == null ? null : values.get(0);
        }
    }

    /** Answers one request; {@code count} is its number (1 for the first). */
    @FunctionalInterface
    interface Handler {
        void handle(HttpExchange exchange, int count) throws IOException;
    }

    final List<Request> requests = new CopyOnWriteArrayList<>();
    private final HttpServer server;

    TestServer(Handler handler) throws IOException {
        server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        server.setExecutor(Executors.newCachedThreadPool());
        server.createContext("/", exchange -> {
            requests.add(new Request(exchange.getRequestURI().getRawPath(), exchange.getRequestURI().getQuery(),
                    Map.copyOf(exchange.getRequestHeaders())));
            try {
                handler.handle(exchange, requests.size());
            } catch (IOException e) {
                // The client went away (a stopped watch): nothing to answer.
            } finally {
                exchange.close();
            }
        });
        server.start();
    }

    String url() {
        return "http://127.0.0.1:" + server.getAddress().getPort();
    }

    Konfig.Builder client() {
        return new Konfig.Builder(Map.of("KONFIG_URL", url(), "KONFIG_TOKEN", "kfg_test"))
                .retry(new RetryPolicy(3, java.time.Duration.ofMillis(1), java.time.Duration.ofMillis(5)));
    }

    static void send(HttpExchange exchange, int status, String contentType, String body, String... headers) throws IOException {
        exchange.getResponseHeaders().set("Content-Type", contentType);
        for (int i = 0; i < headers.length; i += 2) {
            exchange.getResponseHeaders().set(headers[i], headers[i + 1]);
        }
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        exchange.sendResponseHeaders(status, status == 304 ? -1 : bytes.length == 0 ? -1 : bytes.length);
        if (status != 304 && bytes.length > 0) {
            try (OutputStream out = exchange.getResponseBody()) {
                out.write(bytes);
            }
        }
    }

    static void json(HttpExchange exchange, int status, String body, String... headers) throws IOException {
        send(exchange, status, "application/json", body, headers);
    }

    static String error(String code, String message) {
        return "{\"status\": \"error\", \"error\": {\"code\": \"" + code + "\", \"message\": \"" + message
                + "\", \"details\": {\"namespace\": \"payments/production\"}}}";
    }

    /** Starts an event stream; write events with {@link #event}. */
    static OutputStream stream(HttpExchange exchange) throws IOException {
        exchange.getResponseHeaders().set("Content-Type", "text/event-stream; charset=utf-8");
        exchange.sendResponseHeaders(200, 0);
        return exchange.getResponseBody();
    }

    static void event(OutputStream out, String text) throws IOException {
        out.write(text.getBytes(StandardCharsets.UTF_8));
        out.flush();
    }

    @Override
    public void close() {
        server.stop(0);
    }
}
