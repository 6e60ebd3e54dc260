// Command konfig-conformance is the conformance suite's driver (tests/sdks/ in the Konfig
// repository): one JSON line per result on stdout, the same commands and output as the
// JavaScript and Python drivers.
//
//	konfig-conformance read NS [--cache PATH] [--fail-fast]
//	konfig-conformance get NS KEY string|number|boolean|json
//	konfig-conformance watch NS COUNT [--mode auto|sse|poll] [--wait SECONDS] [--cache PATH]
//
// The server and token come from KONFIG_URL and KONFIG_TOKEN. A failure prints
// {"error": {"code", "type", "status"}} and exits 1.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"strconv"
	"sync"
	"time"

	konfig "github.com/konfig/konfig/sdks/go"
)

var out = struct {
	sync.Mutex
	*json.Encoder
}{Encoder: json.NewEncoder(os.Stdout)}

func print(line interface{}) {
	out.Lock()
	defer out.Unlock()
	_ = out.Encode(line)
}

func shown(config *konfig.Config) map[string]interface{} {
	return map[string]interface{}{"config": config.Values, "stale": config.Stale, "etag": config.ETag}
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	var positional []string
	flags := map[string]string{}
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "--fail-fast":
			flags["fail-fast"] = "1"
		case len(args[i]) > 2 && args[i][:2] == "--" && i+1 < len(args):
			flags[args[i][2:]] = args[i+1]
			i++
		default:
			positional = append(positional, args[i])
		}
	}
	if len(positional) < 2 {
		fmt.Fprintln(os.Stderr, "usage: konfig-conformance read|get|watch NS ...")
		return 2
	}
	command, name, rest := positional[0], positional[1], positional[2:]
	client, err := konfig.FromEnv(konfig.Options{
		CachePath: flags["cache"],
		FailFast:  flags["fail-fast"] == "1",
		Logger:    log.New(os.Stderr, "", log.LstdFlags),
	})
	if err != nil {
		return fail(err)
	}
	ctx := context.Background()
	switch command {
	case "read":
		config, err := client.Get(ctx, name)
		if err != nil {
			return fail(err)
		}
		print(shown(config))
	case "get":
		if len(rest) != 2 {
			return fail(errors.New("get NS KEY TYPE"))
		}
		config, err := client.Get(ctx, name)
		if err != nil {
			return fail(err)
		}
		var value interface{}
		switch key := rest[0]; rest[1] {
		case "string":
			value, err = config.String(key)
		case "number":
			value, err = config.Number(key)
		case "boolean":
			value, err = config.Bool(key)
		case "json":
			var decoded interface{}
			err = config.JSON(key, &decoded)
			value = decoded
		default:
			err = fmt.Errorf("unknown type %s", rest[1])
		}
		if err != nil {
			return fail(err)
		}
		print(map[string]interface{}{"value": value})
	case "watch":
		remaining := 1
		if len(rest) > 0 {
			if remaining, err = strconv.Atoi(rest[0]); err != nil {
				return fail(err)
			}
		}
		wait := 30 * time.Second
		if seconds, err := strconv.Atoi(flags["wait"]); err == nil {
			wait = time.Duration(seconds) * time.Second
		}
		var watcher *konfig.Watcher
		ready := make(chan struct{})
		stop := make(chan struct{}, 1)
		watcher = client.Watch(ctx, name, konfig.WatchOptions{
			Mode: flags["mode"],
			Wait: wait,
			OnChange: func(config, _ *konfig.Config) {
				<-ready
				line := shown(config)
				line["mode"] = watcher.Mode()
				print(line)
				if remaining--; remaining == 0 {
					stop <- struct{}{}
				}
			},
			OnError: func(err error, retrying bool) {
				if retrying {
					<-ready
					print(map[string]interface{}{"retrying": map[string]interface{}{"code": code(err), "mode": watcher.Mode()}})
				}
			},
		})
		close(ready)
		select {
		case <-stop:
			watcher.Stop()
		case <-watcher.Done():
			if err := watcher.Err(); err != nil {
				return fail(err)
			}
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown command", command)
		return 2
	}
	return 0
}

func code(err error) string {
	var e *konfig.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return "DRIVER"
}

func fail(err error) int {
	line := map[string]interface{}{"code": "DRIVER", "type": fmt.Sprintf("%T", err), "status": nil, "message": err.Error()}
	var e *konfig.Error
	if errors.As(err, &e) {
		line["code"], line["type"] = e.Code, "*konfig.Error"
		if e.Status != 0 {
			line["status"] = e.Status
		}
	}
	print(map[string]interface{}{"error": line})
	return 1
}
