package robustness

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Event is one watch event, as a history keeps it.
type Event struct {
	Rev    int64  `json:"rev"`
	Delete bool   `json:"delete,omitempty"`
	Key    string `json:"key"`
	Value  string `json:"value,omitempty"`
	Lease  int64  `json:"lease,omitempty"`
	// At is when the watcher received it, since the phase began.
	At time.Duration `json:"at"`
}

func (e Event) same(o Event) bool {
	return e.Rev == o.Rev && e.Delete == o.Delete && e.Key == o.Key && e.Value == o.Value && e.Lease == o.Lease
}

func (e Event) String() string {
	if e.Delete {
		return fmt.Sprintf("DELETE %s @%d", e.Key, e.Rev)
	}
	return fmt.Sprintf("PUT %s=%q @%d", e.Key, e.Value, e.Rev)
}

// Watcher follows the prefix from a revision on, across reconnects: when
// its stream ends (the member lost its leader, died, or was partitioned
// away), it watches again from the revision after the last it saw.
type Watcher struct {
	Name       string
	rec        *Recorder
	mu         sync.Mutex
	cli        *clientv3.Client
	stream     context.CancelFunc // ends the current stream (Swap)
	events     []Event
	last       int64 // highest revision known delivered (event or progress)
	reconnects int
	problems   []string
	cancel     context.CancelFunc
	done       chan struct{}
}

// StartWatcher watches Prefix from rev through cli until Stop.
func StartWatcher(cli *clientv3.Client, name string, rev int64, rec *Recorder) *Watcher {
	ctx, cancel := context.WithCancel(context.Background())
	w := &Watcher{Name: name, rec: rec, cli: cli, last: rev - 1, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		w.run(ctx)
	}()
	return w
}

// Swap moves the watcher to a new client: its stream ends and resumes
// through cli from the revision after the last it saw. It returns the old
// client, for the caller to close.
func (w *Watcher) Swap(cli *clientv3.Client) *clientv3.Client {
	w.mu.Lock()
	defer w.mu.Unlock()
	old := w.cli
	w.cli = cli
	if w.stream != nil {
		w.stream()
	}
	return old
}

func (w *Watcher) run(ctx context.Context) {
	for first := true; ctx.Err() == nil; first = false {
		if !first {
			w.mu.Lock()
			w.reconnects++
			w.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
		sctx, stream := context.WithCancel(ctx)
		w.mu.Lock()
		from, cli := w.last+1, w.cli
		w.stream = stream
		w.mu.Unlock()
		// RequireLeader ends the stream when the member loses its leader,
		// so a partitioned member's watch reconnects rather than waits.
		wctx := clientv3.WithRequireLeader(sctx)
		for resp := range cli.Watch(wctx, Prefix, clientv3.WithPrefix(), clientv3.WithRev(from), clientv3.WithProgressNotify()) {
			if resp.CompactRevision != 0 {
				w.problem("watch from revision %d was compacted (compact revision %d): events are lost to this watcher", from, resp.CompactRevision)
				return
			}
			if err := resp.Err(); err != nil {
				// No leader, a canceled stream, a closed connection: watch
				// again from where it stopped.
				break
			}
			w.add(resp)
		}
		stream()
	}
}

func (w *Watcher) add(resp clientv3.WatchResponse) {
	at := w.rec.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ev := range resp.Events {
		e := Event{Rev: ev.Kv.ModRevision, Key: string(ev.Kv.Key), At: at}
		if ev.Type == mvccpb.DELETE {
			e.Delete = true
		} else {
			e.Value, e.Lease = valueID(ev.Kv.Value), ev.Kv.Lease
		}
		w.events = append(w.events, e)
		w.last = max(w.last, e.Rev)
	}
	if resp.IsProgressNotify() {
		w.last = max(w.last, resp.Header.Revision)
	}
}

func (w *Watcher) problem(format string, args ...any) {
	w.mu.Lock()
	w.problems = append(w.problems, fmt.Sprintf(format, args...))
	w.mu.Unlock()
}

// WaitFor waits until the watcher has seen revision rev, or ctx ends.
func (w *Watcher) WaitFor(ctx context.Context, rev int64) error {
	for {
		w.mu.Lock()
		last, stuck := w.last, len(w.problems) > 0
		w.mu.Unlock()
		if last >= rev {
			return nil
		}
		if stuck {
			return fmt.Errorf("watcher %s stopped at revision %d: %s", w.Name, last, w.problems[0])
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("watcher %s reached revision %d, not %d: %w", w.Name, last, rev, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Last is the highest revision the watcher knows it has been delivered.
func (w *Watcher) Last() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

// Stop ends the watcher and returns what it saw.
func (w *Watcher) Stop() (events []Event, reconnects int, problems []string) {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.events, w.reconnects, w.problems
}

// Replay reads the prefix's history from..to afresh, through one member:
// what the cluster kept, for the lost-write check.
func Replay(ctx context.Context, cli *clientv3.Client, from, to int64) ([]Event, error) {
	if to < from {
		return nil, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var out []Event
	for resp := range cli.Watch(clientv3.WithRequireLeader(ctx), Prefix, clientv3.WithPrefix(), clientv3.WithRev(from)) {
		if resp.CompactRevision != 0 {
			return out, fmt.Errorf("history from revision %d is compacted (compact revision %d)", from, resp.CompactRevision)
		}
		if err := resp.Err(); err != nil {
			return out, err
		}
		for _, ev := range resp.Events {
			if ev.Kv.ModRevision > to {
				return out, nil
			}
			e := Event{Rev: ev.Kv.ModRevision, Key: string(ev.Kv.Key)}
			if ev.Type == mvccpb.DELETE {
				e.Delete = true
			} else {
				e.Value, e.Lease = valueID(ev.Kv.Value), ev.Kv.Lease
			}
			out = append(out, e)
		}
		// The events of one revision arrive in one response.
		if len(out) > 0 && out[len(out)-1].Rev >= to {
			return out, nil
		}
	}
	return out, ctx.Err()
}
