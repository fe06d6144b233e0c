package collector

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/errnowatch/errnowatch/pkg/auth"
)

type identityKey struct{}

func identityFrom(ctx context.Context) auth.Identity {
	id, _ := ctx.Value(identityKey{}).(auth.Identity)
	return id
}

func (s *Server) unaryAuth(local bool) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		id, err := s.identify(ctx, local)
		if err != nil {
			return nil, err
		}
		return h(context.WithValue(ctx, identityKey{}, id), req)
	}
}

func (s *Server) streamAuth(local bool) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		id, err := s.identify(ss.Context(), local)
		if err != nil {
			return err
		}
		return h(srv, &identifiedStream{ServerStream: ss, ctx: context.WithValue(ss.Context(), identityKey{}, id)})
	}
}

type identifiedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identifiedStream) Context() context.Context { return s.ctx }

// identify finds who is calling: a local administrator on the unix socket,
// the ServiceAccount behind a bearer token, or (without token
// authentication) the subject of a verified client certificate.
func (s *Server) identify(ctx context.Context, local bool) (auth.Identity, error) {
	if local {
		return auth.Identity{Username: "local:unix-socket", Local: true}, nil
	}
	if s.cfg.Authenticator == nil {
		cn, ok := clientCertName(ctx)
		if !ok {
			return auth.Identity{}, status.Error(codes.Unauthenticated, "no verified client certificate: connect with the certificate signed by the collector's client CA")
		}
		return auth.Identity{Username: "cert:" + cn}, nil
	}
	token, err := bearer(ctx)
	if err != nil {
		return auth.Identity{}, err
	}
	id, err := s.cfg.Authenticator.Authenticate(ctx, token)
	switch {
	case errors.Is(err, auth.ErrUnauthenticated):
		return auth.Identity{}, status.Error(codes.Unauthenticated, err.Error())
	case err != nil:
		s.log.Warn("cannot check a token", zap.Error(err))
		return auth.Identity{}, status.Errorf(codes.Unavailable, "cannot check the token with the Kubernetes API right now (%v); retry later", err)
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
		return status.Errorf(codes.Unavailable, "cannot check permissions with the Kubernetes API right now (%v); retry later", err)
	}
	if ok {
		return nil
	}
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

// mayPublish allows the agents' ServiceAccounts and local administrators.
func (s *Server) mayPublish(id auth.Identity) error {
	if id.Local || s.cfg.Authenticator == nil {
		return nil
	}
	ns, name, ok := id.ServiceAccount()
	if ok && (ns == s.cfg.AgentNamespace || s.agents[ns+"/"+name]) {
		return nil
	}
	return status.Errorf(codes.PermissionDenied,
		"%s may not publish alerts: only ServiceAccounts in namespace %q or listed as agent service accounts may",
		id.Username, s.cfg.AgentNamespace)
}

func (s *Server) allowQuery(ctx context.Context) error {
	id := identityFrom(ctx)
	if s.limits.forQuery(id.Username).Allow() {
		return nil
	}
	return exhausted(fmt.Sprintf("%s exceeds %g queries per second; slow down", id.Username, s.cfg.QueriesPerSecond), time.Second)
}

func exhausted(msg string, retry time.Duration) error {
	st, err := status.New(codes.ResourceExhausted, msg).WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(retry)})
	if err != nil {
		return status.Error(codes.ResourceExhausted, msg)
	}
	return st.Err()
}
