package auth

import "testing"

// The API server paths (TokenReview, SubjectAccessReview) are tested against
// a real kube-apiserver in pkg/collector's kube_test.go.

func TestServiceAccountSplitsOnlyServiceAccountNames(t *testing.T) {
	for _, tc := range []struct {
		user, ns, name string
		ok             bool
	}{
		{"system:serviceaccount:errnowatch:agent", "errnowatch", "agent", true},
		{"system:serviceaccount:errnowatch:", "", "", false},
		{"system:serviceaccount::agent", "", "", false},
		{"system:serviceaccount:errnowatch", "", "", false},
		{"alice@example.com", "", "", false},
		{"system:node:worker-1", "", "", false},
	} {
		ns, name, ok := Identity{Username: tc.user}.ServiceAccount()
		if ok != tc.ok || (ok && (ns != tc.ns || name != tc.name)) {
			t.Errorf("%q: %q, %q, %v; want %q, %q, %v", tc.user, ns, name, ok, tc.ns, tc.name, tc.ok)
		}
	}
}
