package dev.konfig.client;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.math.BigDecimal;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileAttribute;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Instant;

/**
 * The last-known-good file: the configs a service last read, so it can start during an outage.
 *
 * <p>The same JSON as the Python, JavaScript and Go SDKs write, {@code {"version": 1, "configs":
 * {name: {"json": {"value", "etag", "saved_at"}}}}}, so one file serves a service whatever its
 * language. Every write goes to a temporary file (mode 0600) in the same directory, then a rename
 * puts it in place: a reader, or a crash, never sees half a file.
 */
final class LastKnownGood {
    private final Path path;

    LastKnownGood(Path path) {
        this.path = path;
    }

    Path path() {
        return path;
    }

    /** The saved config of {@code name} (stale), or null when there is none or the file is unreadable. */
    synchronized Config get(String name) {
        JsonNode entry = read().path(name).path("json");
        if (!(entry.get("value") instanceof ObjectNode)) {
            return null;
        }
        JsonNode etag = entry.get("etag");
        JsonNode saved = entry.get("saved_at");
        Instant savedAt = null;
        if (saved != null && saved.isNumber()) {
            BigDecimal seconds = saved.decimalValue();
            savedAt = Instant.ofEpochSecond(seconds.longValue(),
                    seconds.remainder(BigDecimal.ONE).movePointRight(9).longValue());
        }
        return new Config(name, (ObjectNode) entry.get("value"),
                etag != null && etag.isTextual() ? etag.textValue() : null, true, savedAt);
    }

    /** Saves {@code config} as the last-known-good config of its namespace. */
    synchronized void put(Config config) throws IOException {
        ObjectNode configs = read();
        JsonNode saved = configs.get(config.namespace());
        ObjectNode formats = saved instanceof ObjectNode ? (ObjectNode) saved : configs.putObject(config.namespace());
        ObjectNode entry = formats.putObject("json");
        entry.set("value", config.values());
        entry.put("etag", config.etag().orElse(null));
        entry.put("saved_at", BigDecimal.valueOf(System.currentTimeMillis()).movePointLeft(3));
        ObjectNode content = Json.MAPPER.createObjectNode();
        content.put("version", 1);
        content.set("configs", configs);
        write(Json.MAPPER.writeValueAsBytes(content));
    }

    private ObjectNode read() {
        try {
            JsonNode configs = Json.MAPPER.readTree(path.toFile()).get("configs");
            if (configs instanceof ObjectNode) {
                return (ObjectNode) configs;
            }
        } catch (IOException e) {
            // No file yet, or not one of ours to read: the next write replaces it.
        }
        return Json.MAPPER.createObjectNode();
    }

    private void write(byte[] content) throws IOException {
        Path absolute = path.toAbsolutePath();
        Path directory = absolute.getParent();
        Files.createDirectories(directory);
        Path temp = Files.createTempFile(directory, "." + absolute.getFileName() + ".", ".tmp", ownerOnly());
        boolean moved = false;
        try {
            try (FileChannel channel = FileChannel.open(temp, StandardOpenOption.WRITE)) {
                ByteBuffer buffer = ByteBuffer.wrap(content);
                while (buffer.hasRemaining()) {
                    channel.write(buffer);
                }
                channel.force(true);
            }
            try {
                Files.move(temp, absolute, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(temp, absolute, StandardCopyOption.REPLACE_EXISTING);
            }
            moved = true;
        } finally {
            if (!moved) {
                Files.deleteIfExists(temp);
            }
        }
    }

    /** Mode 0600 where the file system has POSIX modes (createTempFile's default elsewhere). */
    private static FileAttribute<?>[] ownerOnly() {
        if (FileSystems.getDefault().supportedFileAttributeViews().contains("posix")) {
            return new FileAttribute<?>[] {PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------"))};
        }
        return new FileAttribute<?>[0];
    }
}
