// Package rules is the failure-pattern stage: it evaluates windowed rules
// over each interval's enriched counts and records (enrich.Batch) and hands
// on alerts (pkg/alert), raised once per rule and key and then updated.
//
// # Rule files
//
// A rule file is YAML with a top-level "rules:" list:
//
//	rules:
//	  - id: permission-probing            # lowercase, unique over all files
//	    description: Bursts of denied file access.
//	    severity: medium                  # info, low, medium, high, critical
//	    tags: [T1083]                     # MITRE ATT&CK technique ids
//	    match:
//	      syscalls: ["@file", execve]     # names, or @groups from pkg/syscalls
//	      exclude_syscalls: [readlink]
//	      errnos: [EACCES, EPERM]         # empty: every failure
//	      exclude_errnos: []
//	    scope:                            # all optional; lists take shell globs
//	      namespaces: [default]
//	      exclude_namespaces: ["kube-*"]
//	      pod_selector: "app=web,tier!=db"  # Kubernetes label selector
//	      containers: [app]
//	      exclude_containers: []
//	      comms: []                       # process names (from sampled records)
//	      exclude_comms: [apt, dpkg]
//	      target: all                     # all, pods or host
//	    window: 10s                       # default 10s
//	    group_by: container               # pod, container (default), process, node
//	    cooldown: 5m                      # default 5m
//	    condition: count >= 20 && distinct_syscalls >= 2   # CEL; default count >= 1
//	    enabled: true
//
// Pod-level scopes (namespaces, pod_selector, containers) never match host
// processes. Kernel-internal codes such as ERESTARTSYS are left out unless a
// rule names them.
//
// # Conditions
//
// A condition is a CEL expression over the rule's window for one key:
//
//	count              int     failures matched in the window (exact, from the kernel)
//	rate               double  count per second of window
//	window_seconds     double  the window as evaluated
//	intervals          int     intervals in the window that had failures
//	distinct_syscalls  int
//	distinct_errnos    int
//	syscalls           map     failures per syscall name: syscalls["openat"]
//	errnos             map     failures per errno name: errnos["EACCES"]
//	comms              list    distinct comms in the sampled records
//	distinct_comms     int     (sampled: a lower bound)
//	distinct_pids      int     (sampled: a lower bound)
//	duration           map     count, p50_ns, p90_ns, p99_ns, max_ns (duration mode)
//	pod_namespace, pod, container, node, comm   string
//	host               bool
//	labels             map     pod labels
//	records            list    the window's sampled records (below), newest first
//
// Each element of records is a rules.Record with the fields syscall,
// errno, comm (string), uid, pid, tid (int), compat (bool), path, path2
// (string, "" when none), name (path's last element), path_truncated, path_unreadable, path_relative
// (bool), family ("AF_INET", "AF_UNIX", ...), addr (IP text or unix path),
// port, sock_type ("SOCK_RAW", ...), protocol, and args, a map from the
// kernel's argument names to the decoded integer arguments (args["request"]
// for ptrace, args["sig"] for kill, args["flags"] for clone and unshare).
// Only the records of the rule's match (syscalls and errnos), scope and key
// are in the list, at most 256. A misspelled field fails `rules validate`
// with its file:line:col. Two functions help:
//
//	glob(s, pattern)    bool  shell glob: * and ? stop at "/", ** crosses it
//	has_flag(v, flags)  bool  every bit of flags is set in v (CEL has no &)
//
// For example, a single denied read of a shadow file:
//
//	condition: records.exists(r, glob(r.path, "/etc/*shadow"))
//
// What records a condition can count on: the kernel sends user space the
// first N records (N = --records-per-window, default 8) of every
// (cgroup, syscall, errno) key in each one-second rate-limit window, and a
// storm on another key, even on the same CPU, takes none of them: the limit
// is per key. A record is lost only where a counter says so: the ring
// buffer was full (sensor ring drops), the agent's queue was full (queue
// drops), the engine's per-source history of 256 records overflowed within
// a window (RecordsEvicted), or, rarely, when more than four CPUs race for
// the last slot of one key (the kernel then keeps the count, not the
// record). So a rule that needs one decisive record sees it whenever its
// key failed at most N times in the window before it.
//
// A condition's cost is bounded (MaxConditionCost, in CEL cost units): a
// condition whose worst case, estimated at load from bounds on the
// variables (64 comms, 64 labels, every syscall...), is over it is rejected
// with its position, and an evaluation that passes it at run time stops.
// One loop over comms or labels fits; loops nested in loops do not. An
// evaluation that fails (cost limit, a missing labels key) matches
// nothing; it is counted per rule (errnowatch_rules_evaluation_errors_total)
// and raised as one alert per rule (RuleID EvalErrorRuleID), updated at most
// once per the rule's cooldown, so that a broken rule is not silently blind.
//
// Counts are exact; records are sampled (the kernel keeps the first few per
// counter and rate-limit window), so conditions should count with count,
// syscalls and errnos, and use the record-based variables only for who. A
// literal key of syscalls, errnos or duration is checked when the rule is
// loaded and reads 0 when absent. Duration quantiles are the upper bound of
// the log2 histogram bucket they fall in: at most 2x high, never low.
//
// # Windows, keys and alerts
//
// The engine is fed one batch per drain interval. A window is a sparse ring
// of per-interval buckets, rounded up to whole intervals. A rule is
// evaluated for a key at the end of every interval in which that key had
// matching failures (or, for duration conditions, matching latency
// histograms); a window that only ages out raises nothing. From each
// condition the engine derives the smallest count it can be true for (from
// comparisons of count, rate, distinct_syscalls, distinct_errnos, intervals
// or syscalls/errnos entries with a literal, through && and ||) and skips
// CEL for keys below it: write conditions with such a bound, or they run
// for every active key every interval (about 2-5 µs each).
//
// Intervals are numbered from the engine's first batch (as int32 in the
// windows: 68 years of 1s intervals). Batches are assigned to the interval
// their end time rounds to, so drain jitter of up to half an interval is
// harmless, and a late or repeated batch joins the newest interval.
//
// Kernel counts carry a cgroup, no pid. group_by process therefore keys by
// (container, comm) rather than pid: a scanner that forks one short-lived
// child per probe keeps one key, and comm is what a person reads. Each
// exact per-cgroup counter is split among the comms whose records were
// sampled from it in that interval (or the previous one), in proportion to
// those records: exact when one comm owns the counter, an estimate
// otherwise; a counter with no sampled record goes to an unknown process.
// A comm scope uses the same split. An alert's processes are the distinct
// pids of the window's sampled records that match the rule and key (the
// engine keeps the last 64 per cgroup).
//
// The first match for a key raises an alert (new ULID, Revision 1). While
// the pattern keeps matching, the alert is updated (counts since it was
// raised, last seen, processes) and re-emitted at most once per cooldown
// with Revision+1; a pending update is emitted once its cooldown passes even
// if the pattern stopped. After the pattern has been quiet (no match) for a
// cooldown the alert closes, and the next match raises a new one.
package rules
