package testhosts

import (
	"strings"
	"testing"
)

// fakeSystemdDir holds the test double's state on the host: a log of
// every systemctl call, each unit's pid and enabled mark and its output
// (what journalctl shows).
const fakeSystemdDir = "/run/fake-systemd"

// fakeSystemdInit makes PID 1 (the init script's bash, renaming itself)
// look like systemd and installs the doubles in /usr/local/sbin, ahead of
// any real systemctl in PATH.
var fakeSystemdInit = "printf systemd > /proc/$$/comm\n" +
	"mkdir -p /run/systemd/system " + fakeSystemdDir + " /usr/local/sbin\n" +
	"cat > /usr/local/sbin/systemctl <<'FAKE_SYSTEMCTL'\n" + fakeSystemctl + "FAKE_SYSTEMCTL\n" +
	"cat > /usr/local/sbin/journalctl <<'FAKE_JOURNALCTL'\n" + fakeJournalctl + "FAKE_JOURNALCTL\n" +
	"chmod 0755 /usr/local/sbin/systemctl /usr/local/sbin/journalctl\n"

// fakeSystemctl implements the systemctl subset apply uses on units in
// /etc/systemd/system: daemon-reload, enable/disable [--now], start, stop,
// restart, is-enabled, is-active [--quiet], show -p MainPID --value.
// [--no-block] is accepted; every call is synchronous. A unit's ExecStart
// runs in its own session, its output appended to its journal file.
const fakeSystemctl = `#!/bin/bash
# A test double of systemctl (etcdkit internal/testhosts), not systemd.
st=/run/fake-systemd
echo "$*" >> "$st/calls"
now=; quiet=; prop=; cmd=; units=()
while [ $# -gt 0 ]; do
  case "$1" in
    --now) now=1 ;;
    --quiet|-q) quiet=1 ;;
    --no-block|--value|--no-pager) ;;
    -p) shift; prop=$1 ;;
    -*) echo "fake systemctl: unknown option $1" >&2; exit 2 ;;
    *) if [ -z "$cmd" ]; then cmd=$1; else units+=("${1%.service}"); fi ;;
  esac
  shift
done
unitfile() { echo "/etc/systemd/system/$1.service"; }
mainpid() {
  local p; p=$(cat "$st/$1.pid" 2>/dev/null)
  if [ -n "$p" ] && kill -0 "$p" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null; then echo "$p"; else echo 0; fi
}
start() {
  [ "$(mainpid "$1")" != 0 ] && return 0
  local f; f=$(unitfile "$1")
  if [ ! -f "$f" ]; then echo "Failed to start $1.service: Unit $1.service not found." >&2; return 5; fi
  local exec; exec=$(sed -n 's/^ExecStart=//p' "$f" | tail -n 1)
  ( cd / && exec setsid $exec ) </dev/null >>"$st/$1.journal" 2>&1 &
  echo $! > "$st/$1.pid"
}
stop() {
  local p; p=$(mainpid "$1")
  [ "$p" = 0 ] && return 0
  kill -TERM "$p"
  while kill -0 "$p" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null; do sleep 0.1; done
  rm -f "$st/$1.pid"
}
rc=0
case "$cmd" in
  daemon-reload) ;;
  enable) for u in "${units[@]}"; do touch "$st/$u.enabled"; [ -n "$now" ] && { start "$u" || rc=$?; }; done ;;
  disable) for u in "${units[@]}"; do rm -f "$st/$u.enabled"; [ -n "$now" ] && stop "$u"; done ;;
  start) for u in "${units[@]}"; do start "$u" || rc=$?; done ;;
  stop) for u in "${units[@]}"; do stop "$u"; done ;;
  restart) for u in "${units[@]}"; do stop "$u"; start "$u" || rc=$?; done ;;
  is-enabled) for u in "${units[@]}"; do if [ -f "$st/$u.enabled" ]; then echo enabled; else echo disabled; rc=1; fi; done ;;
  is-active) for u in "${units[@]}"; do if [ "$(mainpid "$u")" != 0 ]; then [ -z "$quiet" ] && echo active; else [ -z "$quiet" ] && echo inactive; rc=3; fi; done ;;
  show) for u in "${units[@]}"; do case "$prop" in MainPID) mainpid "$u" ;; *) echo "fake systemctl: show -p $prop" >&2; rc=2 ;; esac; done ;;
  *) echo "fake systemctl: $cmd is not faked" >&2; rc=2 ;;
esac
exit $rc
`

// fakeJournalctl shows the end of a unit's output: journalctl -u UNIT
// [-n N] [--no-pager].
const fakeJournalctl = `#!/bin/bash
# A test double of journalctl (etcdkit internal/testhosts).
u=; n=10
while [ $# -gt 0 ]; do
  case "$1" in
    -u) shift; u=${1%.service} ;;
    -n) shift; n=$1 ;;
  esac
  shift
done
tail -n "$n" "/run/fake-systemd/$u.journal" 2>/dev/null
`

// SystemctlCalls are the systemctl command lines run on a host made by
// AddFakeSystemd, in order.
func (h *Host) SystemctlCalls(t testing.TB) []string {
	t.Helper()
	b, _ := h.ReadFile(t, fakeSystemdDir+"/calls")
	s := strings.TrimSpace(string(b))
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
