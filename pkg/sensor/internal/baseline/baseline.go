// Package baseline loads the counter-only sys_exit program that benchmarks
// compare the sensor's kernel cost against.
package baseline

//go:generate go tool bpf2go -cc clang-19 -strip llvm-strip-19 -cflags "-O2 -g -Wall -Werror" -go-package baseline -target amd64,arm64 bpf ../../../../bpf/baseline/minimal.c -- -I../../../../bpf

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Program is the attached baseline program.
type Program struct {
	objs bpfObjects
	link link.Link
}

// Attach loads the baseline program and attaches it to sys_exit.
func Attach() (*Program, error) {
	p := &Program{}
	if err := loadBpfObjects(&p.objs, nil); err != nil {
		return nil, fmt.Errorf("load baseline: %w", err)
	}
	l, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: "sys_exit", Program: p.objs.CountExit})
	if err != nil {
		p.objs.Close()
		return nil, fmt.Errorf("attach baseline to sys_exit: %w", err)
	}
	p.link = l
	return p, nil
}

// Prog is the program, for its run-time statistics.
func (p *Program) Prog() *ebpf.Program { return p.objs.CountExit }

// Close detaches and unloads the program.
func (p *Program) Close() error {
	if p == nil {
		return nil
	}
	if p.link != nil {
		p.link.Close()
	}
	return p.objs.Close()
}
