package sensor

import "sync/atomic"

// queue is the bounded hand-off between the ring-buffer reader and the
// consumer. A consumer that falls behind loses records, never the reader's
// pace, and every lost record is counted.
type queue struct {
	ch    chan Record
	drops atomic.Uint64
}

func newQueue(size int) *queue {
	return &queue{ch: make(chan Record, size)}
}

// push hands r on, or counts it as dropped when the queue is full.
func (q *queue) push(r Record) {
	select {
	case q.ch <- r:
	default:
		q.drops.Add(1)
	}
}

func (q *queue) close() { close(q.ch) }
