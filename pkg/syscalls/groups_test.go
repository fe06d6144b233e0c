package syscalls

import (
	"slices"
	"testing"
)

func TestGroupNamesResolve(t *testing.T) {
	for _, g := range Groups() {
		names, ok := Group(g)
		if !ok || len(names) == 0 {
			t.Errorf("group %q is empty", g)
		}
		seen := map[string]bool{}
		for _, name := range names {
			if seen[name] {
				t.Errorf("group %q lists %q twice", g, name)
			}
			seen[name] = true
			// Every name is a real syscall on amd64, either 64-bit or, for
			// the 32-bit-only names, in the i386 compat table.
			_, on64 := Lookup(AMD64, name, false)
			_, on32 := Lookup(AMD64, name, true)
			if !on64 && !on32 {
				if _, onARM := Lookup(ARM64, name, true); !onARM {
					t.Errorf("group %q: %q is not a syscall on amd64 or i386 or arm", g, name)
				}
			}
		}
		for _, a := range abis {
			nrs := GroupNumbers(a.arch, g, a.compat)
			if len(nrs) == 0 {
				t.Errorf("group %q resolves to nothing on %s", g, a)
			}
			if !slices.IsSorted(nrs) {
				t.Errorf("group %q on %s: numbers not sorted", g, a)
			}
		}
	}
}

func TestGroups(t *testing.T) {
	want := []string{"bpf", "file", "ipc", "keyring", "module", "mount", "network", "privilege", "process", "time", "tracing"}
	if got := Groups(); !slices.Equal(got, want) {
		t.Errorf("Groups() = %v, want %v", got, want)
	}
	if _, ok := Group("nope"); ok {
		t.Error(`Group("nope") found`)
	}
	if GroupNumbers(AMD64, "nope", false) != nil {
		t.Error("GroupNumbers of unknown group is not nil")
	}
	// Callers must not be able to edit the policy.
	g, _ := Group("bpf")
	g[0] = "read"
	if g2, _ := Group("bpf"); g2[0] != "bpf" {
		t.Error("Group returned the internal slice")
	}
}

func TestGroupNumbers(t *testing.T) {
	has := func(arch Arch, group string, compat bool, nr int) bool {
		return slices.Contains(GroupNumbers(arch, group, compat), nr)
	}
	if !has(AMD64, "file", false, 257) || !has(AMD64, "file", false, 2) {
		t.Error("amd64 file group lacks openat or open")
	}
	if !has(ARM64, "file", false, 56) {
		t.Error("arm64 file group lacks openat")
	}
	if !has(AMD64, "network", true, 102) {
		t.Error("i386 network group lacks socketcall")
	}
	if !has(AMD64, "privilege", true, 213) {
		t.Error("i386 privilege group lacks setuid32")
	}
	if !has(ARM64, "bpf", false, 280) || !has(AMD64, "bpf", false, 321) {
		t.Error("bpf group does not resolve to bpf")
	}
}
