package alertpb_test

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
	"github.com/errnowatch/errnowatch/pkg/alertpb"
	"github.com/errnowatch/errnowatch/pkg/store/storetest"
)

func TestCheckLimitsRefusesEachOversizeField(t *testing.T) {
	a := storetest.Alerts(storetest.DefaultShape, time.Now(), 1, 1)[0]
	if err := alertpb.CheckLimits(alertpb.ToProto(&a), 0); err != nil {
		t.Fatalf("a generated alert: %v", err)
	}
	long := func(n int) string { return strings.Repeat("x", n) }
	for name, tc := range map[string]struct {
		mutate func(*errnowatchv1.Alert)
		want   string
	}{
		"4 MiB message": {func(p *errnowatchv1.Alert) { p.Message = long(4 << 20) }, "bytes encoded, at most 65536"},
		"message":       {func(p *errnowatchv1.Alert) { p.Message = long(alertpb.MaxMessageLen + 1) }, "message is 4097 bytes"},
		"rule_id":       {func(p *errnowatchv1.Alert) { p.RuleId = long(alertpb.MaxRuleIDLen + 1) }, "rule_id is 254 bytes"},
		"namespace":     {func(p *errnowatchv1.Alert) { p.Namespace = long(64) }, "namespace is 64 bytes"},
		"node":          {func(p *errnowatchv1.Alert) { p.Node = long(254) }, "node is 254 bytes"},
		"cgroup_path":   {func(p *errnowatchv1.Alert) { p.CgroupPath = long(alertpb.MaxCgroupPathLen + 1) }, "cgroup_path is 4097 bytes"},
		"workload":      {func(p *errnowatchv1.Alert) { p.Workload = &errnowatchv1.Workload{Name: long(254)} }, "workload.name is 254 bytes"},
		"tags":          {func(p *errnowatchv1.Alert) { p.Tags = make([]string, alertpb.MaxTags+1) }, "33 tags"},
		"tag":           {func(p *errnowatchv1.Alert) { p.Tags = []string{long(alertpb.MaxTagLen + 1)} }, "tag 0 is 129 bytes"},
		"processes": {func(p *errnowatchv1.Alert) {
			p.Processes = make([]*errnowatchv1.Process, alertpb.MaxProcesses+1)
			for i := range p.Processes {
				p.Processes[i] = &errnowatchv1.Process{Pid: 1}
			}
		}, "names 65 processes"},
		"comm":   {func(p *errnowatchv1.Alert) { p.Processes = []*errnowatchv1.Process{{Comm: long(65)}} }, "process 0 comm is 65 bytes"},
		"errno":  {func(p *errnowatchv1.Alert) { p.Counts = []*errnowatchv1.SyscallCount{{Errno: long(65)}} }, "count 0 names"},
		"counts": {func(p *errnowatchv1.Alert) { p.Counts = make([]*errnowatchv1.SyscallCount, alertpb.MaxCounts+1) }, "1025 counts"},
	} {
		p := alertpb.ToProto(&a)
		tc.mutate(p)
		err := alertpb.CheckLimits(p, 0)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", name, err, tc.want)
		}
	}
	// The size bound is the caller's when given.
	p := alertpb.ToProto(&a)
	if err := alertpb.CheckLimits(p, proto.Size(p)); err != nil {
		t.Fatalf("alert of exactly the bound: %v", err)
	}
	if err := alertpb.CheckLimits(p, proto.Size(p)-1); err == nil {
		t.Fatalf("alert one byte over the bound was accepted")
	}
}
