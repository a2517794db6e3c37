package local

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/etcdkit/etcdkit/internal/fsutil"
	"github.com/etcdkit/etcdkit/internal/member"
	"github.com/etcdkit/etcdkit/internal/spec"
)

// Lock takes d for this process, so two `up` never run on one directory.
// The lock dies with the process.
func (d Dir) Lock() (unlock func(), err error) {
	if err := fsutil.MkdirAll(string(d)); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(d.lockFile(), os.O_CREATE|os.O_RDWR|syscall.O_CLOEXEC, fsutil.PrivateFile)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		pid, _ := os.ReadFile(d.lockFile())
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("another `etcdkit up` is running on %s (pid %s); stop it with Ctrl-C first", d, string(pid))
		}
		return nil, err
	}
	_ = f.Truncate(0)
	_, _ = f.WriteString(strconv.Itoa(os.Getpid()))
	return func() { f.Close() }, nil
}

// Exit is the end of a member process.
type Exit struct {
	Name string
	// Err is nil for a clean exit.
	Err error
	// Expected is true when the supervisor asked the member to stop.
	Expected bool
	// Removed is true when the member stopped because it was removed
	// from the cluster.
	Removed bool
	Log     string
	// LogTail is the last lines of the member's log, for the report.
	LogTail []string
}

// Supervisor runs the members of a local cluster as child processes.
type Supervisor struct {
	dir   Dir
	exe   string
	exits chan Exit

	mu       sync.Mutex
	procs    map[string]*exec.Cmd
	stopping map[string]bool
	wg       sync.WaitGroup
}

// NewSupervisor prepares to run members with exe (the etcdkit binary).
func NewSupervisor(d Dir, exe string) *Supervisor {
	return &Supervisor{
		dir: d, exe: exe,
		exits:    make(chan Exit, 64),
		procs:    map[string]*exec.Cmd{},
		stopping: map[string]bool{},
	}
}

// Exits reports every member process that ends.
func (s *Supervisor) Exits() <-chan Exit { return s.exits }

// StartAll starts every member of the spec that is not running, one after
// the other without waiting for readiness (a member of a new cluster is not
// ready until a quorum is up). Each start waits briefly until the previous
// member serves its peer port: a starting member asks its peers whether it
// was already bootstrapped, and a peer that listens but does not serve yet
// costs it a one-second timeout per peer, while a refused or answered
// connection costs nothing.
func (s *Supervisor) StartAll(c *spec.Cluster) error {
	var errs []error
	for _, m := range c.Members {
		if err := s.Start(m.Name); err != nil {
			errs = append(errs, err)
			continue
		}
		waitServing(m.PeerURL, 2*time.Second, func() bool { return s.Running(m.Name) })
	}
	return errors.Join(errs...)
}

// waitServing waits until a TLS listener answers a handshake (with any
// result), the process stops, or the time is up.
func waitServing(rawURL string, limit time.Duration, alive func() bool) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return
	}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && alive() {
		conn, err := net.DialTimeout("tcp", u.Host, 100*time.Millisecond)
		if err == nil {
			tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true})
			_ = tc.SetDeadline(time.Now().Add(100 * time.Millisecond))
			herr := tc.Handshake()
			tc.Close()
			var ne net.Error
			if herr == nil || !(errors.As(herr, &ne) && ne.Timeout()) {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Running reports whether a member process is running.
func (s *Supervisor) Running(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.procs[name]
	return ok
}

// Start starts one member as `etcdkit member run --config ...`, logging to
// its member.log.
func (s *Supervisor) Start(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, running := s.procs[name]; running {
		return nil
	}
	md := s.dir.Member(name)
	logf, err := os.OpenFile(md.Log(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, fsutil.PrivateFile)
	if err != nil {
		return fmt.Errorf("member %q: %w", name, err)
	}
	cmd := exec.Command(s.exe, "member", "run", "--config", md.Config())
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET=")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Own process group: a terminal's Ctrl-C reaches `up` only, and
		// `up` stops members in order. Pdeathsig stops them if `up` is
		// killed outright.
		Setpgid:   true,
		Pdeathsig: syscall.SIGTERM,
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("member %q: start %s: %w", name, s.exe, err)
	}
	logf.Close()
	_ = fsutil.WriteFile(md.PIDFile(), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), fsutil.PublicFile)
	s.procs[name] = cmd
	delete(s.stopping, name)
	s.wg.Add(1)
	go s.wait(name, cmd)
	return nil
}

func (s *Supervisor) wait(name string, cmd *exec.Cmd) {
	defer s.wg.Done()
	err := cmd.Wait()
	s.mu.Lock()
	expected := s.stopping[name]
	delete(s.procs, name)
	s.mu.Unlock()
	md := s.dir.Member(name)
	os.Remove(md.PIDFile())
	e := Exit{Name: name, Err: err, Expected: expected, Log: md.Log(), LogTail: tail(md.Log(), 5)}
	for _, l := range e.LogTail {
		if strings.Contains(l, member.ErrRemoved.Error()) {
			e.Removed = true
		}
	}
	s.exits <- e
}

// Stop asks one member to stop (SIGTERM), and kills it after grace.
func (s *Supervisor) Stop(name string, grace time.Duration) {
	s.mu.Lock()
	cmd, ok := s.procs[name]
	if ok {
		s.stopping[name] = true
	}
	s.mu.Unlock()
	if !ok {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		for s.Running(name) {
			time.Sleep(20 * time.Millisecond)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done
	}
}

// StopAll stops every member and waits for them: first all but those in
// last, at once, then those in last. Pass the leader as last: a leader that
// stops while its followers are connected hands leadership over, and if they
// are stopping too it waits seconds for a transfer that cannot finish.
func (s *Supervisor) StopAll(last []string, grace time.Duration) {
	s.mu.Lock()
	var first []string
	for n := range s.procs {
		if !slices.Contains(last, n) {
			first = append(first, n)
		}
	}
	s.mu.Unlock()
	for _, group := range [][]string{first, last} {
		var wg sync.WaitGroup
		for _, n := range group {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.Stop(n, grace)
			}()
		}
		wg.Wait()
	}
	s.wg.Wait()
}

func tail(path string, n int) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return lines
}
