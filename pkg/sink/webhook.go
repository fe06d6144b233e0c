package sink

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Signature headers of the generic webhook. The signature is
// hex(HMAC-SHA256(key, timestamp + "." + body)), timestamp the decimal Unix
// seconds in SignatureTimestampHeader: a receiver recomputes it, compares in
// constant time and refuses timestamps older than its replay window.
const (
	SignatureHeader          = "X-Errnowatch-Signature"
	SignatureTimestampHeader = "X-Errnowatch-Timestamp"
)

// Sign returns the signature header value of body sent at ts.
func Sign(key []byte, ts time.Time, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(strconv.FormatInt(ts.Unix(), 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

// httpPoster posts bodies and classifies the answer.
type httpPoster struct {
	client *http.Client
	url    string
	// header is set on every request (content type, authorization).
	header http.Header
	now    func() time.Time
	key    []byte // HMAC key; nil signs nothing
}

// maxResponse bounds what is read of an answer.
const maxResponse = 64 << 10

// post sends body and returns the answer's body on 2xx. A refusal that
// resending cannot fix is permanent; 401 and 403 are not (a wrong token is
// fixed by the operator, and the alerts must still arrive then).
func (p *httpPoster) post(ctx context.Context, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return nil, permanent(fmt.Errorf("build request: %w", err))
	}
	for k, v := range p.header {
		req.Header[k] = v
	}
	if p.key != nil {
		ts := p.now()
		req.Header.Set(SignatureTimestampHeader, strconv.FormatInt(ts.Unix(), 10))
		req.Header.Set(SignatureHeader, Sign(p.key, ts, body))
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("post to %s: %w", redact(p.url), unwrapURL(err))
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return answer, nil
	case c == http.StatusBadRequest, c == http.StatusRequestEntityTooLarge, c == http.StatusUnprocessableEntity:
		return nil, permanent(fmt.Errorf("%s refused the alert: %s: %s", redact(p.url), resp.Status, plain(string(answer), 256)))
	default:
		return nil, fmt.Errorf("%s answered %s: %s", redact(p.url), resp.Status, plain(string(answer), 256))
	}
}

// webhook posts each revision as the JSON of `alerts stream -o json`.
type webhook struct {
	p   *httpPoster
	max int
}

func (w *webhook) send(ctx context.Context, recs []Record) (int, error) {
	for i := range recs {
		body, err := fit(recs[i], w.max, func(r *Record) ([]byte, error) { return json.Marshal(r) })
		if err == nil {
			_, err = w.p.post(ctx, body)
		}
		if err != nil {
			return i, err
		}
	}
	return len(recs), nil
}

func (w *webhook) close() error { w.p.client.CloseIdleConnections(); return nil }

// redact keeps a URL's scheme and host: chat webhooks carry their token in
// the path, HEC URLs may in the query, and errors end up in logs.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Scheme + "://" + u.Host + "/..."
}

// unwrapURL drops the *url.Error around a transport error: its text repeats
// the whole URL, token included.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func newHTTPClient(tlsSpec *TLS, field, rawURL string, timeout time.Duration) (*http.Client, error) {
	u, err := parseURL(field, rawURL)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // a sink talks to the destination it names, not to an environment proxy
	if tlsSpec != nil {
		cfg, err := tlsSpec.config(field+".tls", u.Hostname())
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = cfg
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		// A redirect could send the alert (and its signature) elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}
