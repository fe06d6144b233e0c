package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/alertpb"
	"github.com/errnowatch/errnowatch/pkg/collector/client"
	"github.com/errnowatch/errnowatch/pkg/rules"
)

// testHostile (issue 13): a hostile pod tries to forge alerts and to blind
// the node's sensor, and the cluster still reports another pod's failures
// exactly, with its pod named.
//
// Forging: the collector refuses a publish with the SIEM reader's token,
// with a token bound to the hostile pod, and with the agent's own
// ServiceAccount token bound to the agent pod when the alert names another
// node. Blinding: the hostile pod makes a new (syscall, errno) key on every
// call for 45 s (syscall numbers outside the table and getpriority failing
// with 4095 errnos under its own seccomp filter) while a victim pod fails
// faccessat exactly n times; the victim's count must be exact, the flood
// must raise the built-in sensor-evasion alert on the hostile pod, and the
// agent must not restart.
func testHostile(t *testing.T, r reader) {
	ctx := ctxFor(t, 8*time.Minute)
	const hostileNS, victimNS, n = "e2e-hostile", "e2e-victim", 20000
	e.namespace(ctx, t, hostileNS)
	e.namespace(ctx, t, victimNS)
	agent, err := e.agentPod(ctx)
	if err != nil {
		t.Fatal(err)
	}
	restarts := restartsOf(agent)

	if _, err := e.kube.AppsV1().Deployments(hostileNS).Create(ctx,
		deployment(hostileNS, "flood", "flood", "--duration", "45s", "--then-sleep"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var hostile corev1.Pod
	err = poll(ctx, time.Second, func() (bool, error) {
		pods, err := e.podsOf(ctx, hostileNS, "flood")
		if err != nil || len(pods) != 1 || pods[0].Status.Phase != corev1.PodRunning {
			return false, err
		}
		hostile = pods[0]
		return true, nil
	})
	if err != nil {
		t.Fatalf("flood pod not running: %v", err)
	}

	// 1. Forged alerts, while the flood starts.
	forged := alert.Alert{ID: alert.NewID(time.Now()), Revision: 1, RuleID: "forged", Severity: alert.SeverityCritical,
		Message: "forged by a hostile pod", FirstSeen: time.Now(), LastSeen: time.Now(), Node: e.node.NodeName(),
		Namespace: victimNS, Pod: "victim"}
	hostileTok := e.boundToken(ctx, t, hostileNS, "default", hostile)
	agentTok := e.boundToken(ctx, t, e.ns, agent.Spec.ServiceAccountName, agent)
	otherNode := forged
	otherNode.ID, otherNode.Node = alert.NewID(time.Now()), "e2e-another-node"
	for _, c := range []struct {
		who   string
		token client.Options
		a     alert.Alert
	}{
		{"the SIEM reader's token", client.Options{TokenFile: r.token}, forged},
		{"a token bound to the hostile pod", client.Options{Token: hostileTok}, forged},
		{"the agent's token, for another node", client.Options{Token: agentTok}, otherNode},
	} {
		err := publishAs(ctx, r, c.token, c.a)
		if code := status.Code(err); code != codes.PermissionDenied && code != codes.Unauthenticated {
			t.Errorf("publish with %s: %v (code %s), want PermissionDenied or Unauthenticated", c.who, err, code)
		} else {
			t.Logf("publish with %s refused: %v", c.who, err)
		}
	}

	// 2. The victim fails exactly n times while the flood runs.
	if _, err := e.kube.AppsV1().Deployments(victimNS).Create(ctx,
		deployment(victimNS, "victim", "burst", "--count", fmt.Sprint(n), "--syscall", "faccessat", "--then-sleep"),
		metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := waitWorkloadDone(ctx, victimNS, "victim"); err != nil {
		t.Fatal(err)
	}
	if err := waitWorkloadDone(ctx, hostileNS, "flood"); err != nil {
		t.Fatal(err)
	}
	series := fmt.Sprintf(`{errno="ENOENT",namespace="%s",syscall="faccessat"}`, victimNS)
	var got float64
	var seen map[string]float64
	pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	err = poll(pctx, time.Second, func() (bool, error) {
		m, err := e.metrics(pctx, "errnowatch_failures_total")
		seen, got = m, m[series]
		return err == nil && got >= n, err
	})
	cancel()
	if err != nil || got != n {
		var related []string
		for k, v := range seen {
			if strings.Contains(k, victimNS) || strings.Contains(k, `"_other"`) {
				related = append(related, fmt.Sprintf("%s %.0f", k, v))
			}
		}
		t.Errorf("errnowatch_failures_total%s = %.0f during the flood, want exactly %d (%v); victim and _other series: %v",
			series, got, n, err, related)
	}
	// The flood made thousands of distinct (syscall, errno) series: past its
	// namespace's share they fold into its own _other, not the victim's.
	if m, err := e.metrics(ctx, "errnowatch_failures_total"); err != nil {
		t.Error(err)
	} else if other := m[fmt.Sprintf(`{errno="_other",namespace="%s",syscall="_other"}`, hostileNS)]; other == 0 {
		t.Errorf("the flood's series did not fold into its namespace's _other series")
	} else {
		t.Logf("the flood's failures past its namespace's share of series: %.0f in %s's _other series", other, hostileNS)
	}
	pctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
	var flooded []string
	err = poll(pctx, 2*time.Second, func() (bool, error) {
		as, err := e.list(pctx, r, "--namespace", hostileNS)
		if err != nil {
			return false, err
		}
		flooded = flooded[:0]
		for _, a := range as {
			flooded = append(flooded, a.RuleID+" on "+a.Pod)
			if a.RuleID == rules.EvasionRuleID && a.Pod == hostile.Name {
				t.Logf("sensor-evasion alert on the flooding pod: %s", a.Message)
				return true, nil
			}
		}
		return false, nil
	})
	cancel()
	if err != nil {
		t.Errorf("no %s alert on %s/%s: %v; the namespace's alerts: %v", rules.EvasionRuleID, hostileNS, hostile.Name, err, flooded)
	}
	victims, err := e.list(ctx, r, "--namespace", victimNS)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range victims {
		if a.RuleID == "forged" {
			t.Errorf("a forged alert was stored: %+v", a.Alert)
		}
	}
	if agent, err = e.agentPod(ctx); err != nil || restartsOf(agent) != restarts {
		t.Errorf("agent restarted during the flood (restarts %d, was %d): %v", restartsOf(agent), restarts, err)
	}
	_ = e.kube.AppsV1().Deployments(hostileNS).Delete(ctx, "flood", metav1.DeleteOptions{})
	_ = e.kube.AppsV1().Deployments(victimNS).Delete(ctx, "victim", metav1.DeleteOptions{})
}

// boundToken is a token of ServiceAccount sa with the errnowatch audience,
// bound to pod as the kubelet's projected tokens are.
func (e *env) boundToken(ctx context.Context, t *testing.T, ns, sa string, pod corev1.Pod) string {
	t.Helper()
	exp := int64(600)
	tr, err := e.kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authv1.TokenRequest{
		Spec: authv1.TokenRequestSpec{Audiences: []string{"errnowatch"}, ExpirationSeconds: &exp,
			BoundObjectRef: &authv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for %s/%s bound to pod %s: %v", ns, sa, pod.Name, err)
	}
	return tr.Status.Token
}

// publishAs sends a as one batch on a publish stream of its own, with the
// reader's address and CA and creds' token, and returns how the collector
// answered.
func publishAs(ctx context.Context, r reader, creds client.Options, a alert.Alert) error {
	creds.Address, creds.CAFile, creds.ServerName = r.server, r.ca, r.serverName
	c, err := client.Dial(creds)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s, err := c.Ingest.PublishAlerts(ctx)
	if err != nil {
		return err
	}
	if err := s.Send(&errnowatchv1.PublishAlertsRequest{BatchSequence: 1, Alerts: []*errnowatchv1.Alert{alertpb.ToProto(&a)}}); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	_, err = s.Recv()
	if err == nil {
		return errors.New("the collector acknowledged the batch")
	}
	return err
}

func restartsOf(p corev1.Pod) int32 {
	var n int32
	for _, s := range p.Status.ContainerStatuses {
		n += s.RestartCount
	}
	return n
}
