package ui

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/errnowatch/errnowatch/pkg/auth"
	"github.com/errnowatch/errnowatch/pkg/store"
)

// Cookie names. The __Host- prefix makes browsers refuse them unless they
// are Secure, for this host only and for every path: a sibling subdomain
// cannot plant one.
const (
	sessionCookie = "__Host-errnowatch-session"
	csrfCookie    = "__Host-errnowatch-csrf"
	// maxTokenBytes bounds a token: a cookie holds at most 4 KiB.
	maxTokenBytes = 3800
)

// session is the person behind a request.
type session struct {
	id    auth.Identity
	token string
	// key is what per-person limits and caches are kept by.
	key string
}

type sessionKey struct{}

func sessionFrom(ctx context.Context) *session {
	s, _ := ctx.Value(sessionKey{}).(*session)
	return s
}

// signedIn runs h for requests with a valid session; others get the
// sign-in page (pages) or 401 (the live stream).
func (s *Server) signedIn(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(sessionCookie)
		if err != nil || c.Value == "" {
			s.metrics.refuse(refusedUnauth)
			s.toLogin(w, r, "")
			return
		}
		sess, err := s.authenticate(r.Context(), c.Value)
		switch {
		case errors.Is(err, auth.ErrUnauthenticated):
			s.metrics.refuse(refusedUnauth)
			clearCookie(w, sessionCookie)
			s.toLogin(w, r, "Your session ended (the token expired or was revoked): sign in again.")
			return
		case err != nil:
			s.log.Warn("cannot check a UI session's token", zap.Error(err))
			s.errorPage(w, r, http.StatusServiceUnavailable, "Cannot check your token with the Kubernetes API right now; retry in a moment.")
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, sess)))
	}
}

func (s *Server) authenticate(ctx context.Context, token string) (*session, error) {
	if len(token) > maxTokenBytes {
		return nil, auth.ErrUnauthenticated
	}
	if s.cfg.LocalKey != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.cfg.LocalKey)) == 1 {
		return &session{id: auth.Identity{Username: "local:access-key", Local: true}, token: token, key: "local"}, nil
	}
	if s.cfg.Authenticator == nil {
		return nil, auth.ErrUnauthenticated
	}
	id, err := s.cfg.Authenticator.Authenticate(ctx, token)
	if err != nil {
		return nil, err
	}
	key := id.Username
	if pod, uid := id.Pod(); pod != "" {
		key += "/" + pod + "/" + uid
	}
	return &session{id: id, token: token, key: key}, nil
}

func (s *Server) toLogin(w http.ResponseWriter, r *http.Request, msg string) {
	if r.URL.Path == "/events" {
		http.Error(w, "sign in first", http.StatusUnauthorized)
		return
	}
	s.renderLogin(w, r, http.StatusUnauthorized, msg)
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.renderLogin(w, r, http.StatusOK, "")
}

type loginData struct {
	CSRF, Error string
	Local       bool
}

// renderLogin shows the sign-in form with a fresh CSRF token, kept in a
// cookie too (double submit): a form posted from another site carries
// neither.
func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, code int, msg string) {
	tok := randomToken()
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: tok, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: 3600})
	s.render(w, r, code, "login", page{Title: "Sign in", Data: loginData{CSRF: tok, Error: msg, Local: s.cfg.LocalKey != ""}})
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.metrics.refuse(refusedBadInput)
		s.renderLogin(w, r, http.StatusBadRequest, "The form was too large or malformed.")
		return
	}
	c, err := r.Cookie(csrfCookie)
	if err != nil || !sameOrigin(r) || !equalSecret(c.Value, r.PostForm.Get("csrf")) {
		s.metrics.refuse(refusedCSRF)
		s.renderLogin(w, r, http.StatusForbidden, "The sign-in form expired or came from another site; sign in from this page.")
		return
	}
	token := strings.TrimSpace(r.PostForm.Get("token"))
	token = strings.TrimPrefix(token, "Bearer ")
	if token == "" || len(token) > maxTokenBytes {
		s.metrics.refuse(refusedBadInput)
		s.renderLogin(w, r, http.StatusBadRequest, "Paste a token: `kubectl create token <serviceaccount> --audience errnowatch`.")
		return
	}
	sess, err := s.authenticate(r.Context(), token)
	switch {
	case errors.Is(err, auth.ErrUnauthenticated):
		s.metrics.refuse(refusedUnauth)
		s.renderLogin(w, r, http.StatusUnauthorized, "The token was not accepted (invalid, expired, or not for the errnowatch audience).")
		return
	case err != nil:
		s.log.Warn("cannot check a UI sign-in token", zap.Error(err))
		s.renderLogin(w, r, http.StatusServiceUnavailable, "Cannot check the token with the Kubernetes API right now; retry in a moment.")
		return
	}
	// The session is the token itself: it expires with the token, every
	// request checks it again (auth caches answers briefly), and any
	// collector replica behind a load balancer accepts it.
	ck := &http.Cookie{Name: sessionCookie, Value: token, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode}
	if !sess.id.Expires.IsZero() {
		ck.Expires = sess.id.Expires
	}
	http.SetCookie(w, ck)
	clearCookie(w, csrfCookie)
	s.log.Info("signed in to the web UI", zap.String("identity", sess.id.Username))
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	sess := sessionFrom(r.Context())
	if err := r.ParseForm(); err != nil || !sameOrigin(r) || !equalSecret(s.csrfFor(sess), r.PostForm.Get("csrf")) {
		s.metrics.refuse(refusedCSRF)
		s.errorPage(w, r, http.StatusForbidden, "Sign out from the page's own button.")
		return
	}
	clearCookie(w, sessionCookie)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// csrfFor is the CSRF token of a signed-in person's forms: bound to their
// credential by a key that never leaves the process.
func (s *Server) csrfFor(sess *session) string {
	m := hmac.New(sha256.New, s.csrfKey)
	m.Write([]byte(sess.token))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// sameOrigin refuses requests a browser marks as coming from another site.
// Browsers send Origin on every POST and Sec-Fetch-Site on every request;
// a request with neither (curl) still needs the CSRF token.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return false
		}
	}
	return true
}

func equalSecret(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

// scope is the namespaces a person may see: all (and host alerts), or
// the listed ones.
type scope struct {
	all        bool
	namespaces []string // sorted; only when !all
	// truncated is set when more namespaces hold alerts than were checked.
	truncated bool
}

func (sc scope) allows(ns string) bool {
	if sc.all {
		return true
	}
	_, ok := slices.BinarySearch(sc.namespaces, ns)
	return ok && ns != ""
}

// rollupNamespaces is a RollupQuery's Namespaces for this scope narrowed
// to ns when set.
func (sc scope) rollupNamespaces(ns string) []string {
	switch {
	case ns != "":
		return []string{ns}
	case sc.all:
		return nil
	case len(sc.namespaces) == 0:
		// Not nil: nil would read every namespace.
		return []string{}
	}
	return sc.namespaces
}

// scopeTTL is how long a person's namespaces are reused: RBAC changes show
// within it.
const scopeTTL = 20 * time.Second

// scopeOf finds the namespaces the session may list alerts in: everything
// for local administrators and cluster-wide readers; else each namespace
// that holds alerts (the busiest MaxNamespaces) is reviewed.
func (s *Server) scopeOf(ctx context.Context, sess *session) (scope, error) {
	if sess.id.Local || s.cfg.Authorizer == nil {
		return scope{all: true}, nil
	}
	ck := scopeKey(sess)
	if v, ok := s.scopes.Get(ck); ok {
		return v.(scope), nil
	}
	ok, _, err := s.cfg.Authorizer.Authorize(ctx, sess.id, auth.VerbList, "")
	if err != nil {
		return scope{}, err
	}
	if ok {
		sc := scope{all: true}
		s.scopes.Add(ck, sc, scopeTTL)
		return sc, nil
	}
	rows, err := s.src.Rollups(ctx, store.RollupQuery{By: store.ByNamespace, Limit: s.cfg.MaxNamespaces + 1})
	if err != nil {
		return scope{}, err
	}
	sc := scope{truncated: len(rows) > s.cfg.MaxNamespaces}
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []error
		sem  = make(chan struct{}, 8)
	)
	for _, row := range rows[:min(len(rows), s.cfg.MaxNamespaces)] {
		if row.Namespace == "" {
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			ok, _, err := s.cfg.Authorizer.Authorize(ctx, sess.id, auth.VerbList, row.Namespace)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			} else if ok {
				sc.namespaces = append(sc.namespaces, row.Namespace)
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return scope{}, errs[0]
	}
	slices.Sort(sc.namespaces)
	s.scopes.Add(ck, sc, scopeTTL)
	return sc, nil
}

// mayRead checks one namespace directly: a namespace with no alerts yet is
// not in a scope, but a person may still filter by it.
func (s *Server) mayRead(ctx context.Context, sess *session, sc scope, ns string) (bool, error) {
	if sc.allows(ns) {
		return true, nil
	}
	if ns == "" || s.cfg.Authorizer == nil {
		return false, nil
	}
	ok, _, err := s.cfg.Authorizer.Authorize(ctx, sess.id, auth.VerbList, ns)
	return ok, err
}

func scopeKey(sess *session) [sha256.Size]byte { return sha256.Sum256([]byte(sess.token)) }
