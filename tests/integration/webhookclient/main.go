// SPDX-License-Identifier: Apache-2.0
// A client that calls tableguard as the API server's webhook client does: Go's net/http
// Transport over TLS, keep-alive with an idle timeout (90 s in the API server), a new connection
// whenever none is idle, and no retry of a POST. The integration tests build it with Debian's
// golang-go and read the JSON it prints.
//
//	idle: -conns N connections each send a review, stay idle for -wait plus an offset spread
//	      evenly over [-spread, +spread], and send another on the same pooled connection.
//	load: -workers N goroutines share one Transport and send reviews back to back until stdin
//	      closes; each outcome is counted. -timeout gives each call the API server's deadline
//	      (a call past it is a failed call).
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"strings"
	"sync"
	"time"
)

type outcome struct {
	Sent      int      `json:"sent"`
	OK        int      `json:"ok"`
	Failed    int      `json:"failed"`  // written on a connection, then no answer: a failed call
	Refused   int      `json:"refused"` // no connection: nothing was sent
	Reused    int      `json:"reused"`  // answered on a pooled connection
	Closing   int      `json:"closing"` // answers that carried Connection: close
	Errors    []string `json:"errors"`
	mu        sync.Mutex
	errorSeen map[string]bool
}

func (o *outcome) add(ok, gotConn, reused, closing bool, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.Sent++
	switch {
	case ok:
		o.OK++
	case gotConn:
		o.Failed++
	default:
		o.Refused++
	}
	if ok && reused {
		o.Reused++
	}
	if closing {
		o.Closing++
	}
	if err != nil && gotConn && !o.errorSeen[err.Error()] && len(o.Errors) < 20 {
		o.errorSeen[err.Error()] = true
		o.Errors = append(o.Errors, err.Error())
	}
}

func transport(ca string, idle time.Duration) *http.Transport {
	pem, err := os.ReadFile(ca)
	if err != nil {
		panic(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	// The settings of k8s.io/apimachinery's SetTransportDefaults that matter here.
	return &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, ServerName: "localhost"},
		IdleConnTimeout:     idle,
		MaxIdleConnsPerHost: 100,
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   false,
	}
}

// post sends one review and reports whether it was answered 200 with the review's uid.
func post(c *http.Client, url string, body []byte, uid string, o *outcome) bool {
	var gotConn, reused bool
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		gotConn, reused = true, i.Reused
	}}
	ctx := httptrace.WithClientTrace(context.Background(), trace)
	req, _ := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, */*")
	req.GetBody = nil // the API server's request cannot be replayed by the transport
	resp, err := c.Do(req)
	if err != nil {
		o.add(false, gotConn, reused, false, err)
		return false
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	closing := resp.Close
	ok := err == nil && resp.StatusCode == 200 && strings.Contains(string(data), uid)
	if !ok && err == nil {
		err = fmt.Errorf("status %d: %.200s", resp.StatusCode, data)
	}
	o.add(ok, gotConn, reused, closing, err)
	return ok
}

func main() {
	mode := flag.String("mode", "idle", "idle or load")
	url := flag.String("url", "", "https://127.0.0.1:PORT/validate?timeout=10s")
	ca := flag.String("ca", "", "CA certificate")
	bodyFile := flag.String("body", "", "the review to send")
	uid := flag.String("uid", "", "the review's uid, expected in every answer")
	idle := flag.Duration("idle", 90*time.Second, "the Transport's IdleConnTimeout")
	conns := flag.Int("conns", 40, "idle: connections")
	wait := flag.Duration("wait", 2*time.Second, "idle: time idle before the second request")
	spread := flag.Duration("spread", 20*time.Millisecond, "idle: offsets around -wait")
	workers := flag.Int("workers", 8, "load: concurrent senders")
	timeout := flag.Duration("timeout", 0, "each call's deadline, as the API server's webhook "+
		"timeoutSeconds (0: none)")
	flag.Parse()
	body, err := os.ReadFile(*bodyFile)
	if err != nil {
		panic(err)
	}
	o := &outcome{Errors: []string{}, errorSeen: map[string]bool{}}
	var wg sync.WaitGroup
	if *mode == "idle" {
		warm := &outcome{Errors: []string{}, errorSeen: map[string]bool{}}
		for i := 0; i < *conns; i++ {
			offset := time.Duration(0)
			if *conns > 1 {
				offset = -*spread + time.Duration(i)*2**spread/time.Duration(*conns-1)
			}
			wg.Add(1)
			go func(offset time.Duration) {
				defer wg.Done()
				c := &http.Client{Transport: transport(*ca, *idle)}
				// The first request opens the connection; a loaded machine may fail a
				// handshake, which is not what is measured.
				for try := 0; try < 5 && !post(c, *url, body, *uid, warm); try++ {
				}
				time.Sleep(*wait + offset)
				post(c, *url, body, *uid, o)
			}(offset)
		}
		wg.Wait()
		if warm.OK < *conns {
			fmt.Fprintf(os.Stderr, "warm-up failed: %+v\n", warm.Errors)
			os.Exit(2)
		}
	} else {
		c := &http.Client{Transport: transport(*ca, *idle), Timeout: *timeout}
		stop := make(chan struct{})
		go func() {
			io.Copy(io.Discard, os.Stdin)
			close(stop)
		}()
		for i := 0; i < *workers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					post(c, *url, body, *uid, o)
				}
			}()
		}
		wg.Wait()
	}
	json.NewEncoder(os.Stdout).Encode(o)
}
