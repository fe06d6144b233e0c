package syscalls

import "testing"

func TestSuggest(t *testing.T) {
	amd64 := Names(AMD64, false)
	for _, tt := range []struct {
		input      string
		candidates []string
		want       string
	}{
		{"opnat", amd64, "openat"},
		{"OPENAT", amd64, "openat"},
		{"exceve", amd64, "execve"}, // transposition
		{"clone4", amd64, "clone"},
		{"EACCESS", []string{"EACCES", "EAGAIN", "ENOENT"}, "EACCES"},
		{"xyzzy", amd64, ""},
		{"qqqqqqqqqq", amd64, ""},
		{"", amd64, ""},
		{"openat", nil, ""},
		{"abcdefg", []string{"abxxxxx"}, ""},               // distance 5 > limit 2, despite the shared prefix
		{"abcdef", []string{"abcxyz", "xbcdef"}, "xbcdef"}, // 3 > limit 2 vs 1
		{"open", []string{"fsopen", "openat"}, "openat"},   // tie on distance, longer prefix wins
		{"ab", []string{"", "x"}, "x"},
	} {
		if got := Suggest(tt.input, tt.candidates); got != tt.want {
			t.Errorf("Suggest(%q) = %q, want %q", tt.input, got, tt.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"abc", "", 3},
		{"", "abc", 3},
		{"kitten", "sitting", 3},
		{"ab", "ba", 1},
		{"ca", "abc", 3}, // optimal string alignment, not full Damerau
		{"openat", "openat", 0},
	} {
		if got := editDistance(tt.a, tt.b); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
