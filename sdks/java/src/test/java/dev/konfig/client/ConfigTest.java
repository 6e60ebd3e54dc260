package dev.konfig.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

class ConfigTest {
    static Config config(String json) {
        return new Config("payments/production", Json.object(json), "\"e1\"", false, null);
    }

    static final Config CONFIG = config(
            "{\"currency\": \"USD\", \"timeout\": 10, \"rate\": 2.5, \"debug\": false, \"nothing\": null,"
                    + " \"limits\": {\"burst\": [1, 2], \"rate\": 0.1}}");

    record Limits(List<Integer> burst, double rate) {}

    @Test
    void typedGettersAnswerTheValueOfTheirType() {
        assertEquals("USD", CONFIG.getString("currency"));
        assertEquals(10.0, CONFIG.getNumber("timeout"));
        assertEquals(10L, CONFIG.getLong("timeout"));
        assertEquals(10, CONFIG.getInt("timeout"));
        assertEquals(2.5, CONFIG.getNumber("rate"));
        assertFalse(CONFIG.getBoolean("debug"));
        assertEquals("{\"burst\":[1,2],\"rate\":0.1}", CONFIG.getJson("limits").toString());
        assertEquals(new Limits(List.of(1, 2), 0.1), CONFIG.getJson("limits", Limits.class));
        assertEquals(List.of("currency", "timeout", "rate", "debug", "nothing", "limits"), CONFIG.keys());
        assertTrue(CONFIG.has("nothing"));
        assertEquals("\"e1\"", CONFIG.etag().orElseThrow());
    }

    @Test
    void typedGettersRefuseAnotherTypeAndAMissingKeyUnlessGivenAFallback() {
        KonfigException.WrongType wrong = assertThrows(KonfigException.WrongType.class, () -> CONFIG.getNumber("debug"));
        assertEquals("WRONG_TYPE", wrong.code());
        assertEquals(Map.of("key", "debug", "expected", "number", "actual", "boolean"), wrong.details());
        assertThrows(KonfigException.WrongType.class, () -> CONFIG.getString("timeout"));
        assertThrows(KonfigException.WrongType.class, () -> CONFIG.getBoolean("currency"));
        assertThrows(KonfigException.WrongType.class, () -> CONFIG.getString("nothing"));
        assertThrows(KonfigException.WrongType.class, () -> CONFIG.getLong("rate")); // a fraction
        assertThrows(KonfigException.WrongType.class, () -> CONFIG.getJson("currency", Limits.class));
        KonfigException.MissingKey missing = assertThrows(KonfigException.MissingKey.class, () -> CONFIG.getString("nowhere"));
        assertEquals("payments/production has no key nowhere", missing.getMessage());
        assertEquals("fallback", CONFIG.getString("nowhere", "fallback"));
        assertEquals(3, CONFIG.getInt("nowhere", 3));
        assertTrue(CONFIG.getBoolean("nowhere", true));
        // A fallback covers an absent key, never a value of the wrong type.
        assertThrows(KonfigException.WrongType.class, () -> CONFIG.getNumber("currency", 1.0));
    }

    @Test
    void valuesAreACopy() {
        ObjectNode values = CONFIG.values();
        values.put("currency", "EUR");
        assertEquals("USD", CONFIG.getString("currency"));
    }
}
