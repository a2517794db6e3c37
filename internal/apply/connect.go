package apply

import (
	"context"
	"errors"
	"fmt"

	"github.com/etcdkit/etcdkit/internal/remote"
)

// connectPhase opens one SSH connection per host, verifying host keys.
// Every host must answer before anything else happens: a run that could
// reach only some hosts would stop half-way.
type connectPhase struct{}

func (connectPhase) Title() string { return "Connect to hosts" }

func (connectPhase) Run(ctx context.Context, r *run) error {
	return r.eachHost(ctx, r.hosts, func(ctx context.Context, h *host) error {
		c, err := remote.Connect(ctx, h.rh, r.ropts)
		if err != nil {
			return err
		}
		h.conn = c
		h.rh = c.Host()
		msg := fmt.Sprintf("connected to %s as %s", h.rh.Addr(), h.rh.User)
		if c.AcceptedNewHostKey() {
			msg += "; its host key was new and is now trusted (--accept-new-host-keys)"
		}
		r.note(h, "%s", msg)
		return nil
	})
}

// Recovery names what to check for the kind of failure.
func (connectPhase) Recovery(r *run, err error) string {
	switch {
	case errors.Is(err, remote.ErrHostKeyChanged), errors.Is(err, remote.ErrUnknownHostKey):
		return "resolve the host key as the message says, then run `" + r.o.Rerun + "` again"
	case errors.Is(err, remote.ErrUnreachable):
		return "make the host reachable over SSH (or fix members[].host and ssh in the spec), then run `" + r.o.Rerun + "` again"
	}
	return "fix the SSH access the message names, then run `" + r.o.Rerun + "` again"
}
