package vllmsim

// queue is the waiting queue: a deque ordered by arrival. Preempted requests go back to the front, new
// ones to the back, and admission pops the front.
type queue struct {
	buf  []*seq
	head int
}

func (q *queue) len() int { return len(q.buf) - q.head }

func (q *queue) front() *seq { return q.buf[q.head] }

func (q *queue) popFront() *seq {
	s := q.buf[q.head]
	q.buf[q.head] = nil
	q.head++
	switch {
	case q.head == len(q.buf):
		q.buf, q.head = q.buf[:0], 0
	case q.head >= 64 && 2*q.head >= len(q.buf):
		// A queue that never empties would otherwise grow its backing array forever.
		n := copy(q.buf, q.buf[q.head:])
		clear(q.buf[n:])
		q.buf, q.head = q.buf[:n], 0
	}
	return s
}

func (q *queue) pushFront(s *seq) {
	if q.head > 0 {
		q.head--
		q.buf[q.head] = s
		return
	}
	q.buf = append(q.buf, nil)
	copy(q.buf[1:], q.buf)
	q.buf[0] = s
}

// insert places s after every request that arrived no later than it, so that requests submitted out of
// arrival order are still admitted first-come first-served.
func (q *queue) insert(s *seq) {
	i := len(q.buf)
	for i > q.head && q.buf[i-1].arrival > s.arrival {
		i--
	}
	q.buf = append(q.buf, nil)
	copy(q.buf[i+1:], q.buf[i:])
	q.buf[i] = s
}

// remove takes s out of the queue and reports whether it was there.
func (q *queue) remove(s *seq) bool {
	for i := q.head; i < len(q.buf); i++ {
		if q.buf[i] == s {
			copy(q.buf[i:], q.buf[i+1:])
			q.buf[len(q.buf)-1] = nil
			q.buf = q.buf[:len(q.buf)-1]
			return true
		}
	}
	return false
}
