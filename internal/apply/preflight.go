package apply

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Limits preflight enforces.
const (
	// MaxClockSkew is how far apart the hosts' and this machine's clocks
	// may be: etcd's leases and TLS validity assume clocks agree.
	MaxClockSkew = time.Second
	// MinDiskFree refuses a data dir's file system with less room.
	MinDiskFree = 256 << 20
	// defaultQuota is etcd's backend quota when the spec sets none.
	defaultQuota = 2 << 30
)

// preflightPhase refuses, before anything changes anywhere, what would
// fail or do harm half-way: a binary that cannot run on a host, a port
// another program holds, a data dir of another cluster, clocks that
// disagree, too little disk, members to remove without --allow-remove. It
// reports every problem of every host at once.
type preflightPhase struct{}

func (preflightPhase) Title() string { return "Preflight checks" }

func (preflightPhase) Run(_ context.Context, r *run) error {
	errs := append([]error(nil), r.problems...)
	var plain []string
	arch, archErr := binaryArch(r.o.Binary)
	if archErr != nil {
		errs = append(errs, fmt.Errorf("the etcdkit binary to install, %s: %w; pass --binary with a Linux etcdkit built for the hosts", r.o.Binary, archErr))
	}
	for _, h := range r.hosts {
		errs = append(errs, h.problems...)
		if archErr == nil && !sameArch(arch, h.facts.Arch) {
			errs = append(errs, h.errorf("the host is %s but %s is built for %s; pass --binary with an etcdkit built for %s (GOARCH=%s)", h.facts.Arch, r.o.Binary, arch, h.facts.Arch, goarch(h.facts.Arch)))
		}
		errs = append(errs, portProblems(h)...)
		if err := clockProblem(h); err != nil {
			errs = append(errs, err)
		}
		errs = append(errs, r.diskProblem(h)...)
		if !h.facts.Systemd {
			plain = append(plain, h.name())
		}
	}
	if len(plain) > 0 {
		r.note(nil, "no systemd on %s: the member runs as a detached `etcdkit member run` (pid file %s, log %s); nothing restarts it after a crash or a reboot but running apply again",
			strings.Join(plain, ", "), PIDFile, LogFile)
	}
	if err := clockSpread(r.hosts); err != nil {
		errs = append(errs, err)
	}
	if r.membershipChanges() {
		if err := writableDir(r.o.BackupDir); err != nil {
			errs = append(errs, fmt.Errorf("the snapshot taken before each membership change goes to %s on this machine: %w; choose another with --backup-dir", r.o.BackupDir, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	r.note(nil, "all %d hosts passed", len(r.hosts))
	return nil
}

func (preflightPhase) Recovery(r *run, _ error) string {
	return "fix the problems above, then run `" + r.o.Rerun + "` again"
}

// membershipChanges reports whether the run will add or remove members.
func (r *run) membershipChanges() bool {
	return len(r.byRole(roleJoin)) > 0 || len(r.learners()) > 0 || (r.o.AllowRemove && len(r.extra) > 0)
}

// portProblems refuses a member port held by anything but the member.
func portProblems(h *host) []error {
	var errs []error
	for _, p := range []int{h.clientPort(), h.peerPort()} {
		l, ok := h.facts.Listening[p]
		if !ok {
			continue
		}
		ours := h.obs.Running && (l.PID == 0 || l.PID == h.obs.PID)
		if ours {
			continue
		}
		who := "another program"
		if l.Process != "" {
			who = fmt.Sprintf("%s (pid %d)", l.Process, l.PID)
		}
		why := "stop it, or give the member another port in the spec"
		if l.Process == "etcdkit" || l.Process == "etcd" {
			why = "an etcd member apply did not start holds it (apply's own run from " + PIDFile + " or the " + UnitName + " unit); stop it, or give the member another port in the spec"
		}
		errs = append(errs, h.errorf("port %d (%s) is in use by %s; %s", p, l.Addr, who, why))
	}
	return errs
}

// clockProblem refuses a host whose clock is surely more than MaxClockSkew
// off this machine's: the measurement's own uncertainty is given the
// benefit of the doubt, so a loaded link does not cause a refusal.
func clockProblem(h *host) error {
	off, unc := h.facts.ClockOffset, h.facts.ClockUncertainty
	if abs(off)-unc <= MaxClockSkew {
		return nil
	}
	dir := "ahead of"
	if off < 0 {
		dir = "behind"
	}
	return h.errorf("its clock is %s %s this machine's (±%s); etcd members need clocks within %s of each other (leases, certificate validity): synchronise it (chrony, systemd-timesyncd), then run apply again",
		abs(off).Round(time.Millisecond), dir, unc.Round(time.Millisecond), MaxClockSkew)
}

// clockSpread refuses hosts whose clocks are surely more than MaxClockSkew
// apart from each other, even if each is close enough to this machine's.
func clockSpread(hosts []*host) error {
	var lo, hi *host
	for _, h := range hosts {
		if lo == nil || h.facts.ClockOffset < lo.facts.ClockOffset {
			lo = h
		}
		if hi == nil || h.facts.ClockOffset > hi.facts.ClockOffset {
			hi = h
		}
	}
	if lo == nil {
		return nil
	}
	spread := hi.facts.ClockOffset - lo.facts.ClockOffset
	if spread-hi.facts.ClockUncertainty-lo.facts.ClockUncertainty <= MaxClockSkew {
		return nil
	}
	return fmt.Errorf("the clocks of %s and %s are %s apart; etcd members need clocks within %s of each other: synchronise them (chrony, systemd-timesyncd), then run apply again",
		hi.name(), lo.name(), spread.Round(time.Millisecond), MaxClockSkew)
}

func abs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// diskProblem refuses a data dir with almost no room, and warns about one
// with less room than the backend quota.
func (r *run) diskProblem(h *host) []error {
	free := h.facts.DiskFree
	if free == 0 && h.facts.DiskPath == "" {
		return nil // df unavailable: nothing to judge by
	}
	if free < MinDiskFree {
		return []error{h.errorf("only %s free on %s (for data dir %s); etcd needs room for its WAL and database: free some, or choose another dataDir", humanBytes(free), h.facts.DiskPath, h.obs.DataDir)}
	}
	quota := uint64(r.c.Tuning.QuotaBackendBytes)
	if quota == 0 {
		quota = defaultQuota
	}
	if free < quota {
		r.warn("%s: only %s free on %s, less than the backend quota (%s): the member may run out of disk before etcd raises its NOSPACE alarm", h.name(), humanBytes(free), h.facts.DiskPath, humanBytes(quota))
	}
	return nil
}

// binaryArch is the machine a Linux ELF binary runs on, as uname -m says.
func binaryArch(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", fmt.Errorf("not a Linux executable: %w", err)
	}
	defer f.Close()
	switch f.Machine {
	case elf.EM_X86_64:
		return "x86_64", nil
	case elf.EM_AARCH64:
		return "aarch64", nil
	case elf.EM_386:
		return "i686", nil
	case elf.EM_ARM:
		return "armv7l", nil
	case elf.EM_PPC64:
		return "ppc64le", nil
	case elf.EM_S390:
		return "s390x", nil
	case elf.EM_RISCV:
		return "riscv64", nil
	}
	return f.Machine.String(), nil
}

// sameArch compares uname -m spellings.
func sameArch(bin, host string) bool {
	norm := map[string]string{"arm64": "aarch64", "amd64": "x86_64", "i386": "i686", "i586": "i686", "armv6l": "armv7l", "armv8l": "armv7l"}
	if n, ok := norm[host]; ok {
		host = n
	}
	return host == "" || bin == host
}

// goarch names GOARCH for a uname -m value, for the message.
func goarch(uname string) string {
	switch uname {
	case "x86_64":
		return "amd64"
	case "aarch64", "arm64":
		return "arm64"
	case "i686", "i386":
		return "386"
	case "armv7l", "armv6l":
		return "arm"
	}
	return uname
}

// writableDir says why dir cannot be created or written to, or nil.
func writableDir(dir string) error {
	if dir == "" {
		return errors.New("no directory given")
	}
	d := filepath.Clean(dir)
	for {
		fi, err := os.Stat(d)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("%s is not a directory", d)
			}
			if err := unix.Access(d, unix.W_OK); err != nil {
				return fmt.Errorf("%s is not writable: %w", d, err)
			}
			return nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return err
		}
		d = parent
	}
}
