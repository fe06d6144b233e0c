// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * errnowatch's kernel sensor.
 *
 * One program on the raw_syscalls:sys_exit tracepoint counts syscall exits
 * exactly, per (cgroup, syscall, errno), and sends user space a few sampled
 * failure records through a ring buffer. sys_exit fires millions of times a
 * second, so the hot path is built around three rules:
 *
 *   1. A success leaves after one compare (failures-only mode, the default).
 *   2. No helper call on the path a failure storm takes, except the one
 *      per-CPU hash lookup that counts it: the task, its cgroup id, its
 *      compat status and the configuration are plain memory loads.
 *   3. Records are rate-limited per key and window, and a CPU that has seen a
 *      key's limit reached stops asking the shared limiter until the window
 *      or the counts map changes.
 *
 * No workload can blind the sensor to the others by making keys (a pod
 * calling syscall(1000 + i) makes a new key per call):
 *
 *   - Syscall numbers outside the table (cfg.nr_limit, from pkg/syscalls)
 *     are one key, NR_INVALID, so an invalid-number storm is a storm of
 *     one key and takes the hot slot.
 *   - Each cgroup may make at most cfg.cgroup_share keys per generation.
 *     Beyond that, and when the whole counts map is full, its exits are
 *     counted in its entry of the budgets map (failures and successes,
 *     exactly, without syscall and errno), and user space reports them as
 *     the cgroup's overflow key, NR_OVERFLOW. A pod can use up only its
 *     own share; the check costs a lookup only when a key is new.
 *
 * Why tp_btf and not a plain raw_tp: the BTF-typed tracepoint gives the
 * program a typed struct pt_regs pointer and a trusted current task, so the
 * syscall number, the compat flag and the cgroup id are direct loads that
 * the verifier checks, instead of bpf_probe_read_kernel() helper calls. On
 * these virtual machines every helper call costs tens of nanoseconds; it
 * needs a BTF kernel (5.5+), which CO-RE needs anyway.
 *
 * Exact draining (see pkg/sensor/drain.go for the user-space half): counts
 * go to one of two per-CPU hashes, chosen by settings.gen. To drain,
 * user space flips gen on every CPU, then updates the one-slot array-of-maps
 * `rcu_barrier`: an update of a map-in-map waits for an RCU grace period
 * before the syscall returns (maybe_wait_bpf_programs), and tracepoint
 * programs run inside an RCU read-side section with preemption disabled,
 * so when it returns every program that read the old gen has finished.
 * User space then reads and empties the old map with nobody writing to it:
 * every increment lands in exactly one drained map. Two static maps, rather
 * than one inner map looked up through the array-of-maps, let the verifier
 * inline the hash lookups on the hot path.
 */
#include "include/kernel_types.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define MAX_ERRNO 4095
#define SYSCALL_BITS 1024
#define SYSCALL_WORDS (SYSCALL_BITS / 64)
#define ERRNO_WORDS ((MAX_ERRNO + 1) / 64)
#define HIST_BUCKETS 40
#define COMPAT_BIT 0x80000000u
/* The syscall number takes the low 31 bits of a key. Exits with number -1
 * (rt_sigreturn, cancelled syscalls) are skipped before a key is made;
 * NR_NONE is what -1 would become. */
#define NR_MASK 0x7fffffffu
#define NR_NONE NR_MASK
/* Every number at or above the table's size (a real table has < 1024). */
#define NR_INVALID 0xffffu
/* A cgroup's exits beyond its share of the counts map (user space makes
 * this key from the budgets map; records of those exits carry it too). */
#define NR_OVERFLOW 0xfffeu
/* How many ancestors of a task's cgroup the include scope looks at: the
 * container's pod cgroup, and one more for a container that made a cgroup
 * of its own (systemd or a nested runtime inside it). */
#define SCOPE_ANCESTORS 2

#if defined(__TARGET_ARCH_x86)
#define TS_COMPAT 0x0002 /* arch/x86/include/asm/thread_info.h */
#define syscall_nr(regs) ((u32)(regs)->orig_ax)
#define task_is_compat(t) (((t)->thread_info.status & TS_COMPAT) != 0)
#elif defined(__TARGET_ARCH_arm64)
#define TIF_32BIT 22 /* arch/arm64/include/asm/thread_info.h */
#define syscall_nr(regs) ((u32)(regs)->syscallno)
#define task_is_compat(t) (((t)->thread_info.flags & (1UL << TIF_32BIT)) != 0)
#endif

/* What user space may change at run time, without reloading. */
enum syscall_filter_mode { SYSCALLS_ALL = 0, SYSCALLS_ALLOW = 1, SYSCALLS_DENY = 2 };
enum cgroup_filter_mode { CGROUPS_ALL = 0, CGROUPS_INCLUDE = 1, CGROUPS_EXCLUDE = 2 };
enum cgroup_verdict { CGROUP_INCLUDE = 1, CGROUP_EXCLUDE = 2 };

struct config {
	u32 all_exits;          /* 0: failures only; 1: successes too */
	u32 success_sample;     /* with all_exits: count 1 in N successes */
	u32 syscall_mode;       /* enum syscall_filter_mode */
	u32 errno_allow;        /* 1: only errnos set in errno_bits */
	u32 cgroup_mode;        /* enum cgroup_filter_mode */
	u32 self_tgid;          /* exits of this process are ignored */
	u32 records_per_window; /* first N records per key and window; 0: none */
	u32 durations;          /* 1: sys_enter records entry times */
	u32 nr_limit[2];        /* [compat]: syscall table size; >= is NR_INVALID */
	u32 cgroup_share;       /* keys one cgroup may make per generation */
};

/* What every exit reads, in one per-CPU map element (the cfg map below)
 * rather than in .bss: .bss is vmalloc memory mapped in 4 KiB pages, and
 * its page costs a TLB miss on every exit (this kernel flushes the TLB
 * on every syscall entry without PCID), 10-20 ns here; per-CPU memory of
 * small maps sits in the kernel's own per-CPU pages, which each syscall has
 * touched already. User space writes the same value for every CPU; the
 * kernel copies per-CPU values a long at a time, so no aligned field is
 * ever read half-written. */
struct settings {
	struct config cfg;
	/* Which of the two map sets below programs write to; user space
	 * flips it. */
	u32 gen;
	/* The current rate-limit window; user space bumps it. */
	u32 rl_window;
	/* Moves on with every configuration write, which follows every change
	 * of the cgroup_filter map: a hot slot's cached cgroup verdict is good
	 * only while it is the same. */
	u32 cfg_gen;
};

/* Filter sets, read only when a filter mode asks for them. Mutable globals
 * live in .bss that user space writes through mmap; volatile keeps clang
 * from caching them across the program. */
volatile u64 syscall_bits[2][SYSCALL_WORDS]; /* [compat][word] */
volatile u64 errno_bits[ERRNO_WORDS];

struct count_key {
	u64 cgroup_id;
	u32 nr;    /* syscall number | COMPAT_BIT for 32-bit syscalls */
	u32 errno; /* 0 for successes */
};

struct count_val {
	u64 count;
	/* rl_window + 1 once this CPU has seen the key's record limit reached
	 * in that window: from then on it skips the shared limiter. */
	u32 saturated;
	u32 _pad;
};

/* This CPU's hot key for one generation and kind (failures, successes): a
 * run of exits with the same key (a failure storm) is counted here with no
 * hash lookup at all. Successes have a slot of their own so that a
 * workload alternating one success and one failure (the common shape with
 * all exits on) keeps both on the storm path. User space adds `pending` to
 * the key's count when it drains the generation. */
struct hot_slot {
	struct count_key key;
	struct count_key last; /* the previous key that missed the slot */
	u64 pending;
	u32 bound;     /* key is valid */
	u32 saturated; /* as count_val.saturated, for key */
	/* The cgroup of this CPU's previous exit, its id, and cgroup_epoch
	 * when they were read (see on_cgroup_rmdir). */
	u64 cg_ptr;
	u64 cg_epoch;
	u64 cg_id;
	/* cgroup_passes for that cgroup, and settings.cfg_gen when it was
	 * decided: the verdict depends on the cgroup and its ancestors (fixed
	 * while the cgroup lives) and on the filter (fixed while cfg_gen is). */
	u32 cg_pass;
	u32 cg_cfg_gen;
};

/* How many cgroups have been removed since the sensor was loaded: the
 * count of on_cgroup_rmdir. A plain array, so that its one value sits in
 * the map's own allocation and the lookup is an address, not a load. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} cgroup_epoch SEC(".maps");

/* One cgroup's use of the counts map in one generation. */
struct cgroup_budget {
	u32 keys;      /* keys it made */
	u32 saturated; /* as count_val.saturated, for its overflow records */
	u64 failures;  /* failed exits that found no room: over share or map full */
	u64 successes; /* the same for successes (all-exits mode) */
};

struct hist_key {
	u64 cgroup_id;
	u32 nr;
	u32 _pad;
};

struct hist_val {
	u64 buckets[HIST_BUCKETS];
};

/* Arguments a record carries besides the six registers: a path is a
 * bounded copy of a user string, an address a bounded copy of a struct
 * sockaddr. Sizes are fixed so that every record has the same bounded size. */
#define ARG_PATH_MAX 256
#define ARG_ADDR_MAX 128 /* sizeof(struct sockaddr_storage) */

enum record_flags {
	REC_PATH_TRUNCATED = 1 << 0,   /* path is longer than ARG_PATH_MAX - 1 */
	REC_PATH_UNREADABLE = 1 << 1,  /* the pointer was not NULL but not readable */
	REC_PATH2_TRUNCATED = 1 << 2,
	REC_PATH2_UNREADABLE = 1 << 3,
	REC_ADDR_UNREADABLE = 1 << 4,
	REC_HAS_PATH = 1 << 5,         /* path holds a copied string */
	REC_HAS_PATH2 = 1 << 6,
};

struct record {
	u64 ts_ns; /* CLOCK_MONOTONIC */
	u64 cgroup_id;
	s64 ret;
	u64 duration_ns;
	u32 pid; /* thread group id */
	u32 tid;
	u32 uid;
	u32 nr;
	char comm[16];
	u8 compat;
	u8 _pad;
	u16 flags;    /* enum record_flags */
	u16 addr_len; /* bytes of addr copied; 0 for none */
	u16 _pad2;
	u64 args[6]; /* the syscall's argument registers, in argument order */
	char path[ARG_PATH_MAX];
	char path2[ARG_PATH_MAX];
	u8 addr[ARG_ADDR_MAX];
};

/* Which arguments of a syscall the record copies from user memory, as
 * argument index + 1 (0: none). User space fills the table from the kernel's
 * syscall signatures (pkg/syscalls) before loading. */
struct arg_spec {
	u8 path;
	u8 path2;
	u8 addr;
	u8 addr_len;
};

/* [compat][syscall number]; read-only after load. */
const volatile struct arg_spec arg_specs[2][SYSCALL_BITS];


struct enter_val {
	u64 ts_ns;
	u32 nr;
	u32 _pad;
};

/* Rarely-taken paths that lose something count it here, per CPU. */
enum stat_index {
	STAT_RING_DROPS = 0,
	STAT_MAP_FULL = 1,
	STAT_HIST_FULL = 2,
	STAT_RECORDS = 3,
	STAT_MAX = 4,
};

/* No map names struct record (ring buffer samples are untyped): this keeps
 * its definition in BTF for bpf2go's Go mirror. */
const struct record *unused_record __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct count_key);
	__type(value, struct count_val);
} counts0 SEC(".maps"), counts1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 4096);
	__type(key, struct hist_key);
	__type(value, struct hist_val);
} hists0 SEC(".maps"), hists1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4); /* generation * 2 + (1 for successes) */
	__type(key, u32);
	__type(value, struct hot_slot);
} hot SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct settings);
} cfg SEC(".maps");

/* Per generation, like counts0/1; not per CPU, so that a share is one
 * number for the whole node. User space sizes it like the counts maps. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, u64); /* cgroup id */
	__type(value, struct cgroup_budget);
} budgets0 SEC(".maps"), budgets1 SEC(".maps");

struct barrier_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u32);
};

/* Never read by the programs: user space updates it to wait for an RCU
 * grace period after flipping gen. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, u32);
	__array(values, struct barrier_inner);
} rcu_barrier SEC(".maps");

/* Shared record limiter: (rl_window << 32) | records emitted in it. LRU so
 * that keys nobody fails on any more make room by themselves. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct count_key);
	__type(value, u64);
} ratelimit SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, u64);   /* cgroup id */
	__type(value, u32); /* enum cgroup_verdict */
} cgroup_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} records SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, u32);
	__type(value, u64);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct enter_val);
} enter_times SEC(".maps");

static __always_inline void stat_add(u32 index, u64 n)
{
	u64 *v = bpf_map_lookup_elem(&stats, &index);

	if (v)
		*v += n;
}

static __always_inline void stat_inc(u32 index)
{
	stat_add(index, 1);
}

static __always_inline bool bit_is_set(volatile u64 *words, u32 n)
{
	return (words[n / 64] >> (n % 64)) & 1;
}

static __always_inline bool syscall_passes(struct settings *st, u32 nr, u32 compat)
{
	u32 mode = st->cfg.syscall_mode;
	bool set;

	if (mode == SYSCALLS_ALL)
		return true;
	set = false;
	if (nr < SYSCALL_BITS)
		set = bit_is_set(syscall_bits[compat & 1], nr);
	return mode == SYSCALLS_ALLOW ? set : !set;
}

static __always_inline struct kernfs_node *kn_parent(struct kernfs_node *kn)
{
	if (bpf_core_field_exists(kn->__parent))
		return kn->__parent;
	return kn->parent;
}

/* In include mode a cgroup the set does not name takes the verdict of its
 * nearest named ancestor, up to SCOPE_ANCESTORS: user space names pod
 * cgroups, which kubelet makes before the sandbox, so a new container is
 * in scope from its first syscall instead of from when user space has seen
 * its cgroup. Exclude mode matches the cgroup itself only, as before: it
 * runs for every exit of the node, and a lookup per ancestor would cost
 * every workload that is not excluded. */
static __always_inline bool cgroup_passes(struct settings *st, struct cgroup *cgrp, u64 id)
{
	u32 mode = st->cfg.cgroup_mode;
	struct kernfs_node *kn;
	u32 *verdict;
	int i;

	if (mode == CGROUPS_ALL)
		return true;
	verdict = bpf_map_lookup_elem(&cgroup_filter, &id);
	if (mode != CGROUPS_INCLUDE)
		return !verdict || *verdict != CGROUP_EXCLUDE;
	kn = cgrp->kn;
	for (i = 0; i < SCOPE_ANCESTORS && !verdict; i++) {
		kn = kn_parent(kn);
		if (!kn)
			return false;
		id = kn->id;
		verdict = bpf_map_lookup_elem(&cgroup_filter, &id);
	}
	return verdict && *verdict == CGROUP_INCLUDE;
}

/* log2 bucket of a duration, without a loop. */
static __always_inline u32 log2_bucket(u64 v)
{
	u32 r = 0, shift;

	shift = (v > 0xFFFFFFFFULL) << 5; v >>= shift; r |= shift;
	shift = (v > 0xFFFF) << 4; v >>= shift; r |= shift;
	shift = (v > 0xFF) << 3; v >>= shift; r |= shift;
	shift = (v > 0xF) << 2; v >>= shift; r |= shift;
	shift = (v > 0x3) << 1; v >>= shift; r |= shift;
	r |= (v >> 1);
	return r < HIST_BUCKETS ? r : HIST_BUCKETS - 1;
}

static __always_inline void observe_duration(void *hists, struct count_key *key, u64 duration)
{
	struct hist_key hk = { .cgroup_id = key->cgroup_id, .nr = key->nr };
	struct hist_val *h;
	u32 b;

	h = bpf_map_lookup_elem(hists, &hk);
	if (!h) {
		static const struct hist_val empty;

		bpf_map_update_elem(hists, &hk, &empty, BPF_NOEXIST);
		h = bpf_map_lookup_elem(hists, &hk);
		if (!h) {
			stat_inc(STAT_HIST_FULL);
			return;
		}
	}
	b = log2_bucket(duration);
	if (b < HIST_BUCKETS)
		h->buckets[b] += 1;
}

/* The counter of a key that is not in counts yet, inserted if the key's
 * cgroup has share left; NULL when it has none or the map is full. *bp is
 * the cgroup's budget, NULL only when the budgets map is full too.
 * Insert-then-lookup: the update fails only when the map is full (an insert
 * of the same key from elsewhere gives EEXIST, and the lookup finds it).
 * CPUs racing on one cgroup may overshoot its share by one key each. */
static __always_inline struct count_val *new_counter(struct settings *st, void *counts, void *budgets,
						     struct count_key *key, struct cgroup_budget **bp)
{
	static const struct count_val empty;
	static const struct cgroup_budget fresh;
	struct cgroup_budget *b;

	b = bpf_map_lookup_elem(budgets, &key->cgroup_id);
	if (!b) {
		bpf_map_update_elem(budgets, &key->cgroup_id, &fresh, BPF_NOEXIST);
		b = bpf_map_lookup_elem(budgets, &key->cgroup_id);
		if (!b)
			return NULL;
	}
	*bp = b;
	if (b->keys >= st->cfg.cgroup_share)
		return NULL;
	if (bpf_map_update_elem(counts, key, &empty, BPF_NOEXIST) == 0)
		__sync_fetch_and_add(&b->keys, 1);
	return bpf_map_lookup_elem(counts, key);
}

static __always_inline bool key_eq(struct count_key *a, struct count_key *b)
{
	return a->cgroup_id == b->cgroup_id && *(u64 *)&a->nr == *(u64 *)&b->nr;
}

/* key_eq against a key held in registers: nr_errno is nr | errno << 32, the
 * layout of count_key's second word (both targets are little-endian). */
static __always_inline bool key_is(struct count_key *a, u64 cgroup_id, u64 nr_errno)
{
	return a->cgroup_id == cgroup_id && *(u64 *)&a->nr == nr_errno;
}

/* Take one record slot for key in the current window, or say no.
 * saturated is this CPU's note that the key's limit was reached. */
static __always_inline bool record_allowed(struct settings *st, struct count_key *key, u32 *saturated)
{
	u32 limit = st->cfg.records_per_window;
	u32 win = st->rl_window;
	u64 *state, old, next;
	int i;

	if (limit == 0 || *saturated == win + 1)
		return false;
	state = bpf_map_lookup_elem(&ratelimit, key);
	if (!state) {
		u64 fresh = (u64)win << 32;

		bpf_map_update_elem(&ratelimit, key, &fresh, BPF_NOEXIST);
		state = bpf_map_lookup_elem(&ratelimit, key);
		if (!state)
			return false;
	}
	/* A compare-and-swap loop keeps "at most limit per window" exact when
	 * several CPUs race on one key; a CPU that loses four times in a row
	 * gives up this one record, never the count, and counts it lost like a
	 * record the ring had no room for. */
	for (i = 0; i < 4; i++) {
		old = *(volatile u64 *)state;
		if ((u32)(old >> 32) != win)
			next = ((u64)win << 32) | 1;
		else if ((u32)old >= limit) {
			*saturated = win + 1;
			return false;
		} else
			next = old + 1;
		if (__sync_val_compare_and_swap(state, old, next) == old)
			return true;
	}
	stat_inc(STAT_RING_DROPS);
	return false;
}

/* The six argument registers of the syscall, in argument order. */
static __always_inline void read_args(struct pt_regs *regs, bool compat, u64 *a)
{
#if defined(__TARGET_ARCH_x86)
	if (compat) {
		a[0] = regs->bx; a[1] = regs->cx; a[2] = regs->dx;
		a[3] = regs->si; a[4] = regs->di; a[5] = regs->bp;
	} else {
		a[0] = regs->di; a[1] = regs->si; a[2] = regs->dx;
		a[3] = regs->r10; a[4] = regs->r8; a[5] = regs->r9;
	}
#elif defined(__TARGET_ARCH_arm64)
	/* AArch64 and 32-bit ARM both pass arguments in x0/r0 to x5/r5. */
	a[0] = regs->orig_x0; a[1] = regs->regs[1]; a[2] = regs->regs[2];
	a[3] = regs->regs[3]; a[4] = regs->regs[4]; a[5] = regs->regs[5];
#endif
}

/* Copy a user path into dst; returns truncated/unreadable flags, or has. */
static __always_inline u16 read_path(char *dst, u64 ptr, u16 has, u16 truncated, u16 unreadable)
{
	long n;
	char c;

	if (!ptr)
		return 0;
	n = bpf_probe_read_user_str(dst, ARG_PATH_MAX, (const void *)ptr);
	if (n < 0) {
		dst[0] = 0;
		return unreadable;
	}
	/* n counts the NUL: a full buffer is a truncation unless the string
	 * ended exactly at its last byte. */
	if (n == ARG_PATH_MAX &&
	    bpf_probe_read_user(&c, 1, (const void *)(ptr + ARG_PATH_MAX - 1)) == 0 && c)
		return has | truncated;
	return has;
}

static __always_inline u64 arg_at(u64 *a, u8 index_plus_one)
{
	u32 i = index_plus_one - 1;

	return i < 6 ? a[i] : 0;
}

/* Fill the record's arguments: registers always, user memory only for the
 * arguments arg_specs names. Only records pay for this, never counting. */
static __always_inline void capture_args(struct record *r, struct pt_regs *regs, u32 nr, bool compat)
{
	struct arg_spec spec = {};
	u16 flags = 0;
	u64 ptr, len;

	read_args(regs, compat, r->args);
	r->addr_len = 0;
	r->path[0] = 0;
	r->path2[0] = 0;
	if (nr < SYSCALL_BITS)
		spec = arg_specs[compat & 1][nr];
	if (spec.path)
		flags |= read_path(r->path, arg_at(r->args, spec.path), REC_HAS_PATH,
				   REC_PATH_TRUNCATED, REC_PATH_UNREADABLE);
	if (spec.path2)
		flags |= read_path(r->path2, arg_at(r->args, spec.path2), REC_HAS_PATH2,
				   REC_PATH2_TRUNCATED, REC_PATH2_UNREADABLE);
	if (spec.addr) {
		ptr = arg_at(r->args, spec.addr);
		len = (u32)arg_at(r->args, spec.addr_len);
		if (len > ARG_ADDR_MAX)
			len = ARG_ADDR_MAX;
		if (ptr && len) {
			if (bpf_probe_read_user(r->addr, len, (const void *)ptr) == 0)
				r->addr_len = len;
			else
				flags |= REC_ADDR_UNREADABLE;
		}
	}
	r->flags = flags;
}

static __always_inline void emit_record(struct task_struct *task, struct pt_regs *regs,
					struct count_key *key, long ret, u64 duration)
{
	struct record *r;

	r = bpf_ringbuf_reserve(&records, sizeof(*r), 0);
	if (!r) {
		stat_inc(STAT_RING_DROPS);
		return;
	}
	r->ts_ns = bpf_ktime_get_ns();
	r->cgroup_id = key->cgroup_id;
	r->ret = ret;
	r->duration_ns = duration;
	r->pid = task->tgid;
	r->tid = task->pid;
	r->uid = (u32)bpf_get_current_uid_gid();
	r->nr = key->nr & ~COMPAT_BIT;
	r->compat = (key->nr & COMPAT_BIT) != 0;
	r->_pad = 0;
	r->_pad2 = 0;
	bpf_get_current_comm(r->comm, sizeof(r->comm));
	capture_args(r, regs, r->nr, r->compat);
	bpf_ringbuf_submit(r, 0);
	stat_inc(STAT_RECORDS);
}

SEC("tp_btf/sys_exit")
int BPF_PROG(on_sys_exit, struct pt_regs *regs, long ret)
{
	struct settings *st;
	struct task_struct *task;
	struct count_key key;
	struct count_val *v;
	struct cgroup *cgrp;
	struct hot_slot *slot;
	u32 *saturated;
	u64 duration = 0, epoch, cgroup_id, nr_errno, *ep;
	u32 errno = 0, cfg_gen, compat, g, idx, nr, zero = 0;

	st = bpf_map_lookup_elem(&cfg, &zero);
	if (!st)
		return 0;

	/* -4095..-1 is an error; anything else (mmap addresses included) is not. */
	if ((unsigned long)ret >= (unsigned long)-MAX_ERRNO) {
		errno = (u32)-ret;
		if (st->cfg.errno_allow && !bit_is_set(errno_bits, errno & MAX_ERRNO))
			return 0;
	} else {
		u32 n;

		if (!st->cfg.all_exits)
			return 0;
		n = st->cfg.success_sample;
		if (n > 1 && bpf_get_prandom_u32() % n)
			return 0;
	}

	/* Syscall number -1 is no syscall's result: rt_sigreturn sets it (and
	 * its "return value" is the interrupted context's restored ax), and so
	 * does a tracer that cancels a syscall. */
	if (syscall_nr(regs) == (u32)-1)
		return 0;

	task = bpf_get_current_task_btf();
	if (task->tgid == st->cfg.self_tgid)
		return 0;
	nr = syscall_nr(regs) & NR_MASK;
	compat = task_is_compat(task);
	if (!syscall_passes(st, nr, compat))
		return 0;

	g = st->gen & 1;
	idx = g * 2 + (errno == 0);
	slot = bpf_map_lookup_elem(&hot, &idx);
	if (!slot)
		return 0;

	/* The cgroup id is the id of the kernfs node of the task's cgroup on
	 * the unified hierarchy: task->cgroups->dfl_cgrp->kn->id, four
	 * dependent loads from three objects of their own, each a TLB miss
	 * here. The slot keeps the last cgroup pointer and its id, and the
	 * cached id is used only while no cgroup has been removed since it
	 * was read: a pointer alone could name another cgroup made in the
	 * memory of a freed one, but a cgroup is freed only after its rmdir
	 * (a cgroup with a running task cannot be removed, and its memory is
	 * freed an RCU grace period after it is released, which this program,
	 * running inside an RCU read-side section, outlasts), and each rmdir
	 * moves the epoch on first. So the same pointer and the same epoch are
	 * the same cgroup, and the kernfs node is read only when the CPU's
	 * cgroup or the epoch changes. The epoch is read before the pointer. */
	ep = bpf_map_lookup_elem(&cgroup_epoch, &zero);
	if (!ep)
		return 0;
	epoch = *(volatile u64 *)ep;
	/* The filter's generation, read before the filter: user space writes
	 * the cgroup_filter map first and the settings after. */
	cfg_gen = *(volatile u32 *)&st->cfg_gen;
	cgrp = task->cgroups->dfl_cgrp;
	if (slot->cg_ptr == (u64)cgrp && slot->cg_epoch == epoch) {
		cgroup_id = slot->cg_id;
	} else {
		cgroup_id = cgrp->kn->id;
		slot->cg_ptr = (u64)cgrp;
		slot->cg_epoch = epoch;
		slot->cg_id = cgroup_id;
		slot->cg_cfg_gen = cfg_gen - 1; /* decide the verdict below */
	}
	/* In the scoped modes each exit would look its cgroup up in the
	 * filter, and in include mode its ancestors too; the slot keeps the
	 * verdict for as long as the cgroup and the filter are the same. */
	if (slot->cg_cfg_gen != cfg_gen) {
		slot->cg_pass = cgroup_passes(st, cgrp, cgroup_id);
		slot->cg_cfg_gen = cfg_gen;
	}
	if (!slot->cg_pass)
		return 0;
	if (nr >= st->cfg.nr_limit[compat & 1])
		nr = NR_INVALID;
	if (compat)
		nr |= COMPAT_BIT;
	/* The key is built in registers and stored with 64-bit stores: the
	 * slot compare then reads no stack slot that two 32-bit stores just
	 * wrote (a store-forwarding stall on x86). */
	nr_errno = (u64)errno << 32 | nr;
	key.cgroup_id = cgroup_id;
	*(u64 *)&key.nr = nr_errno;

	if (slot->bound && key_is(&slot->key, cgroup_id, nr_errno)) {
		/* The storm path: one compare and an increment. */
		slot->pending += 1;
		saturated = &slot->saturated;
	} else {
		struct cgroup_budget *b = NULL;

		/* Two call sites, one per map, so that each lookup is inlined. */
		if (g)
			v = bpf_map_lookup_elem(&counts1, &key);
		else
			v = bpf_map_lookup_elem(&counts0, &key);
		if (!v) {
			if (g)
				v = new_counter(st, &counts1, &budgets1, &key, &b);
			else
				v = new_counter(st, &counts0, &budgets0, &key, &b);
		}
		if (!v) {
			if (!b) {
				stat_inc(STAT_MAP_FULL);
				return 0;
			}
			/* Over the cgroup's share, or the map is full: still
			 * counted, in the cgroup's overflow. Its records share
			 * one rate limit per cgroup and errno. */
			if (errno)
				__sync_fetch_and_add(&b->failures, 1);
			else
				__sync_fetch_and_add(&b->successes, 1);
			key.nr = (key.nr & COMPAT_BIT) | NR_OVERFLOW;
			saturated = &b->saturated;
			goto counted;
		}
		v->count += 1;
		saturated = &v->saturated;
		/* A key that misses twice in a row takes the slot over; the
		 * old key's run goes to its hash counter first. */
		if (key_eq(&slot->last, &key)) {
			if (slot->bound && slot->pending) {
				struct count_val *old;

				/* In the map since it missed the slot, in this
				 * generation: nothing deletes keys until the drain. */
				if (g)
					old = bpf_map_lookup_elem(&counts1, &slot->key);
				else
					old = bpf_map_lookup_elem(&counts0, &slot->key);
				if (old) {
					old->count += slot->pending;
					old->saturated = slot->saturated;
				} else {
					stat_add(STAT_MAP_FULL, slot->pending);
				}
			}
			slot->key = key;
			slot->pending = 0;
			slot->saturated = v->saturated;
			slot->bound = 1;
		}
		slot->last = key;
	}

counted:
	if (st->cfg.durations) {
		struct enter_val *e = bpf_task_storage_get(&enter_times, task, 0, 0);

		if (e && e->nr == syscall_nr(regs) && e->ts_ns) {
			duration = bpf_ktime_get_ns() - e->ts_ns;
			e->ts_ns = 0;
			if (g)
				observe_duration(&hists1, &key, duration);
			else
				observe_duration(&hists0, &key, duration);
		}
	}

	if (errno && record_allowed(st, &key, saturated))
		emit_record(task, regs, &key, ret, duration);
	return 0;
}

/* Every removal of a cgroup moves the epoch on, before the cgroup can be
 * freed: see the cgroup id cache in on_sys_exit. Load attaches it before
 * on_sys_exit and detaches it last. */
SEC("tp_btf/cgroup_rmdir")
int BPF_PROG(on_cgroup_rmdir, struct cgroup *cgrp, const char *path)
{
	u32 zero = 0;
	u64 *ep = bpf_map_lookup_elem(&cgroup_epoch, &zero);

	if (ep)
		__sync_fetch_and_add(ep, 1);
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(on_sys_enter, struct pt_regs *regs, long id)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct enter_val *e;

	e = bpf_task_storage_get(&enter_times, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!e)
		return 0;
	e->nr = (u32)id;
	e->ts_ns = bpf_ktime_get_ns();
	return 0;
}
