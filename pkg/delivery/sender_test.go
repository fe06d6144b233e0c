package delivery

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"maps"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/util/wait"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/collector"
	"github.com/errnowatch/errnowatch/pkg/collector/client"
	"github.com/errnowatch/errnowatch/pkg/store"
	"github.com/errnowatch/errnowatch/pkg/store/sqlite"
)

// The issue asks for a one-minute collector outage; the test takes about as
// long. A shorter one can be asked for explicitly, never skipped.
var outage = flag.Duration("delivery.outage", 60*time.Second, "how long the collector is down in TestCollectorOutageDeliversEveryAlertOnce")

func TestMain(m *testing.M) {
	flag.Parse()
	goleak.VerifyTestMain(m)
}

// testPKI is a throwaway CA with a server certificate for 127.0.0.1 and a
// client certificate, so the tests use the same mutual TLS as an agent.
type testPKI struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func newPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage, ips []net.IP) (string, string) {
		k := newKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return write(cn+".crt", "CERTIFICATE", der), write(cn+".key", "PRIVATE KEY", kder)
	}
	p := testPKI{ca: write("ca.crt", "CERTIFICATE", caDER)}
	p.serverCert, p.serverKey = leaf(2, "collector", x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)})
	p.clientCert, p.clientKey = leaf(3, "agent", x509.ExtKeyUsageClientAuth, nil)
	return p
}

// testCollector is a real collector over a real SQLite file on 127.0.0.1,
// which can be stopped and started again on the same port and database.
type testCollector struct {
	t    *testing.T
	cfg  collector.Config
	pki  testPKI
	db   string
	addr string
	st   *sqlite.Store
	srv  *collector.Server
}

func newCollector(t *testing.T, cfg collector.Config) *testCollector {
	c := &testCollector{t: t, cfg: cfg, pki: newPKI(t), db: filepath.Join(t.TempDir(), "alerts.db"), addr: "127.0.0.1:0"}
	t.Cleanup(c.stop)
	return c
}

func (c *testCollector) start() {
	c.t.Helper()
	st, err := sqlite.Open(context.Background(), c.db, sqlite.Options{})
	if err != nil {
		c.t.Fatalf("open store: %v", err)
	}
	cfg := c.cfg
	cfg.Store = st
	cfg.Logger = zaptest.NewLogger(c.t).Named("collector")
	srv, err := collector.New(cfg)
	if err != nil {
		st.Close()
		c.t.Fatal(err)
	}
	err = srv.Start(context.Background(), collector.Listen{
		Address: c.addr,
		TLS:     collector.TLSFiles{CertFile: c.pki.serverCert, KeyFile: c.pki.serverKey, ClientCAFile: c.pki.ca},
	})
	if err != nil {
		st.Close()
		c.t.Fatalf("start collector: %v", err)
	}
	c.st, c.srv, c.addr = st, srv, srv.Addr().String()
}

func (c *testCollector) stop() {
	if c.srv == nil {
		return
	}
	if err := c.srv.Close(); err != nil {
		c.t.Errorf("close collector: %v", err)
	}
	if err := c.st.Close(); err != nil {
		c.t.Errorf("close store: %v", err)
	}
	c.srv, c.st = nil, nil
}

func (c *testCollector) dial() *client.Client {
	c.t.Helper()
	cl, err := client.Dial(client.Options{Address: c.addr, CAFile: c.pki.ca, CertFile: c.pki.clientCert, KeyFile: c.pki.clientKey})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

// stored reads back every alert row: ID -> stored alert, and the store's
// last sequence. Sequences are dense (one per stored revision), so the last
// one counts the revisions ever stored.
func (c *testCollector) stored() (map[string]alert.Alert, uint64) {
	c.t.Helper()
	ctx := context.Background()
	rows := map[string]alert.Alert{}
	var after uint64
	for {
		revs, cursor, err := c.st.ReadAfter(ctx, after, store.Filter{}, 500)
		if err != nil {
			c.t.Fatalf("read store: %v", err)
		}
		for _, r := range revs {
			if _, dup := rows[r.Alert.ID]; dup {
				c.t.Fatalf("alert %s has two rows", r.Alert.ID)
			}
			rows[r.Alert.ID] = r.Alert
		}
		if len(revs) == 0 {
			break
		}
		after = cursor
	}
	last, err := c.st.LastSeq(ctx)
	if err != nil {
		c.t.Fatal(err)
	}
	return rows, last
}

func (c *testCollector) lastSeq() uint64 {
	if c.st == nil {
		return 0
	}
	n, _ := c.st.LastSeq(context.Background())
	return n
}

// ledger remembers what the rule engine raised: the latest revision of
// every alert and the number of revisions.
type ledger struct {
	mu        sync.Mutex
	latest    map[string]alert.Alert
	order     []string
	revisions int
	n         int
}

func newLedger() *ledger { return &ledger{latest: map[string]alert.Alert{}} }

// next makes a new alert, or every third time a new revision of an earlier
// one, as the rule engine does while a pattern goes on.
func (l *ledger) next(t testing.TB) alert.Alert {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	if l.n%3 == 0 && len(l.order) > 0 {
		a := l.latest[l.order[(l.n*7)%len(l.order)]]
		a.Revision++
		a.LastSeen = time.Now()
		a.Message = fmt.Sprintf("update %d", l.n)
		l.latest[a.ID] = a
		l.revisions++
		return a
	}
	a := testAlert(t, l.n)
	l.latest[a.ID] = a
	l.order = append(l.order, a.ID)
	l.revisions++
	return a
}

func (l *ledger) raise(t testing.TB, sp *Spool, n int) {
	t.Helper()
	batch := make([]alert.Alert, 0, n)
	for range n {
		batch = append(batch, l.next(t))
	}
	if err := sp.Append(batch...); err != nil {
		t.Fatalf("spool: %v", err)
	}
}

func (l *ledger) snapshot() (map[string]alert.Alert, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.latest), l.revisions
}

// checkExactlyOnce compares the store with the ledger: the same alerts at
// the same revisions, and as many revisions stored as were raised, so none
// was lost and none stored twice.
func checkExactlyOnce(t *testing.T, c *testCollector, l *ledger, extra int) map[string]alert.Alert {
	t.Helper()
	rows, last := c.stored()
	want, revisions := l.snapshot()
	for id, a := range want {
		got, ok := rows[id]
		if !ok {
			t.Errorf("alert %s (revision %d) never reached the store", id, a.Revision)
			continue
		}
		if got.Revision != a.Revision || got.Message != a.Message {
			t.Errorf("alert %s stored at revision %d %q, raised up to %d %q", id, got.Revision, got.Message, a.Revision, a.Message)
		}
		delete(rows, id)
	}
	if len(rows) != extra {
		t.Errorf("store holds %d alerts that were never raised, want %d", len(rows), extra)
	}
	if last != uint64(revisions+extra) {
		t.Errorf("store stored %d revisions, %d were raised", last, revisions+extra)
	}
	return rows
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fastBackoff keeps the tests short; the shape is the default's.
var fastBackoff = wait.Backoff{Duration: 50 * time.Millisecond, Factor: 2, Jitter: 0.5, Steps: 1 << 30, Cap: time.Second}

func runSender(t *testing.T, sp *Spool, cl *client.Client, opts SenderOptions) (*Sender, func()) {
	t.Helper()
	opts.Logger = zaptest.NewLogger(t).Named("sender")
	if opts.Backoff == (wait.Backoff{}) {
		opts.Backoff = fastBackoff
	}
	s, err := NewSender(sp, cl.Conn, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("sender: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return s, stop
}

func TestCollectorOutageDeliversEveryAlertOnce(t *testing.T) {
	t.Parallel()
	c := newCollector(t, collector.Config{})
	c.start()
	cl := c.dial()
	sp := openSpool(t, t.TempDir(), SpoolOptions{})
	s, stop := runSender(t, sp, cl, SenderOptions{Node: "node-a", BatchAlerts: 20, Window: 4})

	// The rule engine raises alerts all along, a few at a time.
	l := newLedger()
	raising := make(chan struct{})
	raised := make(chan struct{})
	go func() {
		defer close(raised)
		for {
			select {
			case <-raising:
				return
			case <-time.After(20 * time.Millisecond):
				batch := make([]alert.Alert, 0, 3)
				for range 3 {
					batch = append(batch, l.next(t))
				}
				if err := sp.Append(batch...); err != nil {
					t.Errorf("spool: %v", err)
					return
				}
			}
		}
	}()
	defer func() {
		select {
		case <-raising:
		default:
			close(raising)
		}
		<-raised
	}()

	eventually(t, "the first alerts to be stored", func() bool { return c.lastSeq() > 30 })
	c.stop()
	eventually(t, "the sender to notice the outage", func() bool { return !s.Stats().Connected })
	_, before := l.snapshot()
	time.Sleep(*outage)
	_, during := l.snapshot()
	st := s.Stats()
	if during <= before || st.SpoolRecords < during-before || st.OldestUnackedAge <= 0 || st.Connected {
		t.Fatalf("after the outage: %d alerts raised during it, stats %+v", during-before, st)
	}
	t.Logf("outage of %s: %d alerts spooled, %d bytes, oldest %s", *outage, st.SpoolRecords, st.SpoolBytes, st.OldestUnackedAge)

	c.start()
	eventually(t, "more alerts after the restart", func() bool { _, n := l.snapshot(); return n > during+30 })
	close(raising)
	<-raised
	_, revisions := l.snapshot()
	eventually(t, "the spool to drain", func() bool {
		st := s.Stats()
		return st.SpoolRecords == 0 && st.InFlight == 0 && c.lastSeq() == uint64(revisions)
	})
	stop()
	checkExactlyOnce(t, c, l, 0)
	st = s.Stats()
	// Answers lost in the outage make duplicates on resend, never more.
	if st.Stored+st.Duplicates < uint64(revisions) || st.Stored > uint64(revisions) || st.Acked != st.Stored+st.Duplicates ||
		st.Reconnects < 1 || st.Dropped != 0 {
		t.Errorf("stats after delivery %+v, want %d stored (or duplicates of what was), acked = stored + duplicates, a reconnect, no drops", st, revisions)
	}
	t.Logf("delivered %d revisions: sent %d, resent %d, duplicates %d, reconnects %d",
		revisions, st.Sent, st.Resent, st.Duplicates, st.Reconnects)
}

func TestSenderRestartLosesAndDuplicatesNothing(t *testing.T) {
	t.Parallel()
	// A slow collector (small batches, rate limited) so that the first
	// sender is stopped with alerts still spooled.
	c := newCollector(t, collector.Config{MaxBatchAlerts: 10, IngestAlertsPerSecond: 300})
	c.start()
	cl := c.dial()
	dir := t.TempDir()
	l := newLedger()
	sp1 := openSpool(t, dir, SpoolOptions{})
	for range 12 {
		l.raise(t, sp1, 50)
	}
	if err := sp1.Close(); err != nil {
		t.Fatal(err)
	}
	_, revisions := l.snapshot()
	// A copy taken now is what an agent that crashed before recording any
	// acknowledgement would find on restart.
	crashed := t.TempDir()
	if err := os.CopyFS(crashed, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(crashed, lockFile))

	sp1 = openSpool(t, dir, SpoolOptions{})
	opts := SenderOptions{BatchAlerts: 10, Window: 4}
	s1, stop1 := runSender(t, sp1, cl, opts)
	eventually(t, "a first part to be acknowledged", func() bool { return s1.Stats().Acked >= 100 })
	stop1()
	left := sp1.Stats().Records
	if left == 0 || left == revisions {
		t.Fatalf("sender stopped with %d of %d records spooled; the test needs some delivered and some not", left, revisions)
	}
	if err := sp1.Close(); err != nil {
		t.Fatal(err)
	}

	sp2 := openSpool(t, dir, SpoolOptions{})
	if got := sp2.Stats().Records; got != left {
		t.Fatalf("reopened spool holds %d records, the stopped one %d", got, left)
	}
	s2, stop2 := runSender(t, sp2, cl, opts)
	eventually(t, "the spool to drain", func() bool {
		return sp2.Stats().Records == 0 && c.lastSeq() == uint64(revisions)
	})
	stop2()
	checkExactlyOnce(t, c, l, 0)
	// Batches in flight when the first sender stopped may have been stored
	// without their answer arriving: the second sends them again and the
	// collector counts them as duplicates.
	st1, st2 := s1.Stats(), s2.Stats()
	if st2.Acked != uint64(left) || st1.Stored+st2.Stored+st2.Duplicates != uint64(revisions) {
		t.Errorf("first sender %+v, second %+v: want the second to ack the %d left, and every revision stored once", st1, st2, left)
	}
	t.Logf("first sender acked %d, second %d of which %d duplicates", s1.Stats().Acked, s2.Stats().Acked, s2.Stats().Duplicates)

	// The crashed agent sends everything again: the collector takes every
	// alert as a duplicate and stores nothing twice.
	sp3 := openSpool(t, crashed, SpoolOptions{})
	s3, stop3 := runSender(t, sp3, cl, opts)
	eventually(t, "the crashed spool to drain", func() bool { return sp3.Stats().Records == 0 })
	stop3()
	if st := s3.Stats(); st.Acked != uint64(revisions) || st.Duplicates != uint64(revisions) || st.Stored != 0 {
		t.Errorf("resending everything: %+v, want %d acked, all duplicates", st, revisions)
	}
	checkExactlyOnce(t, c, l, 0)
}

func TestSpoolBoundDropsAreReported(t *testing.T) {
	t.Parallel()
	c := newCollector(t, collector.Config{})
	c.start() // to learn a port, then down for the first part
	c.stop()
	cl := c.dial()
	sp := openSpool(t, t.TempDir(), SpoolOptions{MaxRecords: 20, SegmentBytes: 4 << 10})
	s, _ := runSender(t, sp, cl, SenderOptions{Node: "node-a"})

	// New alerts only, so that the 20 kept are 20 rows in the store.
	var raised []alert.Alert
	start := time.Now()
	for i := range 50 {
		a := testAlert(t, i)
		if err := sp.Append(a); err != nil {
			t.Fatal(err)
		}
		raised = append(raised, a)
	}
	if st := s.Stats(); st.Dropped != 30 || st.PendingDrops != 30 || st.SpoolRecords != 20 || st.Connected {
		t.Fatalf("with the collector down: %+v, want 30 dropped and pending, 20 spooled", st)
	}
	// The drops stay pending while the collector is down.
	eventually(t, "the sender to try and fail a few times", func() bool { return time.Since(start) > 3*fastBackoff.Cap })
	if st := s.Stats(); st.PendingDrops != 30 || st.Sent != 0 {
		t.Fatalf("while down: %+v", st)
	}

	c.start()
	eventually(t, "the newest alerts and the drop report to arrive", func() bool {
		st := s.Stats()
		return st.SpoolRecords == 0 && st.PendingDrops == 0 && c.lastSeq() == 21
	})
	rows, _ := c.stored()
	var reports []alert.Alert
	for _, a := range rows {
		if a.RuleID == DroppedRuleID {
			reports = append(reports, a)
		}
	}
	kept := 0
	for i, a := range raised {
		if _, ok := rows[a.ID]; ok != (i >= 30) {
			t.Errorf("alert %d of 50 stored: %v; want only the newest 20", i, ok)
		} else if ok {
			kept++
		}
	}
	if len(reports) != 1 || kept != 20 {
		t.Fatalf("store holds %d drop reports and %d raised alerts, want 1 and the 20 newest", len(reports), kept)
	}
	r := reports[0]
	if r.Severity != alert.SeverityHigh || r.Node != "node-a" || !strings.Contains(r.Message, "dropped 30 alerts") ||
		r.FirstSeen.Before(start.Add(-time.Second)) || r.LastSeen.Before(r.FirstSeen) {
		t.Fatalf("drop report %+v", r)
	}
	if st := s.Stats(); st.Dropped != 30 || st.Stored != 21 {
		t.Fatalf("stats after the report %+v", st)
	}
}

// loseAnswer lets the first answers of the first stream through, then
// receives one more (so that batch is surely stored) and loses it, as a
// connection that breaks just before the answer arrives would.
type loseAnswer struct {
	grpc.ClientStream
	pass int
	lost *atomic.Bool
}

func (l *loseAnswer) RecvMsg(m any) error {
	if err := l.ClientStream.RecvMsg(m); err != nil {
		return err
	}
	if l.pass--; l.pass >= 0 {
		return nil
	}
	l.lost.Store(true)
	return status.Error(codes.Unavailable, "test: connection lost before the answer arrived")
}

func TestLostAnswersAreResentAndStoredOnce(t *testing.T) {
	t.Parallel()
	c := newCollector(t, collector.Config{})
	c.start()
	var lost atomic.Bool
	cl, err := client.Dial(client.Options{
		Address: c.addr, CAFile: c.pki.ca, CertFile: c.pki.clientCert, KeyFile: c.pki.clientKey,
		DialOptions: []grpc.DialOption{grpc.WithStreamInterceptor(
			func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
				cs, err := streamer(ctx, desc, cc, method, opts...)
				if err != nil || lost.Load() {
					return cs, err
				}
				return &loseAnswer{ClientStream: cs, pass: 3, lost: &lost}, nil
			})},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	sp := openSpool(t, t.TempDir(), SpoolOptions{})
	l := newLedger()
	l.raise(t, sp, 200)
	_, revisions := l.snapshot()
	s, stop := runSender(t, sp, cl, SenderOptions{BatchAlerts: 10, Window: 4})
	eventually(t, "the spool to drain", func() bool { return sp.Stats().Records == 0 })
	stop()
	st := s.Stats()
	// What the collector stored without answering comes back as duplicates.
	if !lost.Load() || st.Resent < 10 || st.Duplicates < 10 || st.Stored+st.Duplicates != uint64(revisions) || st.Reconnects != 1 {
		t.Errorf("after losing an answer: %+v; want the unanswered batches resent, at least one batch of duplicates", st)
	}
	checkExactlyOnce(t, c, l, 0)
}

func TestRejectedAlertIsDroppedAlone(t *testing.T) {
	t.Parallel()
	c := newCollector(t, collector.Config{})
	c.start()
	cl := c.dial()
	sp := openSpool(t, t.TempDir(), SpoolOptions{})
	// Valid to the agent, but its time cannot travel as a protobuf
	// timestamp (years 1 to 9999), so the collector refuses its batch.
	bad := testAlert(t, 99)
	bad.FirstSeen = time.Date(0, 6, 1, 0, 0, 0, 0, time.UTC)
	bad.LastSeen = bad.FirstSeen
	var good []alert.Alert
	for i := range 10 {
		good = append(good, testAlert(t, i))
	}
	if err := sp.Append(append(append(slices.Clone(good[:5]), bad), good[5:]...)...); err != nil {
		t.Fatal(err)
	}
	more := testAlert(t, 10)
	if err := sp.Append(more); err != nil {
		t.Fatal(err)
	}
	s, stop := runSender(t, sp, cl, SenderOptions{BatchAlerts: 20})
	eventually(t, "the spool to drain", func() bool { return sp.Stats().Records == 0 })
	stop()
	rows, last := c.stored()
	for _, a := range append(good, more) {
		if _, ok := rows[a.ID]; !ok {
			t.Errorf("alert %s was lost with the bad one", a.ID)
		}
	}
	if _, ok := rows[bad.ID]; ok || last != 11 {
		t.Errorf("store holds %d revisions (bad one stored: %v), want the 11 good ones", last, ok)
	}
	if st := s.Stats(); st.Rejected != 1 || st.Stored != 11 {
		t.Errorf("stats %+v, want 1 rejected and 11 stored", st)
	}
}

// Every batch and a heartbeat while idle tell the collector the agent's
// status: the sensor's losses from SensorStatus, the node and the spool's
// backlog from the sender. The collector keeps it for its node, and keeps
// hearing from an agent with nothing to send; heartbeats are answered
// like batches and acknowledge nothing.
func TestHeartbeatTellsTheCollectorTheAgentsStatus(t *testing.T) {
	t.Parallel()
	c := newCollector(t, collector.Config{})
	c.start()
	cl := c.dial()
	sp := openSpool(t, t.TempDir(), SpoolOptions{})
	l := newLedger()
	l.raise(t, sp, 30)
	s, stop := runSender(t, sp, cl, SenderOptions{Node: "node-7", Heartbeat: 100 * time.Millisecond, BatchAlerts: 10,
		SensorStatus: func() *errnowatchv1.AgentStatus {
			return &errnowatchv1.AgentStatus{SensorAttached: true, RingDrops: 4, QueueDrops: 1, MapFull: 2, Overflowed: 9}
		}})
	eventually(t, "the spool to drain", func() bool { return sp.Stats().Records == 0 })
	status := func() (store.NodeStatus, bool) {
		sts, err := c.st.NodeStatuses(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range sts {
			if st.Node == "node-7" {
				return st, true
			}
		}
		return store.NodeStatus{}, false
	}
	var first store.NodeStatus
	eventually(t, "node-7's status", func() bool {
		var ok bool
		first, ok = status()
		return ok
	})
	want := store.NodeStatus{Node: "node-7", ReceivedAt: first.ReceivedAt, SensorAttached: true, RingDrops: 4, QueueDrops: 1,
		MapFull: 2, Overflowed: 9}
	if first.SpoolRecords > 30 || first.SpoolDropped != 0 {
		t.Errorf("node-7's status %+v: spool backlog past what was raised", first)
	}
	first.SpoolRecords, first.SpoolOldest = 0, 0
	if first != want {
		t.Errorf("node-7's status %+v, want %+v", first, want)
	}
	// Idle now: only heartbeats keep the status fresh (one write per node
	// every 5 s at most).
	eventually(t, "a heartbeat after the spool drained", func() bool {
		st, _ := status()
		return st.ReceivedAt.After(first.ReceivedAt) && st.SpoolRecords == 0
	})
	stop()
	if st := s.Stats(); st.Acked != 30 || st.InFlight != 0 {
		t.Errorf("after heartbeats: %+v, want the 30 alerts acknowledged and nothing in flight", st)
	}
	checkExactlyOnce(t, c, l, 0)
}
