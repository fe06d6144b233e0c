package agent

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"

	"github.com/errnowatch/errnowatch/pkg/collector"
)

// ServeUI serves the embedded collector's web UI on addr, which must be a
// loopback address: there is no API server to check tokens on one host, so
// it signs in with an access key made fresh for this run, which it returns
// for the person who started the agent (never a fixed password). Close the
// UI before the Embedded.
func (e *Embedded) ServeUI(addr string) (ui *collector.UIServer, accessKey string, err error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return nil, "", fmt.Errorf("web UI access key: %w", err)
	}
	key := base64.RawURLEncoding.EncodeToString(b)
	u, err := e.server.ServeUI(collector.UIListen{Address: addr, LocalKey: key})
	if err != nil {
		return nil, "", fmt.Errorf("--ui-address %s: %w", addr, err)
	}
	return u, key, nil
}
