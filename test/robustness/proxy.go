package robustness

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Network is a set of raw TCP proxies, one in front of each member's peer
// port, that can cut a member off from the others and heal it. Members
// advertise the proxy as their peer URL, so every peer connection passes
// through one; TLS passes through untouched.
//
// Cutting a member off needs both directions. etcd's peers talk over
// connections either side opens (each member dials the others to read
// their stream and to post messages), so blocking only the connections
// into a member leaves it talking through the ones it opens. A proxy
// therefore learns which member opened each connection: on Linux, the
// kernel's socket table (/proc/net/tcp) names the socket at the other end
// by inode, and /proc/PID/fd says which member process holds it.
//
// A connection that involves a cut-off member stops moving bytes in both
// directions, as on a network that drops packets: TCP buffers fill, writes
// block, etcd's timeouts fire. New connections are accepted and then
// stall. Healing lets every byte through again.
type Network struct {
	mu       sync.Mutex
	cond     *sync.Cond
	isolated map[string]bool
	members  func() map[int]string // live member processes: pid -> name
	proxies  map[string]*proxy
	closed   bool
	// unknownOrigin counts connections whose opener was not found; they
	// are never blocked on the opener's account.
	unknownOrigin int
}

type proxy struct {
	owner  string
	listen net.Listener
	target string
	conns  map[net.Conn]bool
}

// NewNetwork makes an empty network; members names the live member
// processes (pids change when a member restarts).
func NewNetwork(members func() map[int]string) *Network {
	n := &Network{isolated: map[string]bool{}, members: members, proxies: map[string]*proxy{}}
	n.cond = sync.NewCond(&n.mu)
	return n
}

// Add starts a proxy for member owner on listen (host:port) forwarding to
// target (host:port).
func (n *Network) Add(owner, listen, target string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("proxy for %s: %w", owner, err)
	}
	p := &proxy{owner: owner, listen: ln, target: target, conns: map[net.Conn]bool{}}
	n.mu.Lock()
	n.proxies[owner] = p
	n.mu.Unlock()
	go n.accept(p)
	return nil
}

// Isolate cuts member name off from every other member.
func (n *Network) Isolate(name string) {
	n.mu.Lock()
	n.isolated[name] = true
	n.mu.Unlock()
}

// Heal reconnects member name.
func (n *Network) Heal(name string) {
	n.mu.Lock()
	delete(n.isolated, name)
	n.cond.Broadcast()
	n.mu.Unlock()
}

// UnknownOrigins is how many connections could not be traced to a member.
func (n *Network) UnknownOrigins() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.unknownOrigin
}

// Close stops every proxy and drops every connection.
func (n *Network) Close() {
	n.mu.Lock()
	n.closed = true
	for _, p := range n.proxies {
		p.listen.Close()
		for c := range p.conns {
			c.Close()
		}
	}
	n.cond.Broadcast()
	n.mu.Unlock()
}

// wait blocks while a connection between from and to may not pass; it
// returns false once the network is closed.
func (n *Network) wait(from, to string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for !n.closed && (n.isolated[from] || n.isolated[to]) {
		n.cond.Wait()
	}
	return !n.closed
}

func (n *Network) track(p *proxy, c net.Conn, add bool) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if add {
		if n.closed {
			return false
		}
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
	return true
}

func (n *Network) accept(p *proxy) {
	for {
		c, err := p.listen.Accept()
		if err != nil {
			return
		}
		go n.serve(p, c)
	}
}

func (n *Network) serve(p *proxy, in net.Conn) {
	if !n.track(p, in, true) {
		in.Close()
		return
	}
	defer n.track(p, in, false)
	defer in.Close()
	from := n.origin(in)
	if !n.wait(from, p.owner) {
		return
	}
	out, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	if !n.track(p, out, true) {
		out.Close()
		return
	}
	defer n.track(p, out, false)
	defer out.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		defer func() { done <- struct{}{} }()
		buf := make([]byte, 32<<10)
		for {
			k, err := src.Read(buf)
			if k > 0 {
				if !n.wait(from, p.owner) {
					return
				}
				if _, werr := dst.Write(buf[:k]); werr != nil {
					return
				}
			}
			if err != nil {
				// etcd's peer connections are not half-closed: either
				// side ending ends both.
				return
			}
		}
	}
	go pipe(out, in)
	go pipe(in, out)
	<-done
}

// origin names the member whose process opened c, or "".
func (n *Network) origin(c net.Conn) string {
	remote, ok1 := c.RemoteAddr().(*net.TCPAddr)
	local, ok2 := c.LocalAddr().(*net.TCPAddr)
	if !ok1 || !ok2 {
		return ""
	}
	inode, err := socketInode(remote, local)
	if err == nil {
		for pid, name := range n.members() {
			if holdsSocket(pid, inode) {
				return name
			}
		}
	}
	n.mu.Lock()
	n.unknownOrigin++
	n.mu.Unlock()
	return ""
}

// socketInode finds in /proc/net/tcp the socket whose local address is
// local and whose peer is remote, and returns its inode.
func socketInode(local, remote *net.TCPAddr) (string, error) {
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return "", err
	}
	defer f.Close()
	want := [2]string{procAddr(local), procAddr(remote)}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) > 9 && fs[1] == want[0] && fs[2] == want[1] {
			return fs[9], nil
		}
	}
	return "", fmt.Errorf("no socket %s -> %s in /proc/net/tcp", local, remote)
}

// procAddr spells an IPv4 address the way /proc/net/tcp does: the address
// as a little-endian 32-bit hex number, then the port in hex.
func procAddr(a *net.TCPAddr) string {
	ip4 := a.IP.To4()
	if ip4 == nil {
		return ""
	}
	var le [4]byte
	binary.LittleEndian.PutUint32(le[:], binary.BigEndian.Uint32(ip4))
	return strings.ToUpper(hex.EncodeToString(le[:])) + ":" + fmt.Sprintf("%04X", a.Port)
}

func holdsSocket(pid int, inode string) bool {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	want := "socket:[" + inode + "]"
	for _, e := range entries {
		if l, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && l == want {
			return true
		}
	}
	return false
}
