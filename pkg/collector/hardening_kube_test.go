package collector_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/auth"
	"github.com/errnowatch/errnowatch/pkg/collector"
	"github.com/errnowatch/errnowatch/pkg/collector/client"
	"github.com/errnowatch/errnowatch/pkg/collector/collectortest"
	"github.com/errnowatch/errnowatch/pkg/kube"
	"github.com/errnowatch/errnowatch/pkg/store"
	"github.com/errnowatch/errnowatch/pkg/store/storetest"
)

// counter reads one series of a counter vec from reg.
func counter(t testing.TB, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			return metricValue(m)
		}
	}
	return 0
}

func metricValue(m *dto.Metric) float64 {
	if c := m.GetCounter(); c != nil {
		return c.GetValue()
	}
	return m.GetGauge().GetValue()
}

func refused(t testing.TB, reg prometheus.Gatherer, reason string) float64 {
	return counter(t, reg, "errnowatch_collector_refused_total", map[string]string{"reason": reason})
}

// agentPod makes a node and an agent pod scheduled on it, and returns a
// token bound to the pod, as the kubelet mounts one.
func agentPod(t *testing.T, k kubernetes.Interface, ns, sa, node string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := k.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create node %s: %v", node, err)
	}
	t.Cleanup(func() { _ = k.CoreV1().Nodes().Delete(context.Background(), node, metav1.DeleteOptions{}) })
	pod, err := k.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "agent-" + node},
		Spec: corev1.PodSpec{
			ServiceAccountName: sa,
			NodeName:           node,
			Containers:         []corev1.Container{{Name: "agent", Image: "errnowatch"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create agent pod on %s: %v", node, err)
	}
	exp := int64(600)
	tr, err := k.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{
		Audiences:         []string{auth.DefaultAudience},
		ExpirationSeconds: &exp,
		BoundObjectRef:    &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token bound to %s: %v", pod.Name, err)
	}
	return tr.Status.Token
}

func makeNamespace(t *testing.T, k kubernetes.Interface, ns string, sas ...string) {
	t.Helper()
	ctx := context.Background()
	if _, err := k.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", ns, err)
	}
	for _, sa := range sas {
		if _, err := k.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create ServiceAccount %s/%s: %v", ns, sa, err)
		}
	}
}

func alertsFor(node string, start, n int) []alert.Alert {
	as := storetest.Alerts(storetest.DefaultShape, base, start, n)
	for i := range as {
		as[i].Node = node
	}
	return as
}

// TestPublishersAreTheAgentsEachForItsNode is issue 13 §1 on a real API
// server: the chart's SIEM reader in the agents' namespace may not publish;
// node A's agent may not publish for node B; node B's agent may not update
// node A's alert, whatever revision it claims; and node A's next update
// still counts.
func TestPublishersAreTheAgentsEachForItsNode(t *testing.T) {
	_, k := startKube(t)
	ctx := context.Background()
	makeNamespace(t, k, "ew-sec", "errnowatch-agent", "errnowatch-siem")
	reg := prometheus.NewRegistry()
	kauth := auth.NewKubernetes(authAPI(t), auth.Options{})
	pki := collectortest.NewPKI(t, "unused")
	col := startTokenCollectorWith(t, collector.Config{
		Authenticator: kauth, Authorizer: kauth, Nodes: kauth, Registerer: reg,
		AgentServiceAccounts: []string{"ew-sec/errnowatch-agent"},
		Reauthorize:          200 * time.Millisecond,
	}, pki)
	as := func(tok string) *client.Client {
		return dial(t, client.Options{Address: col.Addr, CAFile: pki.CAFile, Token: tok})
	}
	tokA := agentPod(t, k, "ew-sec", "errnowatch-agent", "node-a")
	tokB := agentPod(t, k, "ew-sec", "errnowatch-agent", "node-b")

	// What this API server puts in a bound token's review: the pod always,
	// the node from Kubernetes 1.30 on. The collector uses the node when it
	// is there and looks the pod up otherwise; both paths are checked.
	idA, err := kauth.Authenticate(ctx, tokA)
	if err != nil {
		t.Fatal(err)
	}
	if pod, uid := idA.Pod(); pod != "agent-node-a" || uid == "" {
		t.Fatalf("bound token's review names pod %q (uid %q), want agent-node-a", pod, uid)
	}
	t.Logf("TokenReview extra of a bound token: %v", idA.Extra)
	if n, err := kauth.NodeOf(ctx, idA); err != nil || n != "node-a" {
		t.Fatalf("NodeOf(agent on node-a) = %q, %v", n, err)
	}
	noNode := idA
	noNode.Extra = map[string][]string{}
	for k, v := range idA.Extra {
		if k != auth.ExtraNodeName {
			noNode.Extra[k] = v
		}
	}
	if n, err := kauth.NodeOf(ctx, noNode); err != nil || n != "node-a" {
		t.Fatalf("NodeOf(agent on node-a, by pod lookup) = %q, %v", n, err)
	}

	t.Run("SIEMReaderInTheAgentNamespaceIsRefused", func(t *testing.T) {
		siem := token(t, k, "ew-sec", "errnowatch-siem", auth.DefaultAudience)
		before := refused(t, reg, "not_agent")
		_, err := publish(t, as(siem), alertsFor("node-a", 0, 1))
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), "may not publish") {
			t.Fatalf("SIEM reader publishing: %v, want PERMISSION_DENIED", err)
		}
		if got := refused(t, reg, "not_agent") - before; got != 1 {
			t.Fatalf("refused{not_agent} grew by %v, want 1", got)
		}
	})
	t.Run("AgentTokenNotBoundToAPodIsRefused", func(t *testing.T) {
		unbound := token(t, k, "ew-sec", "errnowatch-agent", auth.DefaultAudience)
		_, err := publish(t, as(unbound), alertsFor("node-a", 0, 1))
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), "not bound to a pod") {
			t.Fatalf("unbound agent token publishing: %v, want PERMISSION_DENIED", err)
		}
	})
	t.Run("AgentPublishingForAnotherNodeIsRefused", func(t *testing.T) {
		before := refused(t, reg, "wrong_node")
		mixed := append(alertsFor("node-a", 10, 2), alertsFor("node-b", 12, 1)...)
		_, err := publish(t, as(tokA), mixed)
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), `runs on node "node-a"`) {
			t.Fatalf("node-a's agent publishing for node-b: %v, want PERMISSION_DENIED", err)
		}
		if got := refused(t, reg, "wrong_node") - before; got != 1 {
			t.Fatalf("refused{wrong_node} grew by %v, want 1", got)
		}
		if n, _ := col.Store.LastSeq(ctx); n != 0 {
			t.Fatalf("store moved to sequence %d after a refused batch, want nothing stored", n)
		}
	})
	t.Run("AgentStatusIsKeptForItsOwnNodeOnly", func(t *testing.T) {
		// A heartbeat naming another node is answered (the alerts matter
		// more), counted and dropped; one naming no node, or its own, is
		// kept for the agent's node.
		heartbeat := func(tok string, st *errnowatchv1.AgentStatus) {
			t.Helper()
			sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			s, err := as(tok).Ingest.PublishAlerts(sctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Send(&errnowatchv1.PublishAlertsRequest{BatchSequence: 7, Status: st}); err != nil {
				t.Fatal(err)
			}
			if r, err := s.Recv(); err != nil || r.GetBatchSequence() != 7 || r.GetStored() != 0 {
				t.Fatalf("heartbeat answered %v, %v; want batch 7, nothing stored", r, err)
			}
		}
		before := refused(t, reg, "node_status")
		heartbeat(tokA, &errnowatchv1.AgentStatus{Node: "node-b", SpoolRecords: 99})
		if got := refused(t, reg, "node_status") - before; got != 1 {
			t.Fatalf("refused{node_status} grew by %v, want 1", got)
		}
		heartbeat(tokA, &errnowatchv1.AgentStatus{SpoolRecords: 3, RingDrops: 5, SensorAttached: true})
		sts, err := col.Store.NodeStatuses(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(sts) != 1 || sts[0].Node != "node-a" || sts[0].SpoolRecords != 3 || sts[0].RingDrops != 5 || !sts[0].SensorAttached {
			t.Fatalf("node statuses %+v, want node-a's own only", sts)
		}
	})
	t.Run("OverwriteFromAnotherNodeIsRefused", func(t *testing.T) {
		orig := alertsFor("node-a", 20, 1)
		if acks, err := publish(t, as(tokA), orig); err != nil || acks[0].Stored != 1 {
			t.Fatalf("node-a's agent publishing its alert: %v, %v", acks, err)
		}
		forged := orig[0]
		forged.Node, forged.Revision, forged.Message = "node-b", 1<<31, "forged by node-b"
		before := refused(t, reg, "foreign_alert")
		_, err := publish(t, as(tokB), []alert.Alert{forged})
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(status.Convert(err).Message(), "raised by another node") {
			t.Fatalf("node-b's agent overwriting node-a's alert: %v, want PERMISSION_DENIED", err)
		}
		if got := refused(t, reg, "foreign_alert") - before; got != 1 {
			t.Fatalf("refused{foreign_alert} grew by %v, want 1", got)
		}
		next := orig[0]
		next.Revision = 2
		acks, err := publish(t, as(tokA), []alert.Alert{next})
		if err != nil || acks[0].Stored != 1 || acks[0].Duplicates != 0 {
			t.Fatalf("node-a's revision 2 after the forgery: %v, %v; want stored", acks, err)
		}
		got, _, err := col.Store.List(ctx, store.Filter{}, store.ListOptions{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Alert.ID != orig[0].ID || got[0].Alert.Revision != 2 || got[0].Alert.Node != "node-a" || got[0].Alert.Message != orig[0].Message {
			t.Fatalf("stored %+v, want only node-a's own revision 2", got)
		}
	})
}

// TestPublishStreamEndsWithItsPod: a publish stream is checked again while
// it lasts; once the agent's pod is deleted, its token no longer passes and
// the stream ends.
func TestPublishStreamEndsWithItsPod(t *testing.T) {
	_, k := startKube(t)
	ctx := context.Background()
	makeNamespace(t, k, "ew-reauth", "errnowatch-agent")
	reg := prometheus.NewRegistry()
	kauth := auth.NewKubernetes(authAPI(t), auth.Options{AllowTTL: 100 * time.Millisecond})
	pki := collectortest.NewPKI(t, "unused")
	col := startTokenCollectorWith(t, collector.Config{
		Authenticator: kauth, Authorizer: kauth, Nodes: kauth, Registerer: reg,
		AgentServiceAccounts: []string{"ew-reauth/errnowatch-agent"}, Reauthorize: 200 * time.Millisecond,
	}, pki)
	tok := agentPod(t, k, "ew-reauth", "errnowatch-agent", "node-reauth")
	c := dial(t, client.Options{Address: col.Addr, CAFile: pki.CAFile, Token: tok})
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	st, err := c.Ingest.PublishAlerts(sctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&errnowatchv1.PublishAlertsRequest{BatchSequence: 1, Alerts: toProto(alertsFor("node-reauth", 0, 1))}); err != nil {
		t.Fatal(err)
	}
	if ack, err := st.Recv(); err != nil || ack.Stored != 1 {
		t.Fatalf("first batch: %v, %v", ack, err)
	}
	if err := k.CoreV1().Pods("ew-reauth").Delete(ctx, "agent-node-reauth", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	_, err = st.Recv()
	if status.Code(err) != codes.Unauthenticated {
		t.Fatalf("publish stream after its pod was deleted: %v, want UNAUTHENTICATED", err)
	}
	if got := refused(t, reg, "reauthorization"); got != 1 {
		t.Fatalf("refused{reauthorization} = %v, want 1", got)
	}
}

// TestUnauthenticatedFloodCostsNoReviews: calls over a remote address's
// budget are refused before their token is reviewed, so a flood of random
// tokens costs the API server at most the budget.
func TestUnauthenticatedFloodCostsNoReviews(t *testing.T) {
	startKube(t)
	reg := prometheus.NewRegistry()
	kauth := auth.NewKubernetes(authAPI(t), auth.Options{Registerer: reg})
	pki := collectortest.NewPKI(t, "unused")
	col := startTokenCollectorWith(t, collector.Config{
		// One call in five seconds (a burst of one): however slow this
		// machine, most of the 40 calls come before the next token.
		Authenticator: kauth, Authorizer: kauth, Nodes: kauth, Registerer: reg, PeerCallsPerSecond: 0.2,
	}, pki)
	var unauth, exhausted int
	for i := range 40 {
		c := dial(t, client.Options{Address: col.Addr, CAFile: pki.CAFile, Token: fmt.Sprintf("random-token-%d", i)})
		_, err := c.Query.ListAlerts(context.Background(), &errnowatchv1.ListAlertsRequest{})
		switch status.Code(err) {
		case codes.Unauthenticated:
			unauth++
		case codes.ResourceExhausted:
			exhausted++
		default:
			t.Fatalf("call %d with a random token: %v, want UNAUTHENTICATED or RESOURCE_EXHAUSTED", i, err)
		}
	}
	reviews := counter(t, reg, "errnowatch_auth_reviews_total", map[string]string{"kind": "token", "cached": "false"})
	if exhausted == 0 || unauth+exhausted != 40 {
		t.Fatalf("%d unauthenticated, %d refused by rate: want some refused by rate", unauth, exhausted)
	}
	if int(reviews) != unauth {
		t.Fatalf("%v TokenReviews for %d unauthenticated calls and %d rate-limited ones: want one review per call let through only", reviews, unauth, exhausted)
	}
	if got := refused(t, reg, "peer_rate"); int(got) != exhausted {
		t.Fatalf("refused{peer_rate} = %v, want %d", got, exhausted)
	}
}

// TestBoundTokenAnswersAreCached: a bound token's review carries extras
// (pod name and UID), and its answers are still reused.
func TestBoundTokenAnswersAreCached(t *testing.T) {
	_, k := startKube(t)
	ctx := context.Background()
	makeNamespace(t, k, "ew-cache", "reader")
	grantRead(t, k, "ew-cache", "reader")
	reg := prometheus.NewRegistry()
	kauth := auth.NewKubernetes(authAPI(t), auth.Options{Registerer: reg, AllowTTL: time.Hour})
	tok := agentPod(t, k, "ew-cache", "reader", "node-cache")
	for range 3 {
		id, err := kauth.Authenticate(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		if len(id.Extra) == 0 {
			t.Fatalf("bound token's identity has no extras: the test would not test caching of bound tokens")
		}
		ok, _, err := kauth.Authorize(ctx, id, auth.VerbList, "ew-cache")
		if err != nil || !ok {
			t.Fatalf("authorize bound reader: %v, %v", ok, err)
		}
	}
	for kind, want := range map[string][2]float64{"token": {1, 2}, "access": {1, 2}} {
		miss := counter(t, reg, "errnowatch_auth_reviews_total", map[string]string{"kind": kind, "cached": "false"})
		hit := counter(t, reg, "errnowatch_auth_reviews_total", map[string]string{"kind": kind, "cached": "true"})
		if miss != want[0] || hit != want[1] {
			t.Errorf("%s reviews: %v made, %v from cache; want %v and %v", kind, miss, hit, want[0], want[1])
		}
	}
	// Another pod of the same ServiceAccount is another identity: its
	// answer is not served from the first pod's.
	other := agentPod(t, k, "ew-cache", "reader", "node-cache-2")
	id, err := kauth.Authenticate(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := kauth.Authorize(ctx, id, auth.VerbList, "ew-cache"); err != nil {
		t.Fatal(err)
	}
	if miss := counter(t, reg, "errnowatch_auth_reviews_total", map[string]string{"kind": "access", "cached": "false"}); miss != 2 {
		t.Fatalf("access reviews made = %v after a second pod, want 2", miss)
	}
}

func grantRead(t *testing.T, k kubernetes.Interface, ns, sa string) {
	t.Helper()
	ctx := context.Background()
	rules := []rbacv1.PolicyRule{{APIGroups: []string{auth.Group}, Resources: []string{auth.Resource}, Verbs: []string{"list", "watch"}}}
	// One Role per namespace, however many readers it binds.
	if _, err := k.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "alerts-reader"}, Rules: rules}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if _, err := k.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: sa},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "alerts-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: sa}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The API server's RBAC authorizer learns of new bindings from its
	// informers; wait until it does, so the tests' counts start from a
	// settled state.
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := k.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
			User:               "system:serviceaccount:" + ns + ":" + sa,
			Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
			ResourceAttributes: &authzv1.ResourceAttributes{Namespace: ns, Verb: "watch", Group: auth.Group, Resource: auth.Resource},
		}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Status.Allowed {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("RBAC does not allow %s/%s to read alerts 30s after the binding", ns, sa)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestStreamsAreCappedPerIdentityAndRechecked: one caller may hold only its
// share of streams, and a stream ends when its caller loses access.
func TestStreamsAreCappedPerIdentityAndRechecked(t *testing.T) {
	_, k := startKube(t)
	makeNamespace(t, k, "ew-streams", "reader", "other")
	grantRead(t, k, "ew-streams", "reader")
	grantRead(t, k, "ew-streams", "other")
	reg := prometheus.NewRegistry()
	kauth := auth.NewKubernetes(authAPI(t), auth.Options{AllowTTL: time.Millisecond, DenyTTL: time.Millisecond})
	pki := collectortest.NewPKI(t, "unused")
	col := startTokenCollectorWith(t, collector.Config{
		Authenticator: kauth, Authorizer: kauth, Nodes: kauth, Registerer: reg,
		MaxStreamsPerIdentity: 2, Reauthorize: 200 * time.Millisecond, Heartbeat: time.Second,
	}, pki)
	f := &errnowatchv1.AlertFilter{Namespace: "ew-streams"}
	open := func(tok string) (errnowatchv1.QueryService_StreamAlertsClient, error) {
		c := dial(t, client.Options{Address: col.Addr, CAFile: pki.CAFile, Token: tok})
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		s, err := c.Query.StreamAlerts(ctx, &errnowatchv1.StreamAlertsRequest{Filter: f, HeartbeatInterval: durationpb.New(time.Second)})
		if err != nil {
			return nil, err
		}
		// The first heartbeat says the stream is being served.
		_, err = s.Recv()
		return s, err
	}
	reader := token(t, k, "ew-streams", "reader", auth.DefaultAudience)
	for i := range 2 {
		if _, err := open(reader); err != nil {
			t.Fatalf("reader's stream %d: %v", i+1, err)
		}
	}
	if _, err := open(reader); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("reader's third stream: %v, want RESOURCE_EXHAUSTED", err)
	}
	if got := refused(t, reg, "streams"); got != 1 {
		t.Fatalf("refused{streams} = %v, want 1", got)
	}
	// A pod-bound token of the same ServiceAccount has its own share: each
	// agent of a DaemonSet is one ServiceAccount, and must not be refused
	// because the others stream.
	for _, node := range []string{"node-s1", "node-s2"} {
		tok := agentPod(t, k, "ew-streams", "reader", node)
		for i := range 2 {
			if _, err := open(tok); err != nil {
				t.Fatalf("stream %d of reader's pod on %s: %v", i+1, node, err)
			}
		}
	}
	s, err := open(token(t, k, "ew-streams", "other", auth.DefaultAudience))
	if err != nil {
		t.Fatalf("another caller's stream while reader is at its cap: %v", err)
	}
	// Revoking other's binding ends its stream at the next re-check.
	if err := k.RbacV1().RoleBindings("ew-streams").Delete(context.Background(), "other", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := s.Recv()
		if err == nil {
			continue
		}
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("stream after its binding was deleted: %v, want PERMISSION_DENIED", err)
		}
		break
	}
	if got := refused(t, reg, "reauthorization"); got != 1 {
		t.Fatalf("refused{reauthorization} = %v, want 1", got)
	}
}

// TestAPIServerErrorsStayInTheLog: a caller whose token cannot be checked
// learns that, not the API server's address or error.
func TestAPIServerErrorsStayInTheLog(t *testing.T) {
	down, err := kube.NewClient(&rest.Config{Host: "https://127.0.0.1:1", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	kauth := auth.NewKubernetes(down, auth.Options{})
	pki := collectortest.NewPKI(t, "unused")
	col := startTokenCollectorWith(t, collector.Config{Authenticator: kauth, Authorizer: kauth, Nodes: kauth}, pki)
	c := dial(t, client.Options{Address: col.Addr, CAFile: pki.CAFile, Token: "some-token"})
	_, err = c.Query.ListAlerts(context.Background(), &errnowatchv1.ListAlertsRequest{})
	msg := status.Convert(err).Message()
	if status.Code(err) != codes.Unavailable || strings.Contains(msg, "127.0.0.1") || strings.Contains(msg, "refused") {
		t.Fatalf("token check with the API server down: %v; want UNAVAILABLE without the API server's error", err)
	}
}
