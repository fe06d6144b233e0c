// Package auth decides who talks to the collector and what they may read.
// It turns a bearer token into an Identity (Kubernetes TokenReview, with the
// errnowatch audience) and answers "may this identity read alerts in this
// namespace" (Kubernetes SubjectAccessReview on the virtual resource
// alerts.errnowatch.io). Answers are cached briefly, so a busy CLI or SIEM
// does not turn every call into two API server round trips. The collector
// hands it tokens and namespaces and maps its answers to gRPC codes.
package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/client-go/kubernetes"
)

// ErrUnauthenticated wraps every reason a token is refused (invalid,
// expired, wrong audience). Other errors mean the decision could not be
// made (API server unreachable) and the caller should retry.
var ErrUnauthenticated = errors.New("unauthenticated")

// API group and resource of the virtual "alerts" resource RBAC rules name.
const (
	Group    = "errnowatch.io"
	Resource = "alerts"
	// DefaultAudience is the audience agents and readers request for their
	// projected ServiceAccount tokens.
	DefaultAudience = "errnowatch"
)

// Verbs the collector asks about.
const (
	VerbList  = "list"  // ListAlerts, SummarizeAlerts
	VerbWatch = "watch" // StreamAlerts
)

// Identity is an authenticated caller.
type Identity struct {
	Username string
	UID      string
	Groups   []string
	Extra    map[string][]string
	// Local is true for peers on the collector's unix socket: they are the
	// node's administrators and may do anything.
	Local bool
}

// ServiceAccount splits a ServiceAccount username
// ("system:serviceaccount:<namespace>:<name>").
func (id Identity) ServiceAccount() (namespace, name string, ok bool) {
	rest, ok := strings.CutPrefix(id.Username, "system:serviceaccount:")
	if !ok {
		return "", "", false
	}
	namespace, name, ok = strings.Cut(rest, ":")
	return namespace, name, ok && namespace != "" && name != ""
}

// Authenticator turns a bearer token into an identity.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (Identity, error)
}

// Authorizer decides whether id may use verb on alerts in namespace ("" is
// cluster-wide). reason explains a denial for the caller.
type Authorizer interface {
	Authorize(ctx context.Context, id Identity, verb, namespace string) (allowed bool, reason string, err error)
}

// Options tunes the Kubernetes authenticator and authorizer.
type Options struct {
	// Audience tokens must carry; default DefaultAudience.
	Audience string
	// AllowTTL and DenyTTL bound how long answers are reused; defaults 10s
	// and 2s. A short DenyTTL lets a fixed RoleBinding take effect quickly.
	AllowTTL, DenyTTL time.Duration
	// CacheSize bounds each cache; default 4096 entries.
	CacheSize int
}

// Kubernetes authenticates with TokenReview and authorizes with
// SubjectAccessReview. The collector's ServiceAccount needs the
// system:auth-delegator ClusterRole.
type Kubernetes struct {
	client  kubernetes.Interface
	opts    Options
	tokens  *cache.LRUExpireCache
	reviews *cache.LRUExpireCache
}

var (
	_ Authenticator = (*Kubernetes)(nil)
	_ Authorizer    = (*Kubernetes)(nil)
)

// NewKubernetes returns an Authenticator and Authorizer backed by the API
// server behind client.
func NewKubernetes(client kubernetes.Interface, opts Options) *Kubernetes {
	if opts.Audience == "" {
		opts.Audience = DefaultAudience
	}
	if opts.AllowTTL <= 0 {
		opts.AllowTTL = 10 * time.Second
	}
	if opts.DenyTTL <= 0 {
		opts.DenyTTL = 2 * time.Second
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = 4096
	}
	return &Kubernetes{
		client:  client,
		opts:    opts,
		tokens:  cache.NewLRUExpireCache(opts.CacheSize),
		reviews: cache.NewLRUExpireCache(opts.CacheSize),
	}
}

type tokenAnswer struct {
	id  Identity
	err error
}

// Authenticate implements Authenticator.
func (k *Kubernetes) Authenticate(ctx context.Context, token string) (Identity, error) {
	// Key by hash so the cache never holds a usable token.
	key := sha256.Sum256([]byte(token))
	if v, ok := k.tokens.Get(key); ok {
		a := v.(tokenAnswer)
		return a.id, a.err
	}
	res, err := k.client.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{
		Spec: authnv1.TokenReviewSpec{Token: token, Audiences: []string{k.opts.Audience}},
	}, metav1.CreateOptions{})
	if err != nil {
		return Identity{}, fmt.Errorf("token review: %w", err)
	}
	var a tokenAnswer
	switch st := res.Status; {
	case !st.Authenticated:
		reason := st.Error
		if reason == "" {
			reason = "token not accepted"
		}
		a.err = fmt.Errorf("%w: %s (use a ServiceAccount token with audience %q)", ErrUnauthenticated, reason, k.opts.Audience)
	case !slices.Contains(st.Audiences, k.opts.Audience):
		// An authenticator that ignores audiences may still say yes; the
		// token must be meant for errnowatch, not replayed from elsewhere.
		a.err = fmt.Errorf("%w: token audiences %v do not include %q", ErrUnauthenticated, st.Audiences, k.opts.Audience)
	default:
		a.id = Identity{Username: st.User.Username, UID: st.User.UID, Groups: st.User.Groups}
		if len(st.User.Extra) > 0 {
			a.id.Extra = make(map[string][]string, len(st.User.Extra))
			for k, v := range st.User.Extra {
				a.id.Extra[k] = v
			}
		}
	}
	ttl := k.opts.AllowTTL
	if a.err != nil {
		ttl = k.opts.DenyTTL
	}
	k.tokens.Add(key, a, ttl)
	return a.id, a.err
}

type reviewKey struct {
	user, uid, groups, verb, namespace string
}

type reviewAnswer struct {
	allowed bool
	reason  string
}

// Authorize implements Authorizer.
func (k *Kubernetes) Authorize(ctx context.Context, id Identity, verb, namespace string) (bool, string, error) {
	if id.Local {
		return true, "", nil
	}
	key := reviewKey{id.Username, id.UID, strings.Join(id.Groups, "\x00"), verb, namespace}
	if len(id.Extra) > 0 {
		// Extra can change what a webhook authorizer says; rather than
		// serialize it into the key, do not cache such identities.
		key = reviewKey{}
	} else if v, ok := k.reviews.Get(key); ok {
		a := v.(reviewAnswer)
		return a.allowed, a.reason, nil
	}
	sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User:   id.Username,
		UID:    id.UID,
		Groups: id.Groups,
		ResourceAttributes: &authzv1.ResourceAttributes{
			Namespace: namespace,
			Verb:      verb,
			Group:     Group,
			Resource:  Resource,
		},
	}}
	if len(id.Extra) > 0 {
		sar.Spec.Extra = make(map[string]authzv1.ExtraValue, len(id.Extra))
		for k, v := range id.Extra {
			sar.Spec.Extra[k] = v
		}
	}
	res, err := k.client.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
	if err != nil {
		return false, "", fmt.Errorf("subject access review: %w", err)
	}
	a := reviewAnswer{allowed: res.Status.Allowed && !res.Status.Denied, reason: res.Status.Reason}
	if key != (reviewKey{}) {
		ttl := k.opts.AllowTTL
		if !a.allowed {
			ttl = k.opts.DenyTTL
		}
		k.reviews.Add(key, a, ttl)
	}
	return a.allowed, a.reason, nil
}
