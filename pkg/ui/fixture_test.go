package ui_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
	"github.com/errnowatch/errnowatch/internal/testenv"
	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/alertpb"
	"github.com/errnowatch/errnowatch/pkg/auth"
	"github.com/errnowatch/errnowatch/pkg/collector"
	"github.com/errnowatch/errnowatch/pkg/collector/client"
	"github.com/errnowatch/errnowatch/pkg/collector/collectortest"
	"github.com/errnowatch/errnowatch/pkg/kube"
	"github.com/errnowatch/errnowatch/pkg/store/storetest"
	"github.com/errnowatch/errnowatch/pkg/ui"
)

func TestMain(m *testing.M) {
	code := testenv.Main(m)
	removeBenchStore()
	os.Exit(code)
}

// startKube is the package's real kube-apiserver and etcd (envtest).
func startKube(t *testing.T) kubernetes.Interface {
	t.Helper()
	return testenv.Shared(t).Client
}

// fixture is a collector over a SQLite store serving the web UI over TLS,
// with a unix socket to publish alerts through the real ingest path.
type fixture struct {
	col      *collectortest.Collector
	ui       *collector.UIServer
	url      string // https://localhost:port
	localKey string
	pub      *client.Client
	reg      *prometheus.Registry
	caFile   string
}

const testLocalKey = "test-local-access-key-0123456789"

// newFixture starts the UI: with k, tokens are checked by the API server
// (TokenReview, SubjectAccessReview); without, the local access key signs
// in.
func newFixture(t *testing.T, k kubernetes.Interface, opts ui.Config) *fixture {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg := collector.Config{Registerer: reg}
	l := collector.UIListen{Address: "127.0.0.1:0", Options: opts}
	if k != nil {
		a := auth.NewKubernetes(authAPI(t), auth.Options{AllowTTL: time.Second, DenyTTL: time.Second})
		cfg.Authenticator, cfg.Authorizer = a, a
	} else {
		l.LocalKey = testLocalKey
	}
	col := collectortest.Start(t, cfg, nil, true, "")
	pki := collectortest.NewPKI(t, "client")
	l.TLS = collector.TLSFiles{CertFile: pki.ServerCertFile, KeyFile: pki.ServerKeyFile}
	u, err := col.ServeUI(l)
	if err != nil {
		t.Fatalf("serve UI: %v", err)
	}
	t.Cleanup(func() { u.Close() })
	pub, err := client.Dial(client.Options{Address: col.Socket})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	_, port, _ := strings.Cut(u.Addr().String(), ":")
	return &fixture{col: col, ui: u, url: "https://localhost:" + port, localKey: l.LocalKey, pub: pub, reg: reg, caFile: pki.CAFile}
}

// publish sends alerts through the collector's ingest, as an agent does.
// heartbeat sends a batch of no alerts with an agent's status through the
// collector's ingest, as an agent's sender does when idle.
func (f *fixture) heartbeat(t *testing.T, st *errnowatchv1.AgentStatus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := f.pub.Ingest.PublishAlerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&errnowatchv1.PublishAlertsRequest{Status: st}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
}

func (f *fixture) publish(t *testing.T, as ...alert.Alert) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := f.pub.Ingest.PublishAlerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	batch := make([]*errnowatchv1.Alert, len(as))
	for i := range as {
		batch[i] = alertpb.ToProto(&as[i])
	}
	if err := st.Send(&errnowatchv1.PublishAlertsRequest{BatchSequence: 1, Alerts: batch}); err != nil {
		t.Fatal(err)
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
}

// testAlerts are n alerts over namespaces, spread over the last hours so
// the charts have bars; start picks which (see storetest.Alerts).
func testAlerts(namespaces []string, start, n int) []alert.Alert {
	now := time.Now().UTC()
	as := storetest.Alerts(storetest.Shape{Namespaces: len(namespaces), PodsPerNamespace: 4, Nodes: 3, Rules: 4}, now.Add(-time.Hour), start, n)
	for i := range as {
		k := start + i
		if as[i].Namespace != "" {
			j := k % len(namespaces)
			as[i].Namespace = namespaces[j]
			as[i].Pod = fmt.Sprintf("%s-pod-%d", namespaces[j], (k/len(namespaces))%4)
		}
		as[i].FirstSeen = now.Add(-time.Duration(k%12)*time.Hour - time.Duration(k)*time.Second)
		as[i].LastSeen = as[i].FirstSeen.Add(time.Second)
		if k%9 == 0 {
			as[i].RuleID = "errnowatch.sensor.evasion"
		}
		as[i].Description = "Catches " + as[i].RuleID + " in tests."
	}
	return as
}

// httpClient talks to the UI like a browser that keeps cookies, without
// following redirects (tests look at them).
func (f *fixture) httpClient(t *testing.T) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(f.caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	jar, _ := cookiejar.New(nil)
	return &http.Client{
		Jar:           jar,
		Timeout:       30 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn signs c in with token through the sign-in form, as a browser
// would, and returns the session cookie's response.
func (f *fixture) signIn(t *testing.T, c *http.Client, token string) *http.Response {
	t.Helper()
	body := f.get(t, c, "/login", http.StatusOK)
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF field on the sign-in page:\n%s", body)
	}
	req, _ := http.NewRequest("POST", f.url+"/login", strings.NewReader(url.Values{"csrf": {m[1]}, "token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", f.url)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in: %s", resp.Status)
	}
	return resp
}

func (f *fixture) get(t *testing.T, c *http.Client, path string, want int) string {
	t.Helper()
	resp, err := c.Get(f.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %s, want %d:\n%.2000s", path, resp.Status, want, b)
	}
	return string(b)
}

// reader makes namespace ns with a ServiceAccount that may list and watch
// alerts there only, and returns a token for it (audience errnowatch).
func reader(t *testing.T, k kubernetes.Interface, ns, sa string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := k.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rules := []rbacv1.PolicyRule{{APIGroups: []string{auth.Group}, Resources: []string{auth.Resource}, Verbs: []string{"list", "watch"}}}
	if _, err := k.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "alerts-reader"}, Rules: rules}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: sa},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "alerts-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: sa}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tok := token(t, k, ns, sa)
	// The API server's RBAC authorizer learns of new bindings from its
	// informers: wait until it answers yes.
	a := auth.NewKubernetes(authAPI(t), auth.Options{AllowTTL: time.Millisecond, DenyTTL: time.Millisecond})
	id, err := a.Authenticate(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		ok, _, err := a.Authorize(ctx, id, auth.VerbWatch, ns)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			return tok
		}
		if time.Now().After(deadline) {
			t.Fatalf("RBAC does not allow %s/%s to read alerts 30s after the binding", ns, sa)
		}
	}
}

// token returns a token (audience errnowatch, one hour) for the
// ServiceAccount ns/sa, making the ServiceAccount when it is missing.
func token(t *testing.T, k kubernetes.Interface, ns, sa string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := k.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	exp := int64(3600)
	tr, err := k.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{Audiences: []string{auth.DefaultAudience}, ExpirationSeconds: &exp},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for %s/%s: %v", ns, sa, err)
	}
	return tr.Status.Token
}

// authAPI is the collector auth's client of the shared API server.
func authAPI(t *testing.T) *kube.Client {
	t.Helper()
	kc, err := kube.NewClient(testenv.Shared(t).Config)
	if err != nil {
		t.Fatal(err)
	}
	return kc
}
