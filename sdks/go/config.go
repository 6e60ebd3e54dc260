package konfig

import (
	"encoding/json"
	"fmt"
	"time"
)

// Config is one resolved config: the values of a namespace merged over what it inherits.
type Config struct {
	Namespace string
	// Values holds every key with its value as decoded JSON (numbers are json.Number).
	Values map[string]interface{}
	// ETag is the server's tag for this content; it changes exactly when the content does.
	ETag string
	// Stale is true when the server was unreachable and this came from the last-known-good file.
	Stale bool
	// SavedAt is when a stale config was saved to the last-known-good file.
	SavedAt time.Time
}

// Has tells whether the config has key.
func (c *Config) Has(key string) bool {
	_, ok := c.Values[key]
	return ok
}

func (c *Config) lookup(key string) (interface{}, error) {
	value, ok := c.Values[key]
	if !ok {
		return nil, &Error{Code: "MISSING_KEY", Message: fmt.Sprintf("%s has no key %s", c.Namespace, key),
			Details: map[string]interface{}{"key": key}}
	}
	return value, nil
}

func (c *Config) wrongType(key, want string, value interface{}) error {
	actual := jsonType(value)
	return &Error{Code: "WRONG_TYPE", Message: fmt.Sprintf("%s: %s is a %s, not a %s", c.Namespace, key, actual, want),
		Details: map[string]interface{}{"key": key, "expected": want, "actual": actual}}
}

// String returns the string value of key: ErrMissingKey when absent, ErrWrongType for another type.
func (c *Config) String(key string) (string, error) {
	value, err := c.lookup(key)
	if err != nil {
		return "", err
	}
	s, ok := value.(string)
	if !ok {
		return "", c.wrongType(key, "string", value)
	}
	return s, nil
}

// Number returns the number value of key as a float64.
func (c *Config) Number(key string) (float64, error) {
	value, err := c.lookup(key)
	if err != nil {
		return 0, err
	}
	n, ok := value.(json.Number)
	if !ok {
		return 0, c.wrongType(key, "number", value)
	}
	return n.Float64()
}

// Int returns the number value of key as an int64; ErrWrongType when it has a fraction.
func (c *Config) Int(key string) (int64, error) {
	value, err := c.lookup(key)
	if err != nil {
		return 0, err
	}
	n, ok := value.(json.Number)
	if !ok {
		return 0, c.wrongType(key, "number", value)
	}
	i, err := n.Int64()
	if err != nil {
		return 0, c.wrongType(key, "integer", value)
	}
	return i, nil
}

// Bool returns the boolean value of key.
func (c *Config) Bool(key string) (bool, error) {
	value, err := c.lookup(key)
	if err != nil {
		return false, err
	}
	b, ok := value.(bool)
	if !ok {
		return false, c.wrongType(key, "boolean", value)
	}
	return b, nil
}

// JSON decodes the value of key (any type) into target, like json.Unmarshal.
func (c *Config) JSON(key string, target interface{}) error {
	value, err := c.lookup(key)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(value)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, target)
}

// StringOr returns the string value of key, or fallback when the key is absent or of another type.
func (c *Config) StringOr(key, fallback string) string {
	if s, err := c.String(key); err == nil {
		return s
	}
	return fallback
}

// NumberOr returns the number value of key, or fallback.
func (c *Config) NumberOr(key string, fallback float64) float64 {
	if n, err := c.Number(key); err == nil {
		return n
	}
	return fallback
}

// BoolOr returns the boolean value of key, or fallback.
func (c *Config) BoolOr(key string, fallback bool) bool {
	if b, err := c.Bool(key); err == nil {
		return b
	}
	return fallback
}

func jsonType(value interface{}) string {
	switch value.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case json.Number, float64:
		return "number"
	case bool:
		return "boolean"
	case []interface{}:
		return "array"
	default:
		return "object"
	}
}

// decodeValues decodes a JSON object keeping numbers exact (json.Number).
func decodeValues(raw []byte) (map[string]interface{}, error) {
	var values map[string]interface{}
	decoder := json.NewDecoder(bytesReader(raw))
	decoder.UseNumber()
	if err := decoder.Decode(&values); err != nil {
		return nil, err
	}
	if values == nil {
		return nil, fmt.Errorf("the answer is not a JSON object")
	}
	return values, nil
}
