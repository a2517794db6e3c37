package apply

import (
	"context"
	"fmt"
	"strings"

	"github.com/etcdkit/etcdkit/internal/remote"
)

// How a member is started, stopped and restarted: through systemd where it
// is PID 1, otherwise as a detached `etcdkit member run` with a pid file
// (the fallback). Every one goes through RunChange, so a dry run records
// it. systemd starts without blocking (--no-block): a member of a new
// cluster reports ready only once a quorum runs, so waiting on each in
// turn would wait forever; the health phase waits instead.

// memberCommand is what runs the member, under systemd or detached.
var memberCommand = BinaryPath + " member run --config " + ConfigPath

// startMember starts the member if it does not run.
func startMember(ctx context.Context, h *host) error {
	if h.facts.Systemd {
		return h.conn.RunChange(ctx, fmt.Sprintf("enable and start etcd (systemctl enable --now %s)", UnitName),
			"systemctl enable --now --no-block "+UnitName)
	}
	return h.conn.RunChange(ctx, fmt.Sprintf("start etcd: `%s` detached, pid file %s, log %s (no systemd: nothing restarts it after a crash or reboot)", memberCommand, PIDFile, LogFile),
		fallbackStart)
}

// restartMember restarts a running member so it reads changed files.
func restartMember(ctx context.Context, h *host, why string) error {
	if h.facts.Systemd {
		return h.conn.RunChange(ctx, fmt.Sprintf("restart etcd (%s)", why), "systemctl restart --no-block "+UnitName)
	}
	return h.conn.RunChange(ctx, fmt.Sprintf("restart etcd (%s)", why), fallbackStop+"\n"+fallbackStart)
}

// enableMember makes systemd start a running member at boot.
func enableMember(ctx context.Context, h *host) error {
	return h.conn.RunChange(ctx, "enable etcd at boot (systemctl enable "+UnitName+")", "systemctl enable "+UnitName)
}

// logTail is the end of the member's log, for a failure message.
func logTail(ctx context.Context, h *host) string {
	cmd := "tail -n 15 " + remote.Quote(LogFile)
	if h.facts.Systemd {
		cmd = "journalctl -u " + UnitName + " -n 15 --no-pager"
	}
	res, err := h.conn.Run(ctx, cmd+" 2>&1")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(res.Stdout)
}

// fallbackOurs is a shell test that pid $p is our live member.
var fallbackOurs = fmt.Sprintf(`[ -n "$p" ] && kill -0 "$p" 2>/dev/null && ! grep -q '^State:.*Z' /proc/"$p"/status 2>/dev/null && tr '\0' ' ' </proc/"$p"/cmdline | grep -qF -- %s`,
	remote.Quote("member run --config "+ConfigPath))

// fallbackStart starts the member in its own session (so the SSH session
// ending or being killed does not end it), its output appended to the log,
// its pid in the pid file; it does nothing when the member runs. It fails
// with the log's end when the member exits at once (a config it refuses).
var fallbackStart = fmt.Sprintf(`set -e
pidf=%[1]s; log=%[2]s
mkdir -p "$(dirname "$pidf")" "$(dirname "$log")"
chmod 0700 "$(dirname "$pidf")" "$(dirname "$log")"
p=; if [ -f "$pidf" ]; then p=$(cat "$pidf"); fi
if %[3]s; then exit 0; fi
cd /
setsid %[4]s </dev/null >>"$log" 2>&1 &
p=$!
echo "$p" > "$pidf.tmp"; mv -f "$pidf.tmp" "$pidf"
i=0
while [ $i -lt 10 ]; do
  sleep 0.2
  if ! kill -0 "$p" 2>/dev/null || grep -q '^State:.*Z' /proc/"$p"/status 2>/dev/null; then
    rm -f "$pidf"
    echo "etcdkit member run exited at once; the end of $log:" >&2
    tail -n 15 "$log" >&2
    exit 1
  fi
  i=$((i+1))
done`, remote.Quote(PIDFile), remote.Quote(LogFile), fallbackOurs, memberCommand)

// fallbackStop stops the member cleanly (SIGTERM; etcd closes its WAL and
// database), killing it only if it has not stopped in 60 s.
var fallbackStop = fmt.Sprintf(`pidf=%[1]s
p=; if [ -f "$pidf" ]; then p=$(cat "$pidf"); fi
if %[2]s; then
  kill -TERM "$p"
  i=0
  while kill -0 "$p" 2>/dev/null && ! grep -q '^State:.*Z' /proc/"$p"/status 2>/dev/null; do
    i=$((i+1))
    if [ $i -eq 600 ]; then kill -KILL "$p"; fi
    sleep 0.1
  done
fi
rm -f "$pidf"`, remote.Quote(PIDFile), fallbackOurs)
