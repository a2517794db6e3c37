package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Writer is a steady client: sequential puts of distinct keys, each with
// clientv3's own retries and a 2 s timeout, the time of every
// acknowledgement and every failure recorded, so the unavailability a
// client sees in a window can be measured.
type Writer struct {
	mu     sync.Mutex
	acks   []time.Time
	fails  []time.Time
	cancel context.CancelFunc
	done   chan struct{}
}

// StartWriter writes through cli until Stop.
func StartWriter(cli *clientv3.Client) *Writer {
	ctx, cancel := context.WithCancel(context.Background())
	w := &Writer{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for i := 0; ctx.Err() == nil; i++ {
			k := fmt.Sprintf("bench-w-%07d", i)
			pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := cli.Put(pctx, k, k)
			pcancel()
			now := time.Now()
			w.mu.Lock()
			if err == nil {
				w.acks = append(w.acks, now)
			} else if ctx.Err() == nil {
				w.fails = append(w.fails, now)
			}
			w.mu.Unlock()
		}
	}()
	return w
}

// Acked is how many writes were acknowledged so far.
func (w *Writer) Acked() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acks)
}

// WaitAcked waits until n more writes than now are acknowledged.
func (w *Writer) WaitAcked(n int, limit time.Duration) error {
	want := w.Acked() + n
	deadline := time.Now().Add(limit)
	for w.Acked() < want {
		if time.Now().After(deadline) {
			return fmt.Errorf("the writer had only %d of %d writes acknowledged after %v", w.Acked(), want, limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// Window is what the writer saw between two instants.
type Window struct {
	Acked, Failed int
	// LongestGap is the longest time without an acknowledged write,
	// counting from the window's start and to its end.
	LongestGap time.Duration
}

// Window measures [from, to].
func (w *Writer) Window(from, to time.Time) Window {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out Window
	last := from
	for _, t := range w.acks {
		if t.Before(from) || t.After(to) {
			continue
		}
		out.Acked++
		out.LongestGap = max(out.LongestGap, t.Sub(last))
		last = t
	}
	out.LongestGap = max(out.LongestGap, to.Sub(last))
	for _, t := range w.fails {
		if !t.Before(from) && !t.After(to) {
			out.Failed++
		}
	}
	return out
}

// Stop ends the writer.
func (w *Writer) Stop() {
	w.cancel()
	<-w.done
}
