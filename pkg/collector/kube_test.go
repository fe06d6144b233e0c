package collector_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
	"github.com/errnowatch/errnowatch/internal/testenv"
	"github.com/errnowatch/errnowatch/pkg/auth"
	"github.com/errnowatch/errnowatch/pkg/collector"
	"github.com/errnowatch/errnowatch/pkg/collector/client"
	"github.com/errnowatch/errnowatch/pkg/collector/collectortest"
	"github.com/errnowatch/errnowatch/pkg/kube"
	"github.com/errnowatch/errnowatch/pkg/store/storetest"
)

// startKube is the package's real kube-apiserver and etcd (envtest), which
// TestMain stops.
func startKube(t *testing.T) (*testenv.Env, kubernetes.Interface) {
	t.Helper()
	env := testenv.Shared(t)
	return env, env.Client
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

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("create: %v", err)
	}
}

func token(t *testing.T, k kubernetes.Interface, ns, sa string, audiences ...string) string {
	t.Helper()
	exp := int64(600)
	tr, err := k.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), sa, &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{Audiences: audiences, ExpirationSeconds: &exp},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for %s/%s: %v", ns, sa, err)
	}
	return tr.Status.Token
}

// resign re-signs a real token with its times moved by shift, using the API
// server's own ServiceAccount signing key: with a shift of hours into the
// past it is a genuine expired token (TokenRequest refuses lifetimes under
// ten minutes, so waiting for one to expire is no option).
func resign(t *testing.T, env *testenv.Env, tok string, shift time.Duration) string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token is not a JWS")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	from := time.Now().Add(shift).Unix()
	claims["iat"], claims["nbf"], claims["exp"] = from, from, from+600
	payload, _ = json.Marshal(claims)
	signed := parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload)

	keyPEM, err := os.ReadFile(env.ServiceAccountKeyFile())
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(keyPEM)
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("signing key is %T, want ECDSA (ES256 tokens)", k)
	}
	sum := sha256.Sum256([]byte(signed))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestKubernetesTokenReviewAndSubjectAccessReview(t *testing.T) {
	env, k := startKube(t)
	ctx := context.Background()
	for _, ns := range []string{"errnowatch", "team-a", "team-b", "siem"} {
		_, err := k.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		must(t, err)
	}
	for _, sa := range [][2]string{{"errnowatch", "agent"}, {"team-a", "reader"}, {"team-b", "intruder"}, {"siem", "siem"}} {
		_, err := k.CoreV1().ServiceAccounts(sa[0]).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa[1]}}, metav1.CreateOptions{})
		must(t, err)
	}
	var err error
	rules := []rbacv1.PolicyRule{{APIGroups: []string{auth.Group}, Resources: []string{auth.Resource}, Verbs: []string{"list", "watch"}}}
	_, err = k.RbacV1().Roles("team-a").Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "alerts-reader"}, Rules: rules}, metav1.CreateOptions{})
	must(t, err)
	_, err = k.RbacV1().RoleBindings("team-a").Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "alerts-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "team-a", Name: "reader"}},
	}, metav1.CreateOptions{})
	must(t, err)
	_, err = k.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "errnowatch-alerts-reader"}, Rules: rules}, metav1.CreateOptions{})
	must(t, err)
	_, err = k.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "siem"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "errnowatch-alerts-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "siem", Name: "siem"}},
	}, metav1.CreateOptions{})
	must(t, err)

	kauth := auth.NewKubernetes(authAPI(t), auth.Options{})
	pki := collectortest.NewPKI(t, "unused")
	// TLS without client certificates: the token is the identity.
	col := startTokenCollector(t, kauth, pki)
	as := func(tok string) *client.Client {
		return dial(t, client.Options{Address: col.Addr, CAFile: pki.CAFile, Token: tok})
	}

	data := storetest.Alerts(storetest.DefaultShape, base, 0, 40)
	for i := range data {
		data[i].Namespace = []string{"team-a", "team-b"}[i%2]
	}
	agentTok := token(t, k, "errnowatch", "agent", auth.DefaultAudience)

	t.Run("AgentTokenWithAudiencePublishes", func(t *testing.T) {
		acks, err := publish(t, as(agentTok), data)
		if err != nil || len(acks) != 1 || acks[0].Stored != 40 {
			t.Fatalf("publish with the agent's token: %v, %v", acks, err)
		}
	})
	t.Run("BadTokensAreUnauthenticated", func(t *testing.T) {
		for name, tok := range map[string]string{
			"wrong audience":   token(t, k, "errnowatch", "agent", "vault"),
			"default audience": token(t, k, "errnowatch", "agent"),
			"expired":          resign(t, env, token(t, k, "errnowatch", "agent", auth.DefaultAudience), -2*time.Hour),
			"garbage":          "not-a-token",
		} {
			_, err := publish(t, as(tok), data[:1])
			if status.Code(err) != codes.Unauthenticated {
				t.Errorf("%s token: %v, want UNAUTHENTICATED", name, err)
			}
			_, err = as(tok).Query.ListAlerts(ctx, &errnowatchv1.ListAlertsRequest{})
			if status.Code(err) != codes.Unauthenticated {
				t.Errorf("%s token listing: %v, want UNAUTHENTICATED", name, err)
			}
		}
		noToken := dial(t, client.Options{Address: col.Addr, CAFile: pki.CAFile})
		if _, err := noToken.Query.ListAlerts(ctx, &errnowatchv1.ListAlertsRequest{}); status.Code(err) != codes.Unauthenticated ||
			!strings.Contains(status.Convert(err).Message(), "Bearer") {
			t.Errorf("no token: %v, want UNAUTHENTICATED naming the header", err)
		}
	})
	t.Run("ResignedTokenWithinItsLifetimeIsAccepted", func(t *testing.T) {
		// Guards the expired case above: the same re-signing with current
		// times passes, so the refusal there is the expiry, not the
		// signature.
		tok := resign(t, env, token(t, k, "errnowatch", "agent", auth.DefaultAudience), -time.Minute)
		id, err := kauth.Authenticate(ctx, tok)
		if err != nil || id.Username != "system:serviceaccount:errnowatch:agent" {
			t.Fatalf("re-signed current token: %+v, %v", id, err)
		}
		if _, err := publish(t, as(tok), data[:1]); err != nil {
			t.Fatalf("publish with the re-signed current token: %v", err)
		}
	})
	t.Run("TeamReadsOnlyItsNamespace", func(t *testing.T) {
		c := as(token(t, k, "team-a", "reader", auth.DefaultAudience))
		got := listAll(t, c, &errnowatchv1.AlertFilter{Namespace: "team-a"}, 100)
		if len(got) != 20 {
			t.Fatalf("team-a lists %d alerts in team-a, want 20", len(got))
		}
		for _, a := range got {
			if a.Alert.Namespace != "team-a" {
				t.Fatalf("team-a got an alert from %s", a.Alert.Namespace)
			}
		}
		if _, err := c.Query.SummarizeAlerts(ctx, &errnowatchv1.SummarizeAlertsRequest{Filter: &errnowatchv1.AlertFilter{Namespace: "team-a"}}); err != nil {
			t.Fatalf("summarize team-a: %v", err)
		}
		for name, f := range map[string]*errnowatchv1.AlertFilter{"team-b": {Namespace: "team-b"}, "cluster-wide": nil} {
			_, err := c.Query.ListAlerts(ctx, &errnowatchv1.ListAlertsRequest{Filter: f})
			if status.Code(err) != codes.PermissionDenied {
				t.Errorf("team-a listing %s: %v, want PERMISSION_DENIED", name, err)
			}
			s, err := c.Query.StreamAlerts(ctx, &errnowatchv1.StreamAlertsRequest{Filter: f})
			if err == nil {
				_, err = s.Recv()
			}
			if status.Code(err) != codes.PermissionDenied {
				t.Errorf("team-a streaming %s: %v, want PERMISSION_DENIED", name, err)
			}
		}
		// Watch in its own namespace is granted: the first message is the
		// stored alerts.
		sctx, cancel := context.WithCancel(ctx)
		defer cancel()
		s, err := c.Query.StreamAlerts(sctx, &errnowatchv1.StreamAlertsRequest{Filter: &errnowatchv1.AlertFilter{Namespace: "team-a"}})
		if err != nil {
			t.Fatal(err)
		}
		if m, err := s.Recv(); err != nil || m.GetAlert().GetAlert().GetNamespace() != "team-a" {
			t.Fatalf("team-a stream: %v, %v", m, err)
		}
		// Readers may not publish.
		if _, err := publish(t, c, data[:1]); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("team-a publishing: %v, want PERMISSION_DENIED", err)
		}
	})
	t.Run("UnboundServiceAccountIsDenied", func(t *testing.T) {
		c := as(token(t, k, "team-b", "intruder", auth.DefaultAudience))
		_, err := c.Query.ListAlerts(ctx, &errnowatchv1.ListAlertsRequest{Filter: &errnowatchv1.AlertFilter{Namespace: "team-b"}})
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), "RoleBinding") {
			t.Fatalf("intruder listing its own namespace: %v, want PERMISSION_DENIED saying what to grant", err)
		}
	})
	t.Run("ListedServiceAccountsMayPublish", func(t *testing.T) {
		tok := token(t, k, "siem", "siem", auth.DefaultAudience)
		if _, err := publish(t, as(tok), data[:1]); status.Code(err) != codes.PermissionDenied {
			t.Fatalf("siem publishing to the default collector: %v, want PERMISSION_DENIED", err)
		}
		other := startTokenCollector(t, kauth, pki, "siem/siem")
		c := dial(t, client.Options{Address: other.Addr, CAFile: pki.CAFile, Token: tok})
		if _, err := publish(t, c, data[:1]); err != nil {
			t.Fatalf("siem publishing when listed as an agent: %v", err)
		}
	})
	t.Run("SIEMReadsClusterWide", func(t *testing.T) {
		c := as(token(t, k, "siem", "siem", auth.DefaultAudience))
		if got := listAll(t, c, nil, 100); len(got) != 40 {
			t.Fatalf("siem lists %d alerts cluster-wide, want 40", len(got))
		}
		n := 0
		streamUntil(t, c, &errnowatchv1.StreamAlertsRequest{}, func(m *errnowatchv1.StreamAlertsResponse) bool {
			if m.GetAlert() != nil {
				n++
			}
			return n == 40
		})
	})
}

func startTokenCollector(t *testing.T, a *auth.Kubernetes, pki *collectortest.PKI, agents ...string) *collectortest.Collector {
	t.Helper()
	return startTokenCollectorWith(t, collector.Config{Authenticator: a, Authorizer: a, AgentServiceAccounts: append([]string{"errnowatch/agent"}, agents...)}, pki)
}

// startTokenCollectorWith starts a collector with cfg (its store added) on
// TLS without client certificates: the token is the identity.
func startTokenCollectorWith(t *testing.T, cfg collector.Config, pki *collectortest.PKI) *collectortest.Collector {
	t.Helper()
	files := pki.ServerTLS()
	files.ClientCAFile = ""
	st := collectortest.OpenStore(t, t.TempDir())
	cfg.Store = st
	srv, err := collector.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background(), collector.Listen{Address: "127.0.0.1:0", TLS: files}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return &collectortest.Collector{Server: srv, Store: st, Addr: srv.Addr().String()}
}
