/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The few kernel types errnowatch's BPF programs read, declared with
 * preserve_access_index so that clang emits CO-RE relocations: field
 * offsets are resolved against the running kernel's BTF at load time,
 * so one object runs on every BTF kernel of its architecture.
 *
 * A full vmlinux.h is 130k lines of one particular kernel; declaring only
 * what we touch keeps the tree small and makes every kernel field we depend
 * on visible in one page.
 */
#ifndef __ERRNOWATCH_KERNEL_TYPES_H
#define __ERRNOWATCH_KERNEL_TYPES_H

typedef signed char __s8;
typedef unsigned char __u8;
typedef short __s16;
typedef unsigned short __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long __s64;
typedef unsigned long long __u64;
typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __s32 s32;
typedef __u64 u64;
typedef __s64 s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;
#define true 1
#define false 0

/* From include/uapi/linux/bpf.h: only what the programs use. */
enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_HASH = 5,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_ARRAY_OF_MAPS = 12,
	BPF_MAP_TYPE_TASK_STORAGE = 29,
	BPF_MAP_TYPE_RINGBUF = 27,
};

enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
	BPF_EXIST = 2,
};

enum {
	BPF_F_NO_PREALLOC = (1U << 0),
};

enum {
	BPF_LOCAL_STORAGE_GET_F_CREATE = (1ULL << 0),
};

#define EEXIST 17

#if defined(__TARGET_ARCH_x86)
/* The saved user registers: orig_ax is the syscall number; the others hold
 * the arguments, native (di, si, dx, r10, r8, r9) or i386 (bx, cx, dx, si,
 * di, bp). */
struct pt_regs {
	unsigned long r9;
	unsigned long r8;
	unsigned long r10;
	unsigned long bp;
	unsigned long bx;
	unsigned long dx;
	unsigned long cx;
	unsigned long si;
	unsigned long di;
	unsigned long orig_ax;
} __attribute__((preserve_access_index));

struct thread_info {
	u32 status;
} __attribute__((preserve_access_index));
#elif defined(__TARGET_ARCH_arm64)
struct user_pt_regs {
	u64 regs[31];
	u64 sp;
	u64 pc;
	u64 pstate;
} __attribute__((preserve_access_index));

/* regs[] sit in an anonymous union in the kernel's definition; CO-RE finds
 * them through it. x0 is overwritten by the return value at exit, so the
 * first argument is orig_x0. */
struct pt_regs {
	u64 regs[31];
	u64 orig_x0;
	s32 syscallno;
} __attribute__((preserve_access_index));

struct thread_info {
	unsigned long flags;
} __attribute__((preserve_access_index));
#else
#error "errnowatch: unsupported target architecture"
#endif

struct kernfs_node {
	u64 id;
	/* Renamed __parent in 6.14 (RCU-protected since); the program reads
	 * whichever the running kernel has (bpf_core_field_exists). */
	struct kernfs_node *parent;
	struct kernfs_node *__parent;
} __attribute__((preserve_access_index));

struct cgroup {
	struct kernfs_node *kn;
} __attribute__((preserve_access_index));

struct css_set {
	struct cgroup *dfl_cgrp;
} __attribute__((preserve_access_index));

struct task_struct {
	struct thread_info thread_info;
	int pid;
	int tgid;
	struct css_set *cgroups;
	char comm[16];
} __attribute__((preserve_access_index));

#endif /* __ERRNOWATCH_KERNEL_TYPES_H */
