package sensor

import (
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// BenchmarkRecordCost measures what a record with arguments costs the
// kernel: two sensors see the same failing openat calls (a 48-byte path),
// one emitting a record for every failure, the other none, and the extra
// run time of the first, divided by the records it emitted, is the cost of
// one record (reserve, registers, path copy, submit). Figures come from the
// kernel's BPF run-time statistics; several rounds, medians reported.
//
//	go test ./pkg/sensor -run '^$' -bench RecordCost -benchtime 200000x
func BenchmarkRecordCost(b *testing.B) {
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatalf("enable BPF run-time statistics: %v", err)
	}
	defer stats.Close()
	only := Filter{AllowSyscalls: []SyscallID{{Nr: unix.SYS_OPENAT}}}
	// A window of an hour and no limit to speak of: every failure is a record.
	rec, err := Load(Config{Filter: only, RecordsPerWindow: 1 << 30, RateWindow: time.Hour, RingBytes: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer rec.Close()
	bare, err := Load(Config{Filter: only, RecordsPerWindow: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer bare.Close()
	go func() { // consume, as the agent does
		for range rec.Records() {
		}
	}()
	const path = "/nonexistent/errnowatch-bench/some/file/name.conf"
	const rounds = 7
	per := max(b.N/rounds, 20000)
	var perRecord, withRec, without, share []float64
	b.ResetTimer()
	for r := 0; r < rounds; r++ {
		r0, b0 := readCost(b, rec.objs.OnSysExit), readCost(b, bare.objs.OnSysExit)
		s0, err := rec.Stats()
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < per; i++ {
			unix.Open(path, unix.O_RDONLY, 0)
		}
		r1, b1 := readCost(b, rec.objs.OnSysExit), readCost(b, bare.objs.OnSysExit)
		s1, err := rec.Stats()
		if err != nil {
			b.Fatal(err)
		}
		emitted := s1.Emitted - s0.Emitted
		if emitted == 0 {
			b.Fatal("no records emitted")
		}
		extra := float64(r1.ns-r0.ns) - float64(b1.ns-b0.ns)*float64(r1.runs-r0.runs)/float64(max(b1.runs-b0.runs, 1))
		perRecord = append(perRecord, extra/float64(emitted))
		share = append(share, float64(emitted)/float64(r1.runs-r0.runs))
		withRec = append(withRec, r1.since(r0))
		without = append(without, b1.since(b0))
	}
	b.StopTimer()
	b.ReportMetric(median(perRecord), "kernel-ns/record")
	b.ReportMetric(median(withRec), "ns/run-recording")
	b.ReportMetric(median(without), "ns/run-counting")
	// Runs that found the ring full emit nothing; the share says how many did.
	b.ReportMetric(median(share), "records/run")
}

// BenchmarkDecodeRecord is the agent's decoding rate for records with a
// path and an address.
func BenchmarkDecodeRecord(b *testing.B) {
	raw := encodeRecord(1, 2, -13, 0, 3, 3, 1000, unix.SYS_CONNECT, "curl", false)
	copy(raw[offPath:], "/var/run/secrets/kubernetes.io/serviceaccount/token\x00")
	raw[offFlags] = flagHasPath
	sa := []byte{unix.AF_INET, 0, 0x1f, 0x90, 10, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0}
	copy(raw[offAddr:], sa)
	raw[offAddrLen] = byte(len(sa))
	b.ReportAllocs()
	b.SetBytes(recordSize)
	for b.Loop() {
		if _, err := DecodeRecord(raw, Clock{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
