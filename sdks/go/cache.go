package konfig

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// LastKnownGood is the file of the configs a service last read, used when the server is
// unreachable at start-up. It is the same JSON the Python and JavaScript SDKs write:
// {"version": 1, "configs": {name: {"json": {"value", "etag", "saved_at"}}}}. Every write
// goes to a temporary file (mode 0600) in the same directory, then a rename puts it in place:
// a reader, or a crash, never sees half a file.
type LastKnownGood struct {
	Path string
	mu   sync.Mutex
}

type cachedEntry struct {
	Value   json.RawMessage `json:"value"`
	ETag    *string         `json:"etag"`
	SavedAt float64         `json:"saved_at"`
}

type cacheFile struct {
	Version int                                   `json:"version"`
	Configs map[string]map[string]json.RawMessage `json:"configs"`
}

func (l *LastKnownGood) read() cacheFile {
	content := cacheFile{Version: 1}
	raw, err := os.ReadFile(l.Path)
	if err == nil {
		_ = json.Unmarshal(raw, &content) // an unreadable file is replaced by the next write
	}
	if content.Configs == nil {
		content.Configs = map[string]map[string]json.RawMessage{}
	}
	return content
}

// Get returns the saved config of name, or nil when there is none.
func (l *LastKnownGood) Get(name string) *Config {
	l.mu.Lock()
	defer l.mu.Unlock()
	raw, ok := l.read().Configs[name]["json"]
	if !ok {
		return nil
	}
	var entry cachedEntry
	if json.Unmarshal(raw, &entry) != nil {
		return nil
	}
	values, err := decodeValues(entry.Value)
	if err != nil {
		return nil
	}
	config := &Config{Namespace: name, Values: values, Stale: true}
	if entry.ETag != nil {
		config.ETag = *entry.ETag
	}
	seconds := int64(entry.SavedAt)
	config.SavedAt = time.Unix(seconds, int64((entry.SavedAt-float64(seconds))*1e9))
	return config
}

// Put saves config as the last-known-good config of its namespace.
func (l *LastKnownGood) Put(config *Config) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	content := l.read()
	value, err := json.Marshal(config.Values)
	if err != nil {
		return err
	}
	var etag *string
	if config.ETag != "" {
		etag = &config.ETag
	}
	now := time.Now()
	entry, err := json.Marshal(cachedEntry{Value: value, ETag: etag, SavedAt: float64(now.UnixNano()) / 1e9})
	if err != nil {
		return err
	}
	if content.Configs[config.Namespace] == nil {
		content.Configs[config.Namespace] = map[string]json.RawMessage{}
	}
	content.Configs[config.Namespace]["json"] = entry
	content.Version = 1
	raw, err := json.Marshal(content)
	if err != nil {
		return err
	}
	return l.write(raw)
}

func (l *LastKnownGood) write(raw []byte) error {
	dir := filepath.Dir(l.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// CreateTemp makes the file 0600: the secrets in it are never readable by others.
	temp, err := os.CreateTemp(dir, "."+filepath.Base(l.Path)+".")
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			temp.Close()
			os.Remove(temp.Name())
		}
	}()
	if _, err := temp.Write(raw); err != nil {
		return err
	}
	if err := temp.Sync(); err != nil {
		return err
	}
	if err := temp.Close(); err != nil {
		return err
	}
	if err := os.Rename(temp.Name(), l.Path); err != nil {
		return fmt.Errorf("last-known-good file: %w", err)
	}
	ok = true
	return nil
}
