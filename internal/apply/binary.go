package apply

import (
	"context"
)

// binaryPhase installs the etcdkit binary (this one, unless --binary says
// otherwise) on every host that lacks the same sha256. A running member
// keeps the binary it started with; the roll phase restarts it.
type binaryPhase struct{}

func (binaryPhase) Title() string { return "Install etcdkit" }

func (binaryPhase) Run(ctx context.Context, r *run) error {
	return r.eachHost(ctx, r.hosts, func(ctx context.Context, h *host) error {
		changed, err := h.conn.Upload(ctx, r.o.Binary, BinaryPath, executable)
		h.binaryChanged = changed
		return err
	})
}
