# failures.awk prints, at the end of a failed `go test` run, what each
# failed test said: CI keeps only the tail of a long log, and a whole-system
# run prints for twenty minutes after the step that failed. Reads the output
# of `go test` with or without -v.
#
# With -v, a test's lines follow its "=== RUN/CONT/NAME" header; the last
# maxLines of each failed test that has no failed subtest are printed.
# Without -v, a failed test's lines follow its "--- FAIL:" header.
BEGIN { maxLines = 60; maxBlock = 40 }
/^=== (RUN|CONT|NAME) / {
	cur = $3
	if (!(cur in n)) { order[++tests] = cur; n[cur] = 0 }
	inBlock = 0
	next
}
/^=== PAUSE / { next }
/^ *--- FAIL: / {
	failed[$3] = 1
	if ($0 ~ /^---/) cur = ""
	block[++blocks] = $0; blockLen[blocks] = 1
	inBlock = 1
	next
}
/^ *--- (PASS|SKIP): / {
	if ($0 ~ /^---/) cur = ""
	inBlock = 0
	next
}
inBlock && /^ / {
	if (blockLen[blocks]++ < maxBlock) block[blocks] = block[blocks] "\n" $0
	next
}
{ inBlock = 0 }
/^(FAIL|panic:|fatal error:|# )/ { summary[++sums] = $0 }
cur != "" { i = ++n[cur]; line[cur, i % maxLines] = $0 }
END {
	if (!blocks && !sums) exit
	print "==================== what the failed tests said (hack/failures.awk) ===================="
	for (t = 1; t <= tests; t++) {
		name = order[t]
		if (!(name in failed) || hasFailedChild(name)) continue
		print "---- " name " (its last " (n[name] < maxLines ? n[name] : maxLines) " of " n[name] " lines)"
		first = n[name] < maxLines ? 1 : n[name] - maxLines + 1
		for (i = first; i <= n[name]; i++) print line[name, i % maxLines]
	}
	if (!tests) for (b = 1; b <= blocks; b++) {
		print block[b]
		if (blockLen[b] > maxBlock) print "    ... (" blockLen[b] - maxBlock " more lines)"
	}
	for (s = 1; s <= sums; s++) print summary[s]
}
function hasFailedChild(name,   f) {
	for (f in failed) if (index(f, name "/") == 1) return 1
	return 0
}
