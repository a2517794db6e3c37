// Package member runs one etcd member in this process with etcd's embed
// package: it validates the config before etcd sees it, refuses a data
// directory another process holds, tells systemd when the member serves and
// when it stops, and runs etcdkit's in-member services (scheduled backups,
// the join endpoint) once the member is ready.
package member

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/mattn/go-isatty"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/etcdkit/etcdkit/internal/etcdconf"
)

// Service is work that runs inside a member once it serves clients, until
// ctx ends. A service logs its own failures; it must never stop the member.
type Service func(ctx context.Context, e *embed.Etcd, lg *zap.Logger)

// Options configures Run.
type Options struct {
	Config *etcdconf.Config
	// ConfigPath names the config file in messages.
	ConfigPath string
	// Source is the config file's content, for line numbers in messages.
	Source []byte
	// AllowInsecureHTTP permits http:// URLs on loopback addresses.
	AllowInsecureHTTP bool
	// ForceNewCluster starts the member as a one-member cluster from its
	// existing data, for exactly this start (quorum-loss recovery).
	ForceNewCluster bool
	// Services run once the member is ready.
	Services []Service
	// Notify sends a state to the service manager; nil means sd_notify,
	// which does nothing when NOTIFY_SOCKET is unset.
	Notify func(state string) error
	// Ready, when set, is called once the member serves clients.
	Ready func(e *embed.Etcd)
	// Warn receives each config warning before the member starts.
	Warn func(msg string)
}

// ErrRemoved is returned when the cluster removed this member while it ran.
var ErrRemoved = errors.New("this member was removed from the cluster")

// Prepare validates a config and builds the embed.Config, without starting
// anything. Run calls it; `config lint` and tests use it alone.
func Prepare(o Options) (*embed.Config, []string, error) {
	c := o.Config
	warnings, err := c.Validate(etcdconf.ValidateOptions{
		File: o.ConfigPath, Source: o.Source, CheckFiles: true, AllowInsecureHTTP: o.AllowInsecureHTTP,
	})
	if err != nil {
		return nil, warnings, err
	}
	cfg, err := c.Embed()
	if err != nil {
		return nil, warnings, fmt.Errorf("%s: %w", o.ConfigPath, err)
	}
	cfg.ForceNewCluster = o.ForceNewCluster
	// Structured JSON when a machine reads the log, readable lines on a
	// terminal, unless the operator chose.
	if c.LogFormat == "" && isatty.IsTerminal(os.Stderr.Fd()) {
		cfg.LogFormat = "console"
	}
	return cfg, warnings, nil
}

// Run starts the member and blocks until ctx ends (a clean stop, nil) or
// the member fails. The returned error names the member and the cause.
func Run(ctx context.Context, o Options) error {
	cfg, warnings, err := Prepare(o)
	for _, w := range warnings {
		if o.Warn != nil {
			o.Warn(w)
		}
	}
	if err != nil {
		return err
	}
	who := fmt.Sprintf("member %q", cfg.Name)
	if err := checkDataDirFree(cfg.Dir); err != nil {
		return fmt.Errorf("%s: %w", who, err)
	}
	notify := o.Notify
	if notify == nil {
		notify = func(state string) error {
			_, err := daemon.SdNotify(false, state)
			return err
		}
	}

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("%s: cannot start: %w", who, explainStartError(err))
	}
	lg := e.GetLogger()
	defer func() {
		_ = notify(daemon.SdNotifyStopping + "\nSTATUS=stopping")
		e.Close()
	}()
	// A member of a new cluster waits here for a quorum of its peers; say so
	// in `systemctl status`.
	_ = notify("STATUS=starting: waiting to join the cluster (a new cluster needs a quorum of its members started)")

	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		return fmt.Errorf("%s: %w", who, explainStartError(err))
	case <-e.Server.StopNotify():
		return fmt.Errorf("%s: stopped before it was ready: %w", who, stopCause(e))
	case <-ctx.Done():
		lg.Info("stop requested before the member was ready")
		return nil
	}
	// embed never calls sd_notify (etcdmain does): tell systemd only now,
	// when the member has joined its cluster and serves clients.
	if err := notify(daemon.SdNotifyReady + "\nSTATUS=serving clients on " + urlList(cfg.AdvertiseClientUrls)); err != nil {
		lg.Warn("sd_notify READY failed", zap.Error(err))
	}
	lg.Info("member is ready and serving clients", zap.String("name", cfg.Name))
	if o.Ready != nil {
		o.Ready(e)
	}

	svcCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, svc := range o.Services {
		go svc(svcCtx, e, lg)
	}

	select {
	case <-ctx.Done():
		lg.Info("stopping member", zap.String("name", cfg.Name))
		return nil
	case err := <-e.Err():
		return fmt.Errorf("%s: %w", who, err)
	case <-e.Server.StopNotify():
		return fmt.Errorf("%s: %w", who, stopCause(e))
	}
}

func urlList(us []url.URL) string {
	parts := make([]string, len(us))
	for i, u := range us {
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}

func stopCause(e *embed.Etcd) error {
	select {
	case err := <-e.Err():
		if err != nil {
			return err
		}
	default:
	}
	// etcd stops a member on its own when it learns it was removed.
	if e.Server.IsMemberExist(e.Server.MemberID()) {
		return errors.New("etcd server stopped")
	}
	return ErrRemoved
}

// explainStartError adds what an operator needs to the errors etcd returns
// at start-up.
func explainStartError(err error) error {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("%w (another process listens on that address; find it with `ss -ltnp`)", err)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return fmt.Errorf("%w (that IP address is not configured on this host)", err)
	case strings.Contains(err.Error(), "member count is unequal"), strings.Contains(err.Error(), "cluster ID mismatch"):
		return fmt.Errorf("%w (the data dir belongs to another cluster)", err)
	}
	return err
}

// checkDataDirFree refuses a data dir another process is using. bbolt waits
// forever for its file lock with no message, so a second member on the same
// data dir would just hang; test the lock without keeping it.
func checkDataDirFree(dir string) error {
	for _, f := range []string{filepath.Join(dir, "member", "snap", "db")} {
		fd, err := syscall.Open(f, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if errors.Is(err, syscall.ENOENT) {
			continue
		}
		if err != nil {
			return fmt.Errorf("data dir %s: %w", dir, err)
		}
		err = syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			_ = syscall.Flock(fd, syscall.LOCK_UN)
		}
		syscall.Close(fd)
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("data dir %s is in use by another running etcd member; stop it first (data dirs cannot be shared)", dir)
		}
	}
	return nil
}
