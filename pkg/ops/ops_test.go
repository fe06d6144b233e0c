package ops

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/errnowatch/errnowatch/internal/testutil"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func TestServeSplitAndShared(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "m 1\n") })
	notReady := func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "store down\n")
	}
	m, h := testutil.FreeAddr(t), testutil.FreeAddr(t)
	stop, err := Serve(Options{MetricsAddress: m, HealthAddress: h, Metrics: metrics, Ready: notReady})
	if err != nil {
		t.Fatal(err)
	}
	if c, b := get(t, "http://"+m+"/metrics"); c != 200 || b != "m 1" {
		t.Errorf("/metrics = %d %q", c, b)
	}
	if c, _ := get(t, "http://"+m+"/healthz"); c != 404 {
		t.Errorf("/healthz on the metrics address = %d, want 404", c)
	}
	if c, b := get(t, "http://"+h+"/healthz"); c != 200 || b != "ok" {
		t.Errorf("/healthz = %d %q", c, b)
	}
	if c, b := get(t, "http://"+h+"/readyz"); c != 503 || b != "store down" {
		t.Errorf("/readyz = %d %q", c, b)
	}
	stop()
	if _, err := http.Get("http://" + h + "/healthz"); err == nil {
		t.Error("still serving after stop")
	}

	one := testutil.FreeAddr(t)
	stop, err = Serve(Options{MetricsAddress: one, HealthAddress: one, Metrics: metrics, Ready: notReady})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	for path, want := range map[string]int{"/metrics": 200, "/healthz": 200, "/readyz": 503} {
		if c, _ := get(t, "http://"+one+path); c != want {
			t.Errorf("%s on one address = %d, want %d", path, c, want)
		}
	}
	if _, err := Serve(Options{MetricsAddress: one, Metrics: metrics, Ready: notReady}); err == nil {
		t.Error("a taken address was accepted")
	}
}
