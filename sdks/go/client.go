// Package konfig is the Konfig SDK for Go: read a namespace's resolved config with typed
// getters, watch it change (server-sent events, long-poll fallback), and start from a
// last-known-good file when the server is down. It uses the standard library only.
package konfig

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"math/rand"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// UserAgent is sent with every request.
const UserAgent = "konfig-go/0.1.0"

// RetryPolicy retries idempotent calls (reads) on network errors and 5xx, never on 4xx. The
// pause before retry n is drawn from [0, min(Cap, Base*2^n)] ("full jitter").
type RetryPolicy struct {
	Attempts int // in all, the first included (default 3)
	Base     time.Duration
	Cap      time.Duration
}

// Options configure a Client. Empty fields take their defaults.
type Options struct {
	URL       string // the server, e.g. https://konfig.example.com (FromEnv: KONFIG_URL)
	Token     string // an API token, kfg_… (FromEnv: KONFIG_TOKEN)
	CachePath string // turns on the last-known-good file
	FailFast  bool   // never fall back to the last-known-good file, never retry
	Timeout   time.Duration
	Retry     RetryPolicy
	HTTP      *http.Client
	Logger    *log.Logger // where stale-config warnings go (default: the standard logger)
	// Instance names this process to the server's usage analytics (X-Konfig-Instance); default
	// KONFIG_INSTANCE, else the host name and the process id.
	Instance string
}

// Client reads resolved configs. It is safe for concurrent use.
type Client struct {
	url      string
	token    string
	failFast bool
	timeout  time.Duration
	retry    RetryPolicy
	http     *http.Client
	cache    *LastKnownGood
	logger   *log.Logger
	instance string
}

// New returns a client for opts.URL.
func New(opts Options) (*Client, error) {
	if opts.URL == "" {
		return nil, errors.New("konfig: no server URL: set Options.URL or KONFIG_URL")
	}
	if _, err := url.Parse(opts.URL); err != nil {
		return nil, fmt.Errorf("konfig: %w", err)
	}
	c := &Client{
		url:      strings.TrimRight(opts.URL, "/"),
		token:    opts.Token,
		instance: instanceName(opts.Instance),
		failFast: opts.FailFast,
		timeout:  opts.Timeout,
		retry:    opts.Retry,
		http:     opts.HTTP,
		logger:   opts.Logger,
	}
	if c.timeout == 0 {
		c.timeout = 10 * time.Second
	}
	if c.retry.Attempts == 0 {
		c.retry.Attempts = 3
	}
	if c.retry.Base == 0 {
		c.retry.Base = 200 * time.Millisecond
	}
	if c.retry.Cap == 0 {
		c.retry.Cap = 5 * time.Second
	}
	if c.http == nil {
		c.http = &http.Client{} // time limits are per request (a stream has none)
	}
	if c.logger == nil {
		c.logger = log.Default()
	}
	if opts.CachePath != "" {
		c.cache = &LastKnownGood{Path: opts.CachePath}
	}
	return c, nil
}

// FromEnv returns a client configured from KONFIG_URL and KONFIG_TOKEN, with opts on top.
func FromEnv(opts Options) (*Client, error) {
	if opts.URL == "" {
		opts.URL = os.Getenv("KONFIG_URL")
	}
	if opts.Token == "" {
		opts.Token = os.Getenv("KONFIG_TOKEN")
	}
	return New(opts)
}

// Get returns the resolved config of namespace name. When the server cannot be reached (or
// answers 5xx) and a last-known-good copy exists, it returns that copy with Stale set and a
// logged warning; with FailFast, the error at once.
func (c *Client) Get(ctx context.Context, name string) (*Config, error) {
	config, _, err := c.read(ctx, name, "", 0)
	if err != nil {
		if stale := c.fallback(name, err); stale != nil {
			return stale, nil
		}
		return nil, err
	}
	return config, nil
}

// read is one GET of name's resolved config: conditional with etag, a long poll with wait.
// It answers changed=false on 304 and saves what it read to the last-known-good file.
func (c *Client) read(ctx context.Context, name, etag string, wait time.Duration) (*Config, bool, error) {
	path := c.configPath(name)
	header := http.Header{"Accept": {"application/json"}}
	timeout := c.timeout
	if etag != "" {
		header.Set("If-None-Match", etag)
		if wait > 0 {
			path += fmt.Sprintf("?wait=%d", int(math.Ceil(wait.Seconds())))
			timeout = wait + 15*time.Second
		}
	}
	resp, err := c.send(ctx, path, header, timeout)
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified {
		return nil, false, nil
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, false, connectionError(c.url, err)
	}
	values, err := decodeValues(raw)
	if err != nil {
		return nil, false, &Error{Code: "INTERNAL", Status: resp.StatusCode, Message: fmt.Sprintf("%s: %v", name, err)}
	}
	config := &Config{Namespace: name, Values: values, ETag: resp.Header.Get("ETag")}
	c.remember(config)
	return config, true, nil
}

// send does a GET (idempotent, so retried on network errors and 5xx unless FailFast). The
// answer's body is the caller's to close; an error answer becomes an *Error.
func (c *Client) send(ctx context.Context, path string, header http.Header, timeout time.Duration) (*http.Response, error) {
	attempts := c.retry.Attempts
	if c.failFast {
		attempts = 1
	}
	for attempt := 1; ; attempt++ {
		resp, err := c.do(ctx, path, header, timeout)
		if err == nil && resp.StatusCode < 400 {
			return resp, nil
		}
		var failure error = err
		if err == nil {
			failure = errorFromResponse(resp)
			resp.Body.Close()
		}
		if attempt >= attempts || ctx.Err() != nil || !(errors.Is(failure, ErrConnection) || errors.Is(failure, ErrServer)) {
			return nil, failure
		}
		if !sleep(ctx, c.pause(attempt)) {
			return nil, failure
		}
	}
}

// do is one request; timeout 0 means none (an event stream, limited by ctx alone).
func (c *Client) do(ctx context.Context, path string, header http.Header, timeout time.Duration) (*http.Response, error) {
	cancel := context.CancelFunc(func() {})
	if timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, timeout)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url+path, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header = header.Clone()
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set("X-Konfig-Instance", c.instance)
	req.Header.Set("X-Konfig-SDK", UserAgent)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		cancel()
		return nil, connectionError(c.url, err)
	}
	resp.Body = cancelOnClose{resp.Body, cancel}
	return resp, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// fallback is the last-known-good copy of name when err allows falling back to it.
func (c *Client) fallback(name string, err error) *Config {
	if c.failFast || c.cache == nil || !(errors.Is(err, ErrConnection) || errors.Is(err, ErrServer)) {
		return nil
	}
	config := c.cache.Get(name)
	if config != nil {
		c.logger.Printf("konfig: Konfig is unreachable (%v); using the last-known-good %s saved %s from %s",
			err, name, config.SavedAt.Format(time.RFC3339), c.cache.Path)
	}
	return config
}

func (c *Client) remember(config *Config) {
	if c.cache == nil {
		return
	}
	if err := c.cache.Put(config); err != nil {
		c.logger.Printf("konfig: could not save the last-known-good file %s: %v", c.cache.Path, err)
	}
}

func (c *Client) configPath(name string) string {
	segments := strings.Split(name, "/")
	for i, segment := range segments {
		segments[i] = url.PathEscape(segment)
	}
	return "/api/v1/config/" + strings.Join(segments, "/")
}

func (c *Client) pause(retry int) time.Duration {
	ceiling := math.Min(float64(c.retry.Cap), float64(c.retry.Base)*math.Pow(2, float64(retry)))
	return time.Duration(jitter() * ceiling)
}

// backoff is a jittered exponential pause after failures consecutive failures (watch reconnects).
func backoff(failures int) time.Duration {
	ceiling := math.Min(float64(30*time.Second), float64(500*time.Millisecond)*math.Pow(2, float64(failures-1)))
	return time.Duration(ceiling/2 + jitter()*ceiling/2)
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func bytesReader(raw []byte) io.Reader { return bytes.NewReader(raw) }

// Go 1.19's math/rand starts from the same seed in every process: clients restarting together
// would draw the same pauses. This source is seeded per process (and locked: rand.Rand is not).
var (
	rngMu sync.Mutex
	rng   = rand.New(rand.NewSource(time.Now().UnixNano() ^ int64(os.Getpid())<<32))
)

func jitter() float64 {
	rngMu.Lock()
	defer rngMu.Unlock()
	return rng.Float64()
}

// instanceName is the X-Konfig-Instance a client sends: given, KONFIG_INSTANCE, or host-pid.
func instanceName(given string) string {
	if given != "" {
		return given
	}
	if named := os.Getenv("KONFIG_INSTANCE"); named != "" {
		return named
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "go"
	}
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}
