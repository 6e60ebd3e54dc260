// The watcher side of bench/scale.py's change push: N streams read by one Go process, so that
// the readers cost the server's two cores little (a Python asyncio reader of 10,000 sockets
// costs as much CPU as the server's fan-out, and delays it).
//
// Opens N HTTP/1.1 streams to one address, each answered with chunked transfer-encoding:
//
//	-kind sse:  GET path (a Konfig event stream); an event is a block ending in a blank line
//	            whose data holds "seq":N
//	-kind etcd: POST /v3/watch (etcd's gRPC gateway) watching -key; a message is a JSON line,
//	            whose events' values are the decimal N
//
// Prints "ready" once every stream has sent its first message (Konfig: the current state;
// etcd: "created"), then waits for a line on stdin and prints one line per stream: the
// arrival of each N as "N:unix-nanoseconds", space-separated. Negative N are warm-up writes.
//
// Built by bench/scale.py into a temporary directory (standard library only):
//
//	go build -o reader bench/watch_reader.go
package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var seqPattern = regexp.MustCompile(`"seq":(-?\d+)`)

type watcher struct {
	mu   sync.Mutex
	seen map[int64]int64 // seq -> arrival, unix nanoseconds
}

func (w *watcher) note(seq int64, at int64) {
	w.mu.Lock()
	if _, ok := w.seen[seq]; !ok {
		w.seen[seq] = at
	}
	w.mu.Unlock()
}

type etcdMessage struct {
	Result struct {
		Created bool `json:"created"`
		Events  []struct {
			Kv struct {
				Value string `json:"value"`
			} `json:"kv"`
		} `json:"events"`
	} `json:"result"`
}

// request is what opens one stream.
func request(kind, host, path, token, key string) []byte {
	if kind == "etcd" {
		body := fmt.Sprintf(`{"create_request":{"key":"%s"}}`,
			base64.StdEncoding.EncodeToString([]byte(key)))
		return []byte(fmt.Sprintf("POST /v3/watch HTTP/1.1\r\nHost: %s\r\n"+
			"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", host, len(body), body))
	}
	return []byte(fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"+
		"Accept: text/event-stream\r\n\r\n", path, host, token))
}

// messages takes the complete messages off the front of buf: SSE events end in a blank line,
// etcd's messages in a newline.
func messages(kind string, buf []byte) ([][]byte, []byte) {
	sep := []byte("\n\n")
	if kind == "etcd" {
		sep = []byte("\n")
	}
	var found [][]byte
	for {
		i := bytes.Index(buf, sep)
		if i < 0 {
			return found, buf
		}
		found = append(found, buf[:i])
		buf = buf[i+len(sep):]
	}
}

// seqs are the sequence numbers a message carries, and whether it is a first message.
func seqs(kind string, message []byte) ([]int64, bool) {
	var found []int64
	if kind == "etcd" {
		var m etcdMessage
		if json.Unmarshal(message, &m) != nil {
			return nil, false
		}
		for _, e := range m.Result.Events {
			raw, err := base64.StdEncoding.DecodeString(e.Kv.Value)
			if err == nil {
				if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
					found = append(found, n)
				}
			}
		}
		return found, m.Result.Created
	}
	for _, match := range seqPattern.FindAllSubmatch(message, -1) {
		if n, err := strconv.ParseInt(string(match[1]), 10, 64); err == nil {
			found = append(found, n)
		}
	}
	return found, len(found) > 0
}

// open connects and sends the request, again a few times if the connection is refused or
// reset before the answer starts (a server busy with thousands of others may drop a few).
func open(kind, addr, path, token, key string) (net.Conn, *bufio.Reader, error) {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if attempt > 0 {
			time.Sleep(time.Duration(200*attempt) * time.Millisecond)
		}
		var conn net.Conn
		conn, err = net.Dial("tcp", addr)
		if err != nil {
			continue
		}
		if _, err = conn.Write(request(kind, addr, path, token, key)); err != nil {
			conn.Close()
			continue
		}
		reader := bufio.NewReaderSize(conn, 4096)
		var status string
		status, err = reader.ReadString('\n')
		if err != nil {
			conn.Close()
			continue
		}
		if !strings.HasPrefix(status, "HTTP/1.1 200") {
			conn.Close()
			return nil, nil, fmt.Errorf("answer %q", status)
		}
		return conn, reader, nil
	}
	return nil, nil, err
}

func stream(kind, addr, path, token, key string, w *watcher, first func(), fail func(error)) {
	conn, reader, err := open(kind, addr, path, token, key)
	if err != nil {
		fail(err)
		return
	}
	defer conn.Close()
	for { // the headers
		line, err := reader.ReadString('\n')
		if err != nil {
			fail(err)
			return
		}
		if line == "\r\n" {
			break
		}
	}
	started := false
	var pending []byte
	for { // chunked transfer-encoding
		line, err := reader.ReadString('\n')
		if err != nil {
			return
		}
		size, err := strconv.ParseInt(strings.TrimSpace(line), 16, 64)
		if err != nil || size == 0 {
			return
		}
		chunk := make([]byte, size+2)
		if _, err := io.ReadFull(reader, chunk); err != nil {
			return
		}
		at := time.Now().UnixNano()
		var complete [][]byte
		complete, pending = messages(kind, append(pending, chunk[:size]...))
		for _, message := range complete {
			numbers, opening := seqs(kind, message)
			for _, n := range numbers {
				w.note(n, at)
			}
			if opening && !started {
				started = true
				first()
			}
		}
	}
}

func main() {
	kind := flag.String("kind", "sse", "sse (Konfig) or etcd")
	addr := flag.String("addr", "127.0.0.1:8000", "host:port")
	path := flag.String("path", "", "the event stream's path (sse)")
	token := flag.String("token", "", "bearer token (sse)")
	key := flag.String("key", "seq", "the key watched (etcd)")
	count := flag.Int("n", 1000, "streams")
	flag.Parse()

	watchers := make([]*watcher, *count)
	var started, failed int64
	var failure atomic.Value
	fail := func(err error) {
		failure.Store(err.Error())
		atomic.AddInt64(&failed, 1)
	}
	for i := range watchers {
		watchers[i] = &watcher{seen: map[int64]int64{}}
		go stream(*kind, *addr, *path, *token, *key, watchers[i],
			func() { atomic.AddInt64(&started, 1) }, fail)
		if i%100 == 99 {
			time.Sleep(20 * time.Millisecond) // do not flood the accept queue
		}
	}
	for atomic.LoadInt64(&started) < int64(*count) {
		if atomic.LoadInt64(&failed) > 0 {
			fmt.Printf("failed: %v\n", failure.Load())
			os.Exit(1)
		}
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Println("ready")
	bufio.NewReader(os.Stdin).ReadString('\n')
	out := bufio.NewWriter(os.Stdout)
	for _, w := range watchers {
		w.mu.Lock()
		first := true
		for seq, at := range w.seen {
			if !first {
				out.WriteByte(' ')
			}
			first = false
			fmt.Fprintf(out, "%d:%d", seq, at)
		}
		w.mu.Unlock()
		out.WriteByte('\n')
	}
	out.Flush()
}
