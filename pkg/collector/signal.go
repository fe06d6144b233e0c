package collector

import "sync"

// signal tells stream subscribers that the store moved past a sequence. It
// keeps one value and one channel however many subscribers there are and
// however far behind they are: a wake-up says "read the store after your
// cursor", never carries alerts, so a slow subscriber costs nothing here
// and misses nothing (it reads what it missed from the store).
type signal struct {
	mu   sync.Mutex
	last uint64
	ch   chan struct{} // closed and replaced when last grows
}

func newSignal() *signal { return &signal{ch: make(chan struct{})} }

// publish records that everything up to seq is stored and wakes every
// waiter; a smaller or equal seq changes nothing.
func (s *signal) publish(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq <= s.last {
		return
	}
	s.last = seq
	close(s.ch)
	s.ch = make(chan struct{})
}

// wait returns the latest published sequence and a channel closed on the
// next publish. Take it before reading the store, so a publish between the
// read and the wait is not lost.
func (s *signal) wait() (uint64, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, s.ch
}
