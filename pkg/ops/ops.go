// Package ops serves a process's operational endpoints: /metrics on one
// address, /healthz and /readyz on another (or on the same one). The agent
// and the collector both serve them through Serve; each brings its own
// metrics handler and its own idea of ready.
package ops

import (
	"fmt"
	"net"
	"net/http"
	"time"
)

// Options says what to serve where. An empty address serves nothing there;
// equal addresses serve everything on one listener.
type Options struct {
	MetricsAddress string
	HealthAddress  string
	// Metrics answers /metrics (a promhttp handler).
	Metrics http.Handler
	// Ready answers /readyz; /healthz always answers "ok" while the
	// process serves.
	Ready http.HandlerFunc
}

// Serve starts the listeners and serves on goroutines of its own until
// stop, which closes them. On error, what did start is stopped by stop.
func Serve(o Options) (stop func(), err error) {
	var servers []*http.Server
	stop = func() {
		for _, s := range servers {
			s.Close()
		}
	}
	start := func(addr string, h http.Handler) error {
		if addr == "" {
			return nil
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", addr, err)
		}
		s := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		servers = append(servers, s)
		go s.Serve(l) //nolint:errcheck // ends with http.ErrServerClosed at stop
		return nil
	}
	mm := http.NewServeMux()
	mm.Handle("/metrics", o.Metrics)
	hm := http.NewServeMux()
	hm.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	hm.HandleFunc("/readyz", o.Ready)
	if o.MetricsAddress == o.HealthAddress {
		mm.Handle("/healthz", hm)
		mm.Handle("/readyz", hm)
		return stop, start(o.MetricsAddress, mm)
	}
	if err := start(o.MetricsAddress, mm); err != nil {
		return stop, err
	}
	return stop, start(o.HealthAddress, hm)
}
