package syscalls

import "strings"

// Suggest returns the candidate closest to input by edit distance (optimal
// string alignment: insertions, deletions, substitutions and adjacent
// transpositions), ignoring case, or "" when none is within
// max(2, len(input)/3) edits. Ties go to the candidate sharing the longer
// prefix with input ("open" → "openat", not "fsopen"), then to the earlier one.
func Suggest(input string, candidates []string) string {
	in := strings.ToLower(input)
	if in == "" {
		return ""
	}
	limit := max(2, len(in)/3)
	best, bestDist, bestPrefix := "", limit, -1
	for _, c := range candidates {
		// Cheap bound first: the distance is at least the length difference.
		if c == "" || abs(len(c)-len(in)) > bestDist {
			continue
		}
		lc := strings.ToLower(c)
		d := editDistance(in, lc)
		if d > bestDist {
			continue
		}
		if p := commonPrefix(in, lc); d < bestDist || p > bestPrefix {
			best, bestDist, bestPrefix = c, d, p
		}
	}
	return best
}

func commonPrefix(a, b string) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// editDistance is the optimal-string-alignment distance between a and b,
// byte-wise (syscall and errno names are ASCII).
func editDistance(a, b string) int {
	// Three rolling rows: two back for transpositions, one back, current.
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
