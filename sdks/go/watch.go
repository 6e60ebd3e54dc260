package konfig

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// WatchOptions configure a Watch. Empty fields take their defaults.
type WatchOptions struct {
	// Mode is "auto" (server-sent events, long polls when no stream can be had), "sse" or "poll".
	Mode string
	// Wait is how long one long poll waits for a change (default 30 s).
	Wait time.Duration
	// IdleTimeout drops and reopens a stream silent this long, heartbeats included (default 45 s).
	IdleTimeout time.Duration
	// OnChange is called with each new config and the one it replaces (nil the first time).
	OnChange func(config, previous *Config)
	// OnError is called on every failure; retrying is false for the one that ends the watch.
	OnError func(err error, retrying bool)
}

// Watcher follows a namespace: the current config, then every change. It streams server-sent
// events resumed with Last-Event-ID (the last ETag seen), so no change is missed across
// reconnects, and long-polls with the ETag where no stream can be had. Network errors, 5xx and
// 429 are retried with jittered exponential backoff; a revoked token, a lost permission or a
// deleted namespace end it with that error.
type Watcher struct {
	client  *Client
	name    string
	options WatchOptions
	cancel  context.CancelFunc
	done    chan struct{}

	mu       sync.Mutex
	current  *Config
	mode     string
	err      error
	failures int
}

// Watch starts following name until ctx ends, Stop is called or a permanent error happens.
func (c *Client) Watch(ctx context.Context, name string, options WatchOptions) *Watcher {
	if options.Wait == 0 {
		options.Wait = 30 * time.Second
	}
	if options.IdleTimeout == 0 {
		options.IdleTimeout = 45 * time.Second
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &Watcher{client: c, name: name, options: options, cancel: cancel, done: make(chan struct{}), mode: "sse"}
	if options.Mode == "poll" {
		w.mode = "poll"
	}
	go w.run(ctx)
	return w
}

// Stop ends the watch and waits until it has ended.
func (w *Watcher) Stop() {
	w.cancel()
	<-w.done
}

// Done is closed when the watch has ended.
func (w *Watcher) Done() <-chan struct{} { return w.done }

// Err is the error that ended the watch (nil when stopped).
func (w *Watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Current is the latest config seen (Stale when it came from the last-known-good file).
func (w *Watcher) Current() *Config {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.current
}

// Mode is how the watch follows changes right now: "sse" or "poll".
func (w *Watcher) Mode() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mode
}

func (w *Watcher) run(ctx context.Context) {
	defer close(w.done)
	defer w.cancel()
	for ctx.Err() == nil {
		var err error
		var streamed bool
		if w.Mode() == "sse" {
			streamed, err = w.stream(ctx)
		} else {
			streamed, err = true, w.poll(ctx)
		}
		if ctx.Err() != nil {
			return
		}
		pause := backoff(1) // the server closed the stream (a restart): reconnect soon
		if err == nil && !streamed {
			w.mu.Lock()
			w.mode = "poll" // no event stream here (a proxy, an old server): long polls
			w.mu.Unlock()
			continue
		}
		if err != nil {
			if !transient(err) || (w.client.failFast && w.Current() == nil) {
				w.mu.Lock()
				w.err = err
				w.mu.Unlock()
				w.report(err, false)
				return
			}
			w.failures++
			if w.Current() == nil {
				if stale := w.client.fallback(w.name, err); stale != nil {
					w.emit(stale)
				}
			}
			w.report(err, true)
			pause = backoff(w.failures)
			var e *Error
			if errors.As(err, &e) && e.RetryAfter > pause {
				pause = e.RetryAfter
			}
		}
		if !sleep(ctx, pause) {
			return
		}
	}
}

// poll long-polls until ctx ends or a read fails.
func (w *Watcher) poll(ctx context.Context) error {
	for ctx.Err() == nil {
		etag := ""
		if current := w.Current(); current != nil && !current.Stale {
			etag = current.ETag
		}
		config, changed, err := w.client.read(ctx, w.name, etag, w.options.Wait)
		if err != nil {
			return err
		}
		w.failures = 0
		if changed {
			w.emit(config)
		}
	}
	return nil
}

// stream follows one event stream to its end; false when the server offers no stream.
func (w *Watcher) stream(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	header := http.Header{"Accept": {"text/event-stream"}}
	if current := w.Current(); current != nil && !current.Stale && current.ETag != "" {
		header.Set("Last-Event-ID", current.ETag)
	}
	resp, err := w.client.do(ctx, w.client.configPath(w.name)+"/events", header, 0)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	// Konfig's own refusals are JSON; a proxy's or an old server's page for the path is not.
	contentType := resp.Header.Get("Content-Type")
	foreign := noStream[resp.StatusCode] && !strings.HasPrefix(contentType, "application/json")
	if resp.StatusCode >= 400 && !foreign {
		return false, errorFromResponse(resp)
	}
	if !strings.HasPrefix(contentType, "text/event-stream") {
		if w.options.Mode == "sse" {
			return false, &Error{Code: "INTERNAL", Status: resp.StatusCode,
				Message: fmt.Sprintf("%s: no event stream (%q)", w.name, resp.Header.Get("Content-Type"))}
		}
		return false, nil
	}
	w.failures = 0
	var silent atomic.Bool
	idle := time.AfterFunc(w.options.IdleTimeout, func() { silent.Store(true); cancel() })
	defer idle.Stop()
	reader := bufio.NewReader(resp.Body)
	var event, id string
	var data []string
	for {
		line, err := reader.ReadString('\n')
		if err != nil {
			if silent.Load() {
				return true, &Error{Code: "INTERNAL", Message: w.name + ": the event stream went silent"}
			}
			if ctx.Err() != nil || line == "" {
				return true, nil // the server ended the stream (or we were stopped)
			}
			return true, connectionError(w.client.url, err)
		}
		idle.Reset(w.options.IdleTimeout)
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if len(data) > 0 {
				if err := w.dispatch(event, id, strings.Join(data, "\n")); err != nil {
					return true, err
				}
			}
			event, data = "", nil
		case strings.HasPrefix(line, ":"): // a heartbeat
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "event":
				event = value
			case "data":
				data = append(data, value)
			case "id":
				id = value
			}
		}
	}
}

// noStream are the statuses that, without Konfig's JSON error body, mean "no event stream here".
var noStream = map[int]bool{404: true, 405: true, 406: true, 501: true}

func (w *Watcher) dispatch(event, id, data string) error {
	switch event {
	case "change":
		var body struct {
			ETag   string          `json:"etag"`
			Config json.RawMessage `json:"config"`
		}
		if err := json.Unmarshal([]byte(data), &body); err != nil {
			return &Error{Code: "INTERNAL", Message: fmt.Sprintf("%s: a bad event: %v", w.name, err)}
		}
		values, err := decodeValues(body.Config)
		if err != nil {
			return &Error{Code: "INTERNAL", Message: fmt.Sprintf("%s: a bad event: %v", w.name, err)}
		}
		etag := body.ETag
		if etag == "" {
			etag = `"` + id + `"`
		}
		config := &Config{Namespace: w.name, Values: values, ETag: etag}
		w.client.remember(config)
		w.emit(config)
	case "error":
		var body struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal([]byte(data), &body)
		if body.Code == "" {
			body.Code = "INTERNAL"
		}
		return &Error{Code: body.Code, Message: body.Message}
	case "deleted":
		return &Error{Code: "NOT_FOUND", Status: 404, Message: "namespace " + w.name + " was deleted"}
	}
	return nil
}

func (w *Watcher) emit(config *Config) {
	w.mu.Lock()
	previous := w.current
	if previous != nil && !previous.Stale && !config.Stale && previous.ETag == config.ETag {
		w.mu.Unlock()
		return // the same content again (a reconnect that raced a change)
	}
	w.current = config
	w.mu.Unlock()
	if w.options.OnChange != nil {
		w.options.OnChange(config, previous)
	}
}

func (w *Watcher) report(err error, retrying bool) {
	if w.options.OnError != nil {
		w.options.OnError(err, retrying)
	}
}
