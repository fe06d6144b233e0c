package collector

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/errnowatch/errnowatch/pkg/alertpb"
	"github.com/errnowatch/errnowatch/pkg/auth"
)

type identityKey struct{}

// caller is who is calling and with what: the credential is kept so that a
// long-lived stream can be checked again later.
type caller struct {
	id    auth.Identity
	token string
	local bool
}

// callerKey is what per-caller budgets (rates, streams) are kept by: the
// user, and for a pod-bound token the pod too, so that every agent of a
// DaemonSet (one ServiceAccount) has its own budget, and one pod cannot
// spend another's.
func callerKey(id auth.Identity) string {
	if pod, uid := id.Pod(); pod != "" {
		return id.Username + "/" + pod + "/" + uid
	}
	return id.Username
}

func identityFrom(ctx context.Context) auth.Identity {
	c, _ := ctx.Value(identityKey{}).(caller)
	return c.id
}

func callerFrom(ctx context.Context) caller {
	c, _ := ctx.Value(identityKey{}).(caller)
	return c
}

// The interceptors limit each remote address's call rate before anything
// else, so a flood of random tokens costs a token bucket, not a TokenReview
// each; then they find the caller.
func (s *Server) unaryAuth(local bool) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if err := s.allowPeer(ctx, local); err != nil {
			return nil, err
		}
		c, err := s.identify(ctx, local)
		if err != nil {
			return nil, err
		}
		return h(context.WithValue(ctx, identityKey{}, c), req)
	}
}

func (s *Server) streamAuth(local bool) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if err := s.allowPeer(ss.Context(), local); err != nil {
			return err
		}
		c, err := s.identify(ss.Context(), local)
		if err != nil {
			return err
		}
		return h(srv, &identifiedStream{ServerStream: ss, ctx: context.WithValue(ss.Context(), identityKey{}, c)})
	}
}

// allowPeer spends one call from the remote address's budget. Local
// administrators on the unix socket are not limited.
func (s *Server) allowPeer(ctx context.Context, local bool) error {
	if local {
		return nil
	}
	host := "unknown"
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		host = p.Addr.String()
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
	}
	if s.limits.forPeer(host).Allow() {
		return nil
	}
	s.metrics.refuse(refusedPeerRate, 1)
	return alertpb.Exhausted(fmt.Sprintf("%s exceeds %g calls per second; slow down", host, s.cfg.PeerCallsPerSecond), time.Second)
}

type identifiedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identifiedStream) Context() context.Context { return s.ctx }

// identify finds who is calling: a local administrator on the unix socket,
// the ServiceAccount behind a bearer token, or (without token
// authentication) the subject of a verified client certificate.
func (s *Server) identify(ctx context.Context, local bool) (caller, error) {
	if local {
		return caller{id: auth.Identity{Username: "local:unix-socket", Local: true}, local: true}, nil
	}
	if s.cfg.Authenticator == nil {
		cn, ok := clientCertName(ctx)
		if !ok {
			s.metrics.refuse(refusedUnauth, 1)
			return caller{}, status.Error(codes.Unauthenticated, "no verified client certificate: connect with the certificate signed by the collector's client CA")
		}
		return caller{id: auth.Identity{Username: "cert:" + cn}}, nil
	}
	token, err := bearer(ctx)
	if err != nil {
		s.metrics.refuse(refusedUnauth, 1)
		return caller{}, err
	}
	id, err := s.authenticate(ctx, token)
	if err != nil {
		return caller{}, err
	}
	return caller{id: id, token: token}, nil
}

func (s *Server) authenticate(ctx context.Context, token string) (auth.Identity, error) {
	id, err := s.cfg.Authenticator.Authenticate(ctx, token)
	switch {
	case errors.Is(err, auth.ErrUnauthenticated):
		s.metrics.refuse(refusedUnauth, 1)
		return auth.Identity{}, status.Error(codes.Unauthenticated, err.Error())
	case err != nil:
		// The API server's error stays in the log: the caller is not
		// authenticated and learns nothing about the cluster from it.
		s.log.Warn("cannot check a token", zap.Error(err))
		return auth.Identity{}, status.Error(codes.Unavailable, "cannot check the token with the Kubernetes API right now; retry later")
	}
	return id, nil
}

func bearer(ctx context.Context) (string, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return "", status.Error(codes.Unauthenticated, `missing "authorization: Bearer <token>": send a ServiceAccount token with audience errnowatch`)
	}
	scheme, token, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "bearer") || strings.TrimSpace(token) == "" {
		return "", status.Error(codes.Unauthenticated, `malformed authorization header: want "Bearer <token>"`)
	}
	return strings.TrimSpace(token), nil
}

func clientCertName(ctx context.Context) (string, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", false
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return "", false
	}
	return ti.State.VerifiedChains[0][0].Subject.CommonName, true
}

// authorize checks that the caller may use verb on alerts in namespace
// ("" is cluster-wide).
func (s *Server) authorize(ctx context.Context, verb, namespace string) error {
	id := identityFrom(ctx)
	if id.Local || s.cfg.Authorizer == nil {
		return nil
	}
	ok, reason, err := s.cfg.Authorizer.Authorize(ctx, id, verb, namespace)
	if err != nil {
		s.log.Warn("cannot authorize", zap.String("identity", id.Username), zap.Error(err))
		return status.Error(codes.Unavailable, "cannot check permissions with the Kubernetes API right now; retry later")
	}
	if ok {
		return nil
	}
	s.metrics.refuse(refusedDenied, 1)
	where := fmt.Sprintf("in namespace %q", namespace)
	fix := fmt.Sprintf("grant it with a Role and RoleBinding in %q", namespace)
	if namespace == "" {
		where = "across all namespaces"
		fix = "filter by a namespace you may read, or grant a ClusterRole"
	}
	msg := fmt.Sprintf("%s may not %s alerts %s (RBAC verb %q on resource %q in API group %q; %s)",
		id.Username, verb, where, verb, auth.Resource, auth.Group, fix)
	if reason != "" {
		msg += ": " + reason
	}
	return status.Error(codes.PermissionDenied, msg)
}

// mayPublish allows the listed agent ServiceAccounts and local
// administrators, and returns the node an agent may publish for: its own,
// from its pod-bound token. An empty node means any (local administrators;
// mutual TLS without token authentication, where the certificate is the
// only credential).
func (s *Server) mayPublish(ctx context.Context, id auth.Identity) (node string, err error) {
	if id.Local || s.cfg.Authenticator == nil {
		return "", nil
	}
	ns, name, ok := id.ServiceAccount()
	if !ok || !s.agents[ns+"/"+name] {
		s.metrics.refuse(refusedNotAgent, 1)
		return "", status.Errorf(codes.PermissionDenied,
			"%s may not publish alerts: only the agents' ServiceAccounts may (collector flag --agent-service-accounts)", id.Username)
	}
	if s.cfg.Nodes == nil {
		return "", nil
	}
	node, err = s.cfg.Nodes.NodeOf(ctx, id)
	switch {
	case errors.Is(err, auth.ErrUnauthenticated):
		s.metrics.refuse(refusedWrongNode, 1)
		return "", status.Error(codes.PermissionDenied, err.Error())
	case err != nil:
		s.log.Warn("cannot find an agent's node", zap.String("identity", id.Username), zap.Error(err))
		return "", status.Error(codes.Unavailable, "cannot find the agent's node with the Kubernetes API right now; retry later")
	}
	return node, nil
}

func (s *Server) allowQuery(ctx context.Context) error {
	id := identityFrom(ctx)
	if s.limits.forQuery(callerKey(id)).Allow() {
		return nil
	}
	s.metrics.refuse(refusedQueryRate, 1)
	return alertpb.Exhausted(fmt.Sprintf("%s exceeds %g queries per second; slow down", id.Username, s.cfg.QueriesPerSecond), time.Second)
}

// reauthenticate checks a stream's token again (not expired, its pod not
// deleted) and returns the identity it stands for now. Callers without a
// token (local, client certificates) keep theirs.
func (s *Server) reauthenticate(ctx context.Context) (auth.Identity, error) {
	c := callerFrom(ctx)
	if c.local || c.token == "" || s.cfg.Authenticator == nil {
		return c.id, nil
	}
	return s.authenticate(ctx, c.token)
}

// reauthorize checks a stream's caller again: the token still
// authenticates and still may use verb in namespace.
func (s *Server) reauthorize(ctx context.Context, verb, namespace string) error {
	c := callerFrom(ctx)
	if c.local || c.token == "" || s.cfg.Authenticator == nil {
		return nil
	}
	id, err := s.reauthenticate(ctx)
	if err != nil {
		return err
	}
	return s.authorize(context.WithValue(ctx, identityKey{}, caller{id: id, token: c.token}), verb, namespace)
}

// recheckIn is how long until a stream's caller must be checked again:
// every interval, and no later than its token's expiry.
func recheckIn(interval time.Duration, id auth.Identity) time.Duration {
	if !id.Expires.IsZero() {
		interval = min(interval, max(time.Until(id.Expires), 0))
	}
	return interval
}
