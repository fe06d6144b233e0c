// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The baseline for errnowatch's kernel cost benchmark: the least a program
 * on the same tracepoint can do, one increment of one per-CPU counter.
 * `make bench` attaches it next to the sensor and compares the kernel's
 * per-program run-time statistics of the two in the same run.
 */
#include "../include/kernel_types.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} exits SEC(".maps");

SEC("raw_tp/sys_exit")
int count_exit(void *ctx)
{
	u32 zero = 0;
	u64 *n = bpf_map_lookup_elem(&exits, &zero);

	if (n)
		*n += 1;
	return 0;
}
