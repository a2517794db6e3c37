package apply

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/etcdkit/etcdkit/internal/remote"
)

// observed is the etcd side of a host as one read-only command found it:
// its data dir, its record, its config and whether its member runs.
type observed struct {
	DataDir string
	Data    dataKind
	// Entries are the data dir's first entries, for messages.
	Entries []string
	// WAL is who the data dir's write-ahead log says it belongs to; WALErr
	// says why that could not be read.
	WAL    *walIdentity
	WALErr error
	// Record is apply's record of the member (RecordPath); RecordErr says
	// why a record that is there could not be read.
	Record    *memberRecord
	RecordErr error
	// Config is the member's current config file, nil when there is none.
	Config []byte
	// Running is set when the member runs: under systemd (the unit is
	// active) or as the fallback's process (its pid file names a live
	// `member run` of our config). PID and Started describe it.
	Running bool
	PID     int
	Started time.Time
	// Enabled: the unit is enabled (systemd hosts).
	Enabled bool
	// MTimes of the files a member reads only at start (config, binary,
	// CA bundle), on the host's clock as Started is.
	MTimes map[string]time.Time
}

type dataKind int

const (
	dataMissing dataKind = iota // no data dir: a new member
	dataEmpty                   // an empty directory: a new member
	dataEtcd                    // member/wal holds WAL files
	dataOther                   // files that are not an etcd data dir
)

// newerThanProcess names the files the running member read before they
// last changed: it must restart to use them.
func (o *observed) newerThanProcess() []string {
	if !o.Running || o.Started.IsZero() {
		return nil
	}
	var out []string
	for _, p := range []string{ConfigPath, BinaryPath} {
		if t, ok := o.MTimes[p]; ok && t.After(o.Started) {
			out = append(out, p)
		}
	}
	for p, t := range o.MTimes {
		if p != ConfigPath && p != BinaryPath && t.After(o.Started) {
			out = append(out, p)
		}
	}
	return out
}

// observe reads the host's etcd state with one command. It only reads, so
// it runs in a dry run too.
func observe(ctx context.Context, c *remote.Conn, dataDir, caFile string, systemd bool) (*observed, error) {
	res, err := c.Run(ctx, observeScript(dataDir, caFile, systemd))
	if err != nil {
		return nil, err
	}
	o, err := parseObserved(res.Stdout, dataDir)
	if err != nil {
		return nil, fmt.Errorf("read the host's etcd state: %w", err)
	}
	return o, nil
}

// observeScript prints sections headed "@name"; binary content travels as
// base64 on one line.
func observeScript(dataDir, caFile string, systemd bool) string {
	q := remote.Quote
	proc := fmt.Sprintf(`p=; if [ -f %[1]s ]; then p=$(cat %[1]s); fi
if [ -n "$p" ] && kill -0 "$p" 2>/dev/null && ! grep -q '^State:.*Z' /proc/"$p"/status 2>/dev/null && tr '\0' ' ' </proc/"$p"/cmdline | grep -qF -- %[2]s; then pid=$p; fi`,
		q(PIDFile), q("member run --config "+ConfigPath))
	if systemd {
		proc = fmt.Sprintf(`echo "enabled $(systemctl is-enabled %[1]s 2>/dev/null)"
if systemctl is-active --quiet %[1]s; then pid=$(systemctl show -p MainPID --value %[1]s); [ "$pid" = 0 ] && pid=; fi`, UnitName)
	}
	return strings.Join([]string{
		"echo @now; date +%s",
		fmt.Sprintf("echo @data; d=%s; if [ -d \"$d\" ]; then echo dir; ls -A -- \"$d\" | head -n 20; elif [ -e \"$d\" ]; then echo notdir; else echo missing; fi", q(dataDir)),
		fmt.Sprintf("echo @wal; w=%s; if [ -d \"$w\" ]; then f=$(ls -- \"$w\" | grep '[.]wal$' | sort | head -n 1); if [ -n \"$f\" ]; then head -c 4096 -- \"$w/$f\" | base64 | tr -d '\\n'; echo; fi; fi", q(dataDir+"/member/wal")),
		fmt.Sprintf("echo @record; if [ -f %[1]s ]; then base64 < %[1]s | tr -d '\\n'; echo; fi", q(RecordPath)),
		fmt.Sprintf("echo @config; if [ -f %[1]s ]; then base64 < %[1]s | tr -d '\\n'; echo; fi", q(ConfigPath)),
		"echo @proc; pid=",
		proc,
		`if [ -n "$pid" ]; then echo "pid $pid $(ps -o etimes= -p "$pid" | tr -d ' ')"; fi`,
		fmt.Sprintf("echo @mtime; for f in %s %s %s; do if [ -f \"$f\" ]; then echo \"$(stat -L -c %%Y -- \"$f\") $f\"; fi; done", q(ConfigPath), q(BinaryPath), q(caFile)),
		"true",
	}, "\n")
}

func parseObserved(out, dataDir string) (*observed, error) {
	sections, err := remote.Sections(out)
	if err != nil {
		return nil, err
	}
	o := &observed{DataDir: dataDir, MTimes: map[string]time.Time{}}
	now := time.Now()
	if n := sections["now"]; len(n) > 0 {
		if s, err := strconv.ParseInt(strings.TrimSpace(n[0]), 10, 64); err == nil {
			now = time.Unix(s, 0)
		}
	}
	if d := sections["data"]; len(d) > 0 {
		switch d[0] {
		case "dir":
			o.Entries = d[1:]
			o.Data = dataEmpty
			if len(o.Entries) > 0 {
				o.Data = dataOther
			}
		case "notdir":
			o.Data = dataOther
			o.Entries = []string{"(not a directory)"}
		}
	}
	if w := sections["wal"]; len(w) > 0 && w[0] != "" {
		o.Data = dataEtcd
		head, err := base64.StdEncoding.DecodeString(w[0])
		if err == nil {
			o.WAL, err = readWALIdentity(head)
		}
		o.WALErr = err
	}
	if rec := sections["record"]; len(rec) > 0 && rec[0] != "" {
		b, err := base64.StdEncoding.DecodeString(rec[0])
		if err == nil {
			var mr memberRecord
			if err = json.Unmarshal(b, &mr); err == nil {
				o.Record = &mr
			}
		}
		if err != nil {
			o.RecordErr = fmt.Errorf("%s: %w", RecordPath, err)
		}
	}
	if cfg := sections["config"]; len(cfg) > 0 {
		b, err := base64.StdEncoding.DecodeString(cfg[0])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ConfigPath, err)
		}
		o.Config = b
	}
	for _, l := range sections["proc"] {
		f := strings.Fields(l)
		switch {
		case len(f) >= 2 && f[0] == "enabled":
			o.Enabled = f[1] == "enabled"
		case len(f) >= 2 && f[0] == "pid":
			o.Running = true
			o.PID, _ = strconv.Atoi(f[1])
			if len(f) >= 3 {
				if secs, err := strconv.ParseInt(f[2], 10, 64); err == nil {
					o.Started = now.Add(-time.Duration(secs) * time.Second)
				}
			}
		}
	}
	for _, l := range sections["mtime"] {
		ts, p, ok := strings.Cut(l, " ")
		if !ok {
			continue
		}
		if s, err := strconv.ParseInt(ts, 10, 64); err == nil {
			o.MTimes[p] = time.Unix(s, 0)
		}
	}
	return o, nil
}
