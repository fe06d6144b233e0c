package cgroup_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"go.uber.org/goleak"
)

// helperEnv makes the test binary, started inside a cgroup, print the
// cgroup id that the kernel gives BPF programs for it instead of running tests.
const helperEnv = "ERRNOWATCH_CGROUP_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "bpf-cgroup-id" {
		id, err := bpfCurrentCgroupID()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Println(id)
		os.Exit(0)
	}
	goleak.VerifyTestMain(m)
}

// bpfCurrentCgroupID returns what bpf_get_current_cgroup_id, the helper the
// sensor keys its counts on, says for the calling task. A test run of a raw
// tracepoint program runs in the caller's context, and its 32-bit return
// value carries the 64-bit id in two halves.
func bpfCurrentCgroupID() (uint64, error) {
	half := func(shift bool) (uint32, error) {
		insns := asm.Instructions{asm.FnGetCurrentCgroupId.Call()}
		if shift {
			insns = append(insns, asm.RSh.Imm(asm.R0, 32))
		}
		insns = append(insns, asm.Return())
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
			Type:         ebpf.RawTracepoint,
			License:      "GPL",
			Instructions: insns,
		})
		if err != nil {
			return 0, fmt.Errorf("load cgroup id program: %w", err)
		}
		defer prog.Close()
		ret, err := prog.Run(&ebpf.RunOptions{})
		if err != nil {
			return 0, fmt.Errorf("run cgroup id program: %w", err)
		}
		return ret, nil
	}
	lo, err := half(false)
	if err != nil {
		return 0, err
	}
	hi, err := half(true)
	if err != nil {
		return 0, err
	}
	return uint64(hi)<<32 | uint64(lo), nil
}
