// Command baseline is the reference point for bench/run.sh: a bare net/http server that answers
// every request with a fixed JSON body of a chosen byte size, so Rally's read path can be compared
// with what the same machine does when the handler costs nothing.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18090", "listen address")
	size := flag.Int("size", 255, "byte size of the JSON body (match Rally's read answer)")
	flag.Parse()

	body, err := jsonBody(*size)
	if err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(2)
	}
	length := strconv.Itoa(len(body))
	handler := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json; charset=utf-8")
		h.Set("Content-Length", length)
		_, _ = w.Write(body)
	})
	log.Printf("baseline serving %d-byte JSON on %s", len(body), *addr)
	if err := http.ListenAndServe(*addr, handler); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// jsonBody returns a valid JSON object of exactly size bytes, shaped like Rally's envelope and
// padded with a string field.
func jsonBody(size int) ([]byte, error) {
	const head = `{"meta":{"status":"success","statusCode":200},"message":"ok","data":{"pad":"`
	const tail = `"}}`
	pad := size - len(head) - len(tail)
	if pad < 0 {
		return nil, fmt.Errorf("size %d is below the minimum %d", size, len(head)+len(tail))
	}
	return []byte(head + strings.Repeat("x", pad) + tail), nil
}
