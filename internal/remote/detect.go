package remote

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Facts are what apply needs to know about a host before it changes it.
type Facts struct {
	OS       OSRelease
	Arch     string // uname -m
	Kernel   string // uname -r
	Hostname string
	// Init is PID 1's command name ("systemd", "init", "bash", ...).
	Init string
	// Systemd is true when systemd is PID 1 and running the system (the
	// sd_booted test: /run/systemd/system exists), so units can be
	// enabled; otherwise apply uses its detached-process fallback.
	Systemd bool
	// Listening maps each asked-for port that something listens on (TCP,
	// any address) to who: the process name and pid when `ss -p` can tell.
	Listening map[int]Listener
	// DiskPath is the data directory, or its nearest existing ancestor,
	// whose file system DiskFree measures.
	DiskPath string
	DiskFree uint64 // bytes available (df "Available")
	// ClockOffset is the host's clock minus the operator's, measured over
	// SSH; ClockUncertainty bounds the measurement error (half the best
	// round trip).
	ClockOffset      time.Duration
	ClockUncertainty time.Duration
}

// OSRelease is the part of /etc/os-release apply reports.
type OSRelease struct {
	ID         string // debian, ubuntu, rhel, ...
	IDLike     string
	VersionID  string
	PrettyName string
}

// Listener is a process listening on a port.
type Listener struct {
	Addr    string // local address, e.g. 10.0.0.2:2379 or *:2379
	Process string // "etcdkit"; empty when unknown
	PID     int
}

func (l Listener) String() string {
	if l.Process == "" {
		return l.Addr
	}
	return fmt.Sprintf("%s (%s, pid %d)", l.Addr, l.Process, l.PID)
}

// DetectOptions says what to look at.
type DetectOptions struct {
	// Ports are checked for listeners (etcd's 2379 and 2380).
	Ports []int
	// DataDir's file system is measured for free space.
	DataDir string
}

// Detect gathers a host's facts with one command (and a few clock
// probes). It only reads, so it runs in dry-run mode too.
func (c *Conn) Detect(ctx context.Context, o DetectOptions) (*Facts, error) {
	dataDir := o.DataDir
	if dataDir == "" {
		dataDir = "/"
	}
	res, err := c.run(ctx, detectScript(dataDir), nil, true)
	if err != nil {
		return nil, err
	}
	f, err := parseFacts(res.Stdout, o.Ports)
	if err != nil {
		return nil, c.host.errorf("detect: %w", err)
	}
	if f.ClockOffset, f.ClockUncertainty, err = c.clockOffset(ctx); err != nil {
		return nil, err
	}
	return f, nil
}

// detectScript prints sections headed "@name". Each probe tolerates a
// missing tool, so one minimal host does not fail the whole detection.
func detectScript(dataDir string) string {
	return strings.Join([]string{
		"echo @os-release; cat /etc/os-release 2>/dev/null",
		"echo @uname; uname -m; uname -r",
		"echo @hostname; cat /proc/sys/kernel/hostname 2>/dev/null || hostname",
		"echo @pid1; cat /proc/1/comm 2>/dev/null",
		"echo @systemd; if [ -d /run/systemd/system ]; then echo yes; else echo no; fi",
		"echo @tcp; cat /proc/net/tcp /proc/net/tcp6 2>/dev/null",
		"echo @ss; ss -Htlnp 2>/dev/null",
		fmt.Sprintf("echo @df; d=%s; while [ ! -e \"$d\" ]; do d=$(dirname -- \"$d\"); done; echo \"$d\"; df -Pk -- \"$d\" | tail -n 1", Quote(dataDir)),
		"true",
	}, "\n")
}

// Sections splits the output of a script that prints sections headed by a
// line "@name" (as Detect's does) into each section's lines. Lines before
// the first heading are under "".
func Sections(out string) (map[string][]string, error) {
	sections := map[string][]string{}
	cur := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "@") && !strings.Contains(line, " ") {
			cur = line[1:]
			continue
		}
		sections[cur] = append(sections[cur], line)
	}
	return sections, sc.Err()
}

func parseFacts(out string, ports []int) (*Facts, error) {
	sections, err := Sections(out)
	if err != nil {
		return nil, err
	}
	f := &Facts{Listening: map[int]Listener{}}
	f.OS = parseOSRelease(sections["os-release"])
	if u := sections["uname"]; len(u) >= 2 {
		f.Arch, f.Kernel = strings.TrimSpace(u[0]), strings.TrimSpace(u[1])
	}
	if h := sections["hostname"]; len(h) > 0 {
		f.Hostname = strings.TrimSpace(h[0])
	}
	if p := sections["pid1"]; len(p) > 0 {
		f.Init = strings.TrimSpace(p[0])
	}
	f.Systemd = f.Init == "systemd" && len(sections["systemd"]) > 0 && sections["systemd"][0] == "yes"

	want := map[int]bool{}
	for _, p := range ports {
		want[p] = true
	}
	for _, l := range parseProcNetTCP(sections["tcp"]) {
		if want[l.port] {
			if _, ok := f.Listening[l.port]; !ok {
				f.Listening[l.port] = Listener{Addr: l.addr}
			}
		}
	}
	// ss adds who listens; /proc/net/tcp alone says only that someone does.
	for _, l := range parseSS(sections["ss"]) {
		if want[l.port] {
			f.Listening[l.port] = l.Listener
		}
	}

	if d := sections["df"]; len(d) >= 2 {
		f.DiskPath = strings.TrimSpace(d[0])
		fields := strings.Fields(d[1])
		if len(fields) >= 4 {
			kb, err := strconv.ParseUint(fields[3], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("df output %q: %w", d[1], err)
			}
			f.DiskFree = kb * 1024
		}
	}
	return f, nil
}

func parseOSRelease(lines []string) OSRelease {
	var r OSRelease
	for _, l := range lines {
		k, v, ok := strings.Cut(strings.TrimSpace(l), "=")
		if !ok {
			continue
		}
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		} else {
			v = strings.Trim(v, `'"`)
		}
		switch k {
		case "ID":
			r.ID = v
		case "ID_LIKE":
			r.IDLike = v
		case "VERSION_ID":
			r.VersionID = v
		case "PRETTY_NAME":
			r.PrettyName = v
		}
	}
	return r
}

type portListener struct {
	port int
	addr string
	Listener
}

// parseProcNetTCP reads listening sockets from /proc/net/tcp{,6}: state
// 0A is LISTEN, local_address is hex IP (host byte order words) and port.
func parseProcNetTCP(lines []string) []portListener {
	var out []portListener
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 4 || f[3] != "0A" {
			continue
		}
		ipHex, portHex, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		port, err := strconv.ParseUint(portHex, 16, 16)
		if err != nil {
			continue
		}
		ip := procIP(ipHex)
		addr := net.JoinHostPort(ip, strconv.Itoa(int(port)))
		out = append(out, portListener{port: int(port), addr: addr, Listener: Listener{Addr: addr}})
	}
	return out
}

// procIP decodes /proc/net/tcp's address: 32-bit words in host (little
// endian on every architecture etcd runs on) byte order.
func procIP(h string) string {
	b, err := hex.DecodeString(h)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return h
	}
	ip := make(net.IP, len(b))
	for i := 0; i < len(b); i += 4 {
		ip[i], ip[i+1], ip[i+2], ip[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	if ip.IsUnspecified() {
		return "*"
	}
	return ip.String()
}

var ssUsers = regexp.MustCompile(`\("([^"]*)",pid=(\d+)`)

// parseSS reads `ss -Htlnp`: State Recv-Q Send-Q Local Peer [Process].
func parseSS(lines []string) []portListener {
	var out []portListener
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		local := f[3]
		i := strings.LastIndex(local, ":")
		if i < 0 {
			continue
		}
		port, err := strconv.Atoi(local[i+1:])
		if err != nil {
			continue
		}
		pl := portListener{port: port, addr: local, Listener: Listener{Addr: local}}
		if m := ssUsers.FindStringSubmatch(l); m != nil {
			pl.Process = m[1]
			pl.PID, _ = strconv.Atoi(m[2])
		}
		out = append(out, pl)
	}
	return out
}

// clockOffset estimates the host clock minus ours: read the remote clock
// between two local readings and assume it was read at the midpoint. The
// probe with the shortest round trip wins; half of it bounds the error.
func (c *Conn) clockOffset(ctx context.Context) (time.Duration, time.Duration, error) {
	type sample struct{ offset, rtt time.Duration }
	var samples []sample
	for range 3 {
		t0 := time.Now()
		res, err := c.run(ctx, "date +%s%N", nil, false)
		t1 := time.Now()
		if err != nil {
			return 0, 0, err
		}
		ns, err := strconv.ParseInt(strings.TrimSpace(res.Stdout), 10, 64)
		if err != nil {
			return 0, 0, c.host.errorf("read clock: `date +%%s%%N` printed %q", res.Stdout)
		}
		rtt := t1.Sub(t0)
		mid := t0.Add(rtt / 2)
		samples = append(samples, sample{time.Unix(0, ns).Sub(mid), rtt})
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i].rtt < samples[j].rtt })
	return samples[0].offset, samples[0].rtt / 2, nil
}
