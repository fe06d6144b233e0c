// Package auth decides who talks to the collector and what they may read.
// It turns a bearer token into an Identity (Kubernetes TokenReview, with the
// errnowatch audience), answers "may this identity read alerts in this
// namespace" (Kubernetes SubjectAccessReview on the virtual resource
// alerts.errnowatch.io) and "which node does this agent run on" (the node
// named in its pod-bound token, or the node of the pod the token is bound
// to). Answers are cached briefly by a hash of everything they depend on,
// so a busy CLI or SIEM does not turn every call into two API server round
// trips. The collector hands it tokens and namespaces and maps its answers
// to gRPC codes.
package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/cache"
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
	// Expires is when the credential stops being valid (the token's exp
	// claim, read once the API server accepted the token); zero when
	// unknown. Long-lived streams re-check the caller by then.
	Expires time.Time
}

// Extra keys the API server puts in the TokenReview of a token bound to a
// pod (every projected ServiceAccount token is). The node keys need
// Kubernetes 1.30 or newer (ServiceAccountTokenPodNodeInfo, GA in 1.32).
const (
	ExtraPodName  = "authentication.kubernetes.io/pod-name"
	ExtraPodUID   = "authentication.kubernetes.io/pod-uid"
	ExtraNodeName = "authentication.kubernetes.io/node-name"
)

func (id Identity) extra(key string) string {
	if v := id.Extra[key]; len(v) == 1 {
		return v[0]
	}
	return ""
}

// Pod returns the pod a bound token belongs to, or empty strings.
func (id Identity) Pod() (name, uid string) {
	return id.extra(ExtraPodName), id.extra(ExtraPodUID)
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

// NodeResolver finds the node an authenticated agent runs on, so that it
// may publish alerts for that node only.
type NodeResolver interface {
	// NodeOf returns id's node, or an error wrapping ErrUnauthenticated
	// when id is not bound to a pod on a node (a token from TokenRequest
	// without a bound pod, or a pod not scheduled).
	NodeOf(ctx context.Context, id Identity) (string, error)
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
	// Registerer, when set, gets errnowatch_auth_reviews_total: API server
	// reviews made and answers served from the cache.
	Registerer prometheus.Registerer
}

// Kubernetes authenticates with TokenReview, authorizes with
// SubjectAccessReview and resolves agent pods to nodes. The collector's
// ServiceAccount needs the system:auth-delegator ClusterRole and get on
// pods (for API servers older than 1.30, whose tokens name no node).
type Kubernetes struct {
	client  API
	opts    Options
	tokens  *cache.LRUExpireCache
	reviews *cache.LRUExpireCache
	nodes   *cache.LRUExpireCache
	lookups *prometheus.CounterVec
}

var (
	_ Authenticator = (*Kubernetes)(nil)
	_ Authorizer    = (*Kubernetes)(nil)
	_ NodeResolver  = (*Kubernetes)(nil)
)

// API is what Kubernetes asks the API server; *kube.Client is one.
type API interface {
	TokenReview(context.Context, *authnv1.TokenReview) (*authnv1.TokenReview, error)
	SubjectAccessReview(context.Context, *authzv1.SubjectAccessReview) (*authzv1.SubjectAccessReview, error)
	Pod(ctx context.Context, namespace, name string) (*corev1.Pod, error)
}

// NewKubernetes returns an Authenticator and Authorizer backed by the API
// server behind client.
func NewKubernetes(client API, opts Options) *Kubernetes {
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
	k := &Kubernetes{
		client:  client,
		opts:    opts,
		tokens:  cache.NewLRUExpireCache(opts.CacheSize),
		reviews: cache.NewLRUExpireCache(opts.CacheSize),
		nodes:   cache.NewLRUExpireCache(opts.CacheSize),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "errnowatch_auth_reviews_total",
			Help: "Identity checks by kind (token, access, pod), answered by the API server (cached=false) or the cache (cached=true).",
		}, []string{"kind", "cached"}),
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(k.lookups)
	}
	return k
}

// Lookups is errnowatch_auth_reviews_total, for tests and for registering
// elsewhere.
func (k *Kubernetes) Lookups() *prometheus.CounterVec { return k.lookups }

func (k *Kubernetes) count(kind string, cached bool) {
	k.lookups.WithLabelValues(kind, fmt.Sprint(cached)).Inc()
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
		if a.err != nil || a.id.Expires.IsZero() || time.Now().Before(a.id.Expires) {
			k.count("token", true)
			return a.id, a.err
		}
	}
	k.count("token", false)
	res, err := k.client.TokenReview(ctx, &authnv1.TokenReview{
		Spec: authnv1.TokenReviewSpec{Token: token, Audiences: []string{k.opts.Audience}},
	})
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
		a.id = Identity{Username: st.User.Username, UID: st.User.UID, Groups: st.User.Groups, Expires: tokenExpiry(token)}
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
	} else if !a.id.Expires.IsZero() {
		// Never serve a token from the cache past its expiry.
		ttl = max(0, min(ttl, time.Until(a.id.Expires)))
	}
	if ttl > 0 {
		k.tokens.Add(key, a, ttl)
	}
	return a.id, a.err
}

// tokenExpiry reads the exp claim of a JWT. It is called only for tokens
// the API server has just accepted, so the claim is authentic; a token that
// is not a JWT has no known expiry.
func tokenExpiry(token string) time.Time {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || len(parts[1]) > 16<<10 {
		return time.Time{}
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}
	}
	var claims struct {
		Exp json.Number `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return time.Time{}
	}
	exp, err := claims.Exp.Int64()
	if err != nil || exp <= 0 {
		return time.Time{}
	}
	return time.Unix(exp, 0)
}

// identityHash is a digest of everything about id an authorizer may look
// at: name, UID, groups and every extra (bound tokens carry the pod's name
// and UID there, so a key without them would never be reused, and a key
// that ignored them would let one pod's answer serve another).
func identityHash(id Identity, parts ...string) [sha256.Size]byte {
	h := sha256.New()
	field := func(s string) {
		// Length-prefixed, so no two different identities hash alike.
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	field(id.Username)
	field(id.UID)
	field(fmt.Sprint(len(id.Groups)))
	for _, g := range id.Groups {
		field(g)
	}
	keys := make([]string, 0, len(id.Extra))
	for k := range id.Extra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	field(fmt.Sprint(len(keys)))
	for _, k := range keys {
		field(k)
		field(fmt.Sprint(len(id.Extra[k])))
		for _, v := range id.Extra[k] {
			field(v)
		}
	}
	for _, p := range parts {
		field(p)
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
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
	key := identityHash(id, verb, namespace)
	if v, ok := k.reviews.Get(key); ok {
		k.count("access", true)
		a := v.(reviewAnswer)
		return a.allowed, a.reason, nil
	}
	k.count("access", false)
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
	res, err := k.client.SubjectAccessReview(ctx, sar)
	if err != nil {
		return false, "", fmt.Errorf("subject access review: %w", err)
	}
	a := reviewAnswer{allowed: res.Status.Allowed && !res.Status.Denied, reason: res.Status.Reason}
	ttl := k.opts.AllowTTL
	if !a.allowed {
		ttl = k.opts.DenyTTL
	}
	k.reviews.Add(key, a, ttl)
	return a.allowed, a.reason, nil
}

// NodeOf implements NodeResolver. A token the API server signed for a pod
// on a node names the node; an older API server's names only the pod, which
// is then looked up (and cached by pod UID: a pod never changes node).
func (k *Kubernetes) NodeOf(ctx context.Context, id Identity) (string, error) {
	if n := id.extra(ExtraNodeName); n != "" {
		return n, nil
	}
	ns, _, ok := id.ServiceAccount()
	pod, uid := id.Pod()
	if !ok || pod == "" || uid == "" {
		return "", fmt.Errorf("%w: %s is not bound to a pod: agents must use a projected ServiceAccount token (serviceAccountToken volume)", ErrUnauthenticated, id.Username)
	}
	if v, ok := k.nodes.Get(uid); ok {
		k.count("pod", true)
		return v.(string), nil
	}
	k.count("pod", false)
	p, err := k.client.Pod(ctx, ns, pod)
	if err != nil {
		return "", fmt.Errorf("get pod %s/%s: %w", ns, pod, err)
	}
	if string(p.UID) != uid || p.Spec.NodeName == "" {
		// TokenReview already refuses tokens of deleted pods; this closes
		// the window where a pod of the same name replaced it.
		return "", fmt.Errorf("%w: pod %s/%s of the token is gone or not on a node", ErrUnauthenticated, ns, pod)
	}
	k.nodes.Add(uid, p.Spec.NodeName, time.Hour)
	return p.Spec.NodeName, nil
}
