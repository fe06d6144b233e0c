package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// ServeDNS answers the cluster's names on addr (UDP and TCP) until ctx ends:
// A records of <service>.<namespace>.svc.cluster.local (the ClusterIP, or
// the ready endpoints of a headless Service), from an informer on Services
// and EndpointSlices. Everything else is NXDOMAIN: the node has no upstream
// to forward to. This is the slice of CoreDNS's kubernetes plugin the tests
// need; CoreDNS itself is not in the module proxy's reach as a binary here.
func ServeDNS(ctx context.Context, kubeconfig, addr string) error {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	f := informers.NewSharedInformerFactory(cs, 10*time.Minute)
	svcs := f.Core().V1().Services().Lister()
	slices := f.Discovery().V1().EndpointSlices().Lister()
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())

	lookup := func(name string) ([]net.IP, bool) {
		name = strings.TrimSuffix(strings.ToLower(name), ".")
		rest, ok := strings.CutSuffix(name, ".svc.cluster.local")
		if !ok {
			return nil, false
		}
		svcName, ns, ok := strings.Cut(rest, ".")
		if !ok || strings.Contains(ns, ".") {
			return nil, false
		}
		svc, err := svcs.Services(ns).Get(svcName)
		if err != nil {
			return nil, false
		}
		if svc.Spec.ClusterIP != corev1.ClusterIPNone && svc.Spec.ClusterIP != "" {
			return []net.IP{net.ParseIP(svc.Spec.ClusterIP)}, true
		}
		sel := labels.SelectorFromSet(labels.Set{"kubernetes.io/service-name": svcName})
		eps, _ := slices.EndpointSlices(ns).List(sel)
		var ips []net.IP
		for _, es := range eps {
			for _, ep := range es.Endpoints {
				if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
					continue
				}
				for _, a := range ep.Addresses {
					ips = append(ips, net.ParseIP(a))
				}
			}
		}
		return ips, true
	}

	handler := dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		m.Authoritative = true
		if len(req.Question) != 1 {
			m.Rcode = dns.RcodeFormatError
			_ = w.WriteMsg(m)
			return
		}
		q := req.Question[0]
		ips, ok := lookup(q.Name)
		if !ok {
			m.Rcode = dns.RcodeNameError
		} else if q.Qtype == dns.TypeA {
			for _, ip := range ips {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5},
					A:   ip.To4(),
				})
			}
		}
		_ = w.WriteMsg(m)
	})

	servers := []*dns.Server{
		{Addr: addr, Net: "udp", Handler: handler},
		{Addr: addr, Net: "tcp", Handler: handler},
	}
	errc := make(chan error, len(servers))
	for _, s := range servers {
		go func() { errc <- s.ListenAndServe() }()
	}
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("cluster dns on %s: %w", addr, err)
	}
	for _, s := range servers {
		_ = s.Shutdown()
	}
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
