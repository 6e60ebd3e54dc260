package konfig

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestTypedGetters(t *testing.T) {
	values, err := decodeValues([]byte(`{"port": 8080, "ratio": 0.5, "name": "api", "on": true, "tags": ["a"]}`))
	if err != nil {
		t.Fatal(err)
	}
	config := &Config{Namespace: "a/b", Values: values}
	if n, err := config.Int("port"); err != nil || n != 8080 {
		t.Fatalf("Int: %v %v", n, err)
	}
	if f, err := config.Number("ratio"); err != nil || f != 0.5 {
		t.Fatalf("Number: %v %v", f, err)
	}
	if s, err := config.String("name"); err != nil || s != "api" {
		t.Fatalf("String: %v %v", s, err)
	}
	if b, err := config.Bool("on"); err != nil || !b {
		t.Fatalf("Bool: %v %v", b, err)
	}
	var tags []string
	if err := config.JSON("tags", &tags); err != nil || len(tags) != 1 || tags[0] != "a" {
		t.Fatalf("JSON: %v %v", tags, err)
	}
	if _, err := config.String("port"); !errors.Is(err, ErrWrongType) || !strings.Contains(err.Error(), "port is a number, not a string") {
		t.Fatalf("String(port): %v", err)
	}
	if _, err := config.Int("ratio"); !errors.Is(err, ErrWrongType) {
		t.Fatalf("Int(ratio): %v", err)
	}
	if _, err := config.Bool("absent"); !errors.Is(err, ErrMissingKey) {
		t.Fatalf("Bool(absent): %v", err)
	}
	if config.StringOr("absent", "x") != "x" || config.NumberOr("port", 1) != 8080 || config.BoolOr("name", true) != true {
		t.Fatal("the fallbacks")
	}
}

func TestLastKnownGoodIsReplacedWholeWithMode0600(t *testing.T) {
	dir := t.TempDir()
	cache := &LastKnownGood{Path: filepath.Join(dir, "nested", "lkg.json")}
	if cache.Get("a") != nil {
		t.Fatal("an absent file has no config")
	}
	for _, name := range []string{"a", "b"} {
		if err := cache.Put(&Config{Namespace: name, Values: map[string]interface{}{"x": json.Number("1")}, ETag: `"e"`}); err != nil {
			t.Fatal(err)
		}
	}
	got := cache.Get("a")
	if got == nil || !got.Stale || got.ETag != `"e"` || got.Values["x"] != json.Number("1") || time.Since(got.SavedAt) > time.Minute {
		t.Fatalf("Get: %+v", got)
	}
	if cache.Get("b") == nil {
		t.Fatal("the other namespace was lost")
	}
	info, err := os.Stat(cache.Path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("mode: %v %v", info, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(cache.Path))
	if len(entries) != 1 {
		t.Fatalf("a temporary file was left: %v", entries)
	}
	os.WriteFile(cache.Path, []byte("not json"), 0o600)
	if cache.Get("a") != nil {
		t.Fatal("an unreadable file is ignored")
	}
}

func TestErrorAnswersMapToCodes(t *testing.T) {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/config/missing":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(404)
			fmt.Fprint(w, `{"status": "error", "error": {"code": "NOT_FOUND", "message": "no namespace named missing", "details": {"a": 1}}}`)
		case "/api/v1/config/limited":
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(429)
		default:
			w.WriteHeader(502)
		}
	}))
	defer server.Close()
	client, _ := New(Options{URL: server.URL, Retry: RetryPolicy{Attempts: 2, Base: time.Millisecond, Cap: time.Millisecond}})
	_, err := client.Get(context.Background(), "missing")
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrNotFound) || e.Status != 404 || e.Message != "no namespace named missing" || e.Details["a"] != 1.0 {
		t.Fatalf("404: %#v", err)
	}
	if _, err = client.Get(context.Background(), "limited"); !errors.As(err, &e) || e.Code != "RATE_LIMITED" || e.RetryAfter != 3*time.Second {
		t.Fatalf("429: %#v", err)
	}
	if _, err = client.Get(context.Background(), "other"); !errors.Is(err, ErrServer) {
		t.Fatalf("502: %#v", err)
	}
}

func TestReadsRetryOn5xxAndFailFastDoesNot(t *testing.T) {
	var calls int32
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if atomic.AddInt32(&calls, 1)%2 == 1 {
			w.WriteHeader(503)
			return
		}
		w.Header().Set("ETag", `"e"`)
		fmt.Fprint(w, `{"ok": true}`)
	}))
	defer server.Close()
	client, _ := New(Options{URL: server.URL, Retry: RetryPolicy{Base: time.Millisecond, Cap: time.Millisecond}})
	config, err := client.Get(context.Background(), "a")
	if err != nil || !config.BoolOr("ok", false) || atomic.LoadInt32(&calls) != 2 {
		t.Fatalf("retried read: %v %v", config, err)
	}
	fast, _ := New(Options{URL: server.URL, FailFast: true})
	if _, err := fast.Get(context.Background(), "a"); !errors.Is(err, ErrServer) || atomic.LoadInt32(&calls) != 3 {
		t.Fatalf("fail fast: %v", err)
	}
}

func TestWatchFallsBackToLongPollsWithoutAStream(t *testing.T) {
	var version int32 = 1
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/events") {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(404) // a proxy's page, not Konfig's NOT_FOUND
			return
		}
		current := atomic.LoadInt32(&version)
		if r.Header.Get("If-None-Match") == fmt.Sprintf(`"v%d"`, current) {
			if r.URL.Query().Get("wait") == "" {
				t.Errorf("a conditional read without wait: %s", r.URL)
			}
			current = atomic.AddInt32(&version, 1)
		}
		w.Header().Set("ETag", fmt.Sprintf(`"v%d"`, current))
		fmt.Fprintf(w, `{"v": %d}`, current)
	}))
	defer server.Close()
	client, _ := New(Options{URL: server.URL})
	seen := make(chan *Config, 4)
	watcher := client.Watch(context.Background(), "a/b", WatchOptions{
		Wait:     5 * time.Second,
		OnChange: func(config, _ *Config) { seen <- config },
	})
	defer watcher.Stop()
	for want := int64(1); want <= 2; want++ {
		select {
		case config := <-seen:
			if got, _ := config.Int("v"); got != want {
				t.Fatalf("got v=%d, want %d", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no config")
		}
	}
	if watcher.Mode() != "poll" {
		t.Fatalf("mode %s", watcher.Mode())
	}
}

func TestWatchEndsOnARevokedTokenAndFollowsEvents(t *testing.T) {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		if r.Header.Get("Last-Event-ID") != "" {
			t.Errorf("a first stream sent Last-Event-ID %q", r.Header.Get("Last-Event-ID"))
		}
		fmt.Fprint(w, "retry: 2000\n\n: ping\n\nid: e1\r\nevent: change\r\ndata: {\"etag\": \"\\\"e1\\\"\", \"config\": {\"a\": 1}}\r\n\r\n")
		fmt.Fprint(w, "event: error\ndata: {\"code\": \"UNAUTHENTICATED\", \"message\": \"Token revoked\"}\n\n")
	}))
	defer server.Close()
	client, _ := New(Options{URL: server.URL, Token: "kfg_x"})
	var configs []*Config
	var failures []bool
	watcher := client.Watch(context.Background(), "a/b", WatchOptions{
		OnChange: func(config, _ *Config) { configs = append(configs, config) },
		OnError:  func(err error, retrying bool) { failures = append(failures, retrying) },
	})
	<-watcher.Done()
	if !errors.Is(watcher.Err(), ErrUnauthenticated) || len(failures) != 1 || failures[0] {
		t.Fatalf("err %v, failures %v", watcher.Err(), failures)
	}
	if len(configs) != 1 || configs[0].ETag != `"e1"` || watcher.Current() != configs[0] {
		t.Fatalf("configs %+v", configs)
	}
}

func TestFromEnvAndAnUnreachableServer(t *testing.T) {
	server := httptest.NewServer(http.NotFoundHandler())
	url := server.URL
	server.Close()
	t.Setenv("KONFIG_URL", url+"/")
	t.Setenv("KONFIG_TOKEN", "kfg_env")
	client, err := FromEnv(Options{Retry: RetryPolicy{Attempts: 2, Base: time.Millisecond, Cap: time.Millisecond}})
	if err != nil || client.url != url || client.token != "kfg_env" {
		t.Fatalf("FromEnv: %v %+v", err, client)
	}
	if _, err := client.Get(context.Background(), "a"); !errors.Is(err, ErrConnection) || !strings.Contains(err.Error(), "cannot reach Konfig") {
		t.Fatalf("Get: %v", err)
	}
	t.Setenv("KONFIG_URL", "")
	if _, err := FromEnv(Options{}); err == nil {
		t.Fatal("no URL must be refused")
	}
}

func TestASilentStreamIsReopenedFromTheLastEvent(t *testing.T) {
	var lastEventIDs []string
	var mu sync.Mutex
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		lastEventIDs = append(lastEventIDs, r.Header.Get("Last-Event-ID"))
		n := len(lastEventIDs)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "id: e%d\nevent: change\ndata: {\"etag\": \"\\\"e%d\\\"\", \"config\": {\"n\": %d}}\n\n", n, n, n)
		w.(http.Flusher).Flush()
		<-r.Context().Done() // …then nothing: no event, no heartbeat
	}))
	defer server.Close()
	client, _ := New(Options{URL: server.URL})
	seen := make(chan int64, 4)
	var codes []string
	watcher := client.Watch(context.Background(), "a/b", WatchOptions{
		IdleTimeout: 200 * time.Millisecond,
		OnChange: func(config, _ *Config) {
			n, _ := config.Int("n")
			seen <- n
		},
		OnError: func(err error, retrying bool) { codes = append(codes, err.(*Error).Code) },
	})
	for want := int64(1); want <= 2; want++ {
		select {
		case n := <-seen:
			if n != want {
				t.Fatalf("got n=%d, want %d", n, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no config")
		}
	}
	watcher.Stop()
	mu.Lock()
	defer mu.Unlock()
	if len(lastEventIDs) < 2 || lastEventIDs[0] != "" || lastEventIDs[1] != `"e1"` {
		t.Fatalf("Last-Event-IDs %q", lastEventIDs)
	}
	if len(codes) == 0 || codes[0] != "INTERNAL" {
		t.Fatalf("errors %v", codes)
	}
}

func TestBackoffIsJitteredGrowingAndCapped(t *testing.T) {
	seen := map[time.Duration]bool{}
	for i := 0; i < 50; i++ {
		first, late := backoff(1), backoff(30)
		seen[first] = true
		if first < 250*time.Millisecond || first > 500*time.Millisecond || late < 15*time.Second || late > 30*time.Second {
			t.Fatalf("backoff(1)=%v backoff(30)=%v", first, late)
		}
	}
	if len(seen) < 40 {
		t.Fatalf("not jittered: %d distinct pauses in 50", len(seen))
	}
}

func TestA429OnTheStreamIsWaitedOut(t *testing.T) {
	var calls int32
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if atomic.AddInt32(&calls, 1) == 1 {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(429)
			fmt.Fprint(w, `{"status": "error", "error": {"code": "RATE_LIMITED", "message": "slow down", "details": {}}}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "id: e1\nevent: change\ndata: {\"etag\": \"\\\"e1\\\"\", \"config\": {\"n\": 1}}\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer server.Close()
	client, _ := New(Options{URL: server.URL})
	seen := make(chan struct{}, 1)
	var codes []string
	watcher := client.Watch(context.Background(), "a/b", WatchOptions{
		OnChange: func(config, _ *Config) { seen <- struct{}{} },
		OnError:  func(err error, retrying bool) { codes = append(codes, fmt.Sprint(err.(*Error).Code, retrying)) },
	})
	select {
	case <-seen:
	case <-time.After(10 * time.Second):
		t.Fatal("no config")
	}
	watcher.Stop()
	if len(codes) != 1 || codes[0] != "RATE_LIMITEDtrue" {
		t.Fatalf("errors %v", codes)
	}
}
