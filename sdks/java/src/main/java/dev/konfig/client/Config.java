package dev.konfig.client;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeType;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * One resolved config: the values of a namespace merged over what it inherits, secrets decrypted
 * when the token holds {@code secrets} ({@code ********} otherwise). Immutable.
 *
 * <p>Typed getters throw {@link KonfigException.MissingKey} for an absent key (unless given a
 * fallback) and {@link KonfigException.WrongType} for a value of another type: a boolean is not a
 * number, a number is not a string.
 */
public final class Config {
    private final String namespace;
    private final ObjectNode values;
    private final String etag;
    private final boolean stale;
    private final Instant savedAt;

    Config(String namespace, ObjectNode values, String etag, boolean stale, Instant savedAt) {
        this.namespace = namespace;
        this.values = values;
        this.etag = etag;
        this.stale = stale;
        this.savedAt = savedAt;
    }

    /** The namespace's name, e.g. {@code payments/production}. */
    public String namespace() {
        return namespace;
    }

    /** Every key with its value, as a copy of the JSON object the server answered. */
    public ObjectNode values() {
        return values.deepCopy();
    }

    /** The keys, in the server's order. */
    public List<String> keys() {
        List<String> keys = new ArrayList<>();
        values.fieldNames().forEachRemaining(keys::add);
        return keys;
    }

    /** Whether the config has {@code key} (with any value, null included). */
    public boolean has(String key) {
        return values.has(key);
    }

    /** The server's tag for this content: it changes exactly when the content does. */
    public Optional<String> etag() {
        return Optional.ofNullable(etag);
    }

    /** True when the server was unreachable and this came from the last-known-good file. */
    public boolean isStale() {
        return stale;
    }

    /** When a stale config was saved to the last-known-good file. */
    public Optional<Instant> savedAt() {
        return Optional.ofNullable(savedAt);
    }

    /** The string value of {@code key}. */
    public String getString(String key) {
        return typed(key, JsonNodeType.STRING, "string").textValue();
    }

    /** The string value of {@code key}, or {@code fallback} when the key is absent. */
    public String getString(String key, String fallback) {
        return has(key) ? getString(key) : fallback;
    }

    /** The number value of {@code key}. */
    public double getNumber(String key) {
        return typed(key, JsonNodeType.NUMBER, "number").doubleValue();
    }

    /** The number value of {@code key}, or {@code fallback} when the key is absent. */
    public double getNumber(String key, double fallback) {
        return has(key) ? getNumber(key) : fallback;
    }

    /** The number value of {@code key} as a long: {@code WRONG_TYPE} when it has a fraction. */
    public long getLong(String key) {
        JsonNode value = typed(key, JsonNodeType.NUMBER, "number");
        if (!value.canConvertToExactIntegral() || !value.canConvertToLong()) {
            throw wrongType(key, "integer", value);
        }
        return value.asLong();
    }

    /** The number value of {@code key} as a long, or {@code fallback} when the key is absent. */
    public long getLong(String key, long fallback) {
        return has(key) ? getLong(key) : fallback;
    }

    /** The number value of {@code key} as an int: {@code WRONG_TYPE} when it does not fit. */
    public int getInt(String key) {
        JsonNode value = typed(key, JsonNodeType.NUMBER, "number");
        if (!value.canConvertToExactIntegral() || !value.canConvertToInt()) {
            throw wrongType(key, "integer", value);
        }
        return value.asInt();
    }

    /** The number value of {@code key} as an int, or {@code fallback} when the key is absent. */
    public int getInt(String key, int fallback) {
        return has(key) ? getInt(key) : fallback;
    }

    /** The boolean value of {@code key}. */
    public boolean getBoolean(String key) {
        return typed(key, JsonNodeType.BOOLEAN, "boolean").booleanValue();
    }

    /** The boolean value of {@code key}, or {@code fallback} when the key is absent. */
    public boolean getBoolean(String key, boolean fallback) {
        return has(key) ? getBoolean(key) : fallback;
    }

    /** The value of {@code key}, whatever its type, as JSON (a copy). */
    public JsonNode getJson(String key) {
        return lookup(key).deepCopy();
    }

    /** The value of {@code key} bound to {@code type} by Jackson ({@code WRONG_TYPE} if it does not fit). */
    public <T> T getJson(String key, Class<T> type) {
        JsonNode value = lookup(key);
        try {
            return Json.MAPPER.treeToValue(value, type);
        } catch (JsonProcessingException | IllegalArgumentException e) {
            throw wrongType(key, type.getSimpleName(), value);
        }
    }

    private JsonNode lookup(String key) {
        JsonNode value = values.get(key);
        if (value == null) {
            throw new KonfigException.MissingKey(namespace + " has no key " + key, Map.of("key", key));
        }
        return value;
    }

    private JsonNode typed(String key, JsonNodeType type, String name) {
        JsonNode value = lookup(key);
        if (value.getNodeType() != type) {
            throw wrongType(key, name, value);
        }
        return value;
    }

    private KonfigException wrongType(String key, String expected, JsonNode value) {
        String actual = value.getNodeType().name().toLowerCase(java.util.Locale.ROOT);
        return new KonfigException.WrongType(
                namespace + ": " + key + " is a " + actual + ", not a " + expected,
                Map.of("key", key, "expected", expected, "actual", actual));
    }

    @Override
    public String toString() {
        return "Config[" + namespace + (stale ? ", stale" : "") + ", keys=" + keys() + "]";
    }
}
