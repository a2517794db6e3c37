package remote

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"
)

// exitNotExist is the exit code the file scripts use for "no such file", so
// it is told apart from every other failure without parsing messages.
const exitNotExist = 96

// File is the mode and ownership a written file or directory gets.
type File struct {
	// Mode is the permission bits; 0 means 0600 for files, 0700 for
	// directories (keys and their directories are private by default).
	Mode fs.FileMode
	// Owner and Group are names or numeric ids; empty means root.
	Owner, Group string
}

func (f File) fileMode() fs.FileMode {
	if f.Mode == 0 {
		return 0o600
	}
	return f.Mode.Perm()
}

func (f File) dirMode() fs.FileMode {
	if f.Mode == 0 {
		return 0o700
	}
	return f.Mode.Perm()
}

func (f File) owner() string {
	o, g := f.Owner, f.Group
	if o == "" {
		o = "root"
	}
	if g == "" {
		g = "root"
	}
	return o + ":" + g
}

// FileInfo is a remote file's metadata (symlinks followed).
type FileInfo struct {
	Path    string
	Mode    fs.FileMode // type and permission bits, as fs.FileMode
	Size    int64
	UID     int
	GID     int
	Owner   string // user name, or the uid when it has none
	Group   string
	ModTime time.Time
}

// IsDir reports whether the file is a directory.
func (fi *FileInfo) IsDir() bool { return fi.Mode.IsDir() }

// ownedBy reports whether the owner matches a File's "user:group", by name
// or id.
func (fi *FileInfo) ownedBy(owner string) bool {
	u, g, _ := strings.Cut(owner, ":")
	return (u == fi.Owner || u == strconv.Itoa(fi.UID)) && (g == fi.Group || g == strconv.Itoa(fi.GID))
}

const statFormat = "%f %s %u %g %Y %U %G"

// statScript prints p's metadata, and its sha256 when sum is set and it is
// a regular file; it exits exitNotExist when p does not exist.
func statScript(p string, sum bool) string {
	s := fmt.Sprintf("p=%s; if [ ! -e \"$p\" ]; then exit %d; fi; stat -L -c '%s' -- \"$p\"", Quote(p), exitNotExist, statFormat)
	if sum {
		s += `; if [ -f "$p" ]; then sha256sum < "$p"; fi`
	}
	return s
}

func parseStat(p, out string) (*FileInfo, string, error) {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	f := strings.Fields(lines[0])
	if len(f) < 7 {
		return nil, "", fmt.Errorf("stat %s: unexpected output %q", p, out)
	}
	raw, err1 := strconv.ParseUint(f[0], 16, 32)
	size, err2 := strconv.ParseInt(f[1], 10, 64)
	uid, err3 := strconv.Atoi(f[2])
	gid, err4 := strconv.Atoi(f[3])
	mtime, err5 := strconv.ParseInt(f[4], 10, 64)
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
		return nil, "", fmt.Errorf("stat %s: unexpected output %q: %w", p, out, err)
	}
	fi := &FileInfo{Path: p, Mode: unixMode(uint32(raw)), Size: size, UID: uid, GID: gid,
		Owner: f[5], Group: f[6], ModTime: time.Unix(mtime, 0)}
	if fi.Owner == "UNKNOWN" {
		fi.Owner = f[2]
	}
	if fi.Group == "UNKNOWN" {
		fi.Group = f[3]
	}
	var sum string
	if len(lines) > 1 {
		sum, _, _ = strings.Cut(strings.TrimSpace(lines[1]), " ")
	}
	return fi, sum, nil
}

// unixMode converts st_mode to fs.FileMode.
func unixMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & 0o170000 {
	case 0o040000:
		mode |= fs.ModeDir
	case 0o120000:
		mode |= fs.ModeSymlink
	case 0o010000:
		mode |= fs.ModeNamedPipe
	case 0o140000:
		mode |= fs.ModeSocket
	case 0o020000:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case 0o060000:
		mode |= fs.ModeDevice
	}
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// probe stats p and, with sum, hashes it. A missing file is fs.ErrNotExist.
func (c *Conn) probe(ctx context.Context, p string, sum bool) (*FileInfo, string, error) {
	res, err := c.run(ctx, statScript(p, sum), nil, true)
	if errorsIsExit(err, exitNotExist) {
		return nil, "", c.host.errorf("%s: %w", p, fs.ErrNotExist)
	}
	if err != nil {
		return nil, "", err
	}
	fi, s, err := parseStat(p, res.Stdout)
	return fi, s, c.host.hostErr(err)
}

// Stat returns p's metadata; a missing p is an error wrapping
// fs.ErrNotExist.
func (c *Conn) Stat(ctx context.Context, p string) (*FileInfo, error) {
	fi, _, err := c.probe(ctx, p, false)
	return fi, err
}

// Exists reports whether p exists.
func (c *Conn) Exists(ctx context.Context, p string) (bool, error) {
	_, err := c.Stat(ctx, p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// SHA256 is the hex sha256 of the remote file p.
func (c *Conn) SHA256(ctx context.Context, p string) (string, error) {
	fi, sum, err := c.probe(ctx, p, true)
	if err != nil {
		return "", err
	}
	if !fi.Mode.IsRegular() {
		return "", c.host.errorf("%s is not a regular file", p)
	}
	return sum, nil
}

// ReadFile returns the remote file's content; a missing file is an error
// wrapping fs.ErrNotExist.
func (c *Conn) ReadFile(ctx context.Context, p string) ([]byte, error) {
	var out bytes.Buffer
	script := fmt.Sprintf("p=%s; if [ ! -e \"$p\" ]; then exit %d; fi; exec cat -- \"$p\"", Quote(p), exitNotExist)
	_, err := c.stream(ctx, script, nil, &out, io.Discard, true)
	if errorsIsExit(err, exitNotExist) {
		return nil, c.host.errorf("%s: %w", p, fs.ErrNotExist)
	}
	if err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// installScript reads stdin into a temp file beside p, checks its sha256
// when sum is set, gives it f's owner and mode, fsyncs it and renames it
// over p, then fsyncs the directory. The temp file is created 0600 by
// mktemp under umask 077 and only gets its final mode once complete, so a
// key is never readable by others, and a failure at any step leaves p as
// it was and no temp file behind. Missing parent directories are made
// 0700.
func installScript(p string, f File, sum string) string {
	dir, base := path.Split(p)
	if dir == "" {
		dir = "."
	}
	var b strings.Builder
	fmt.Fprintf(&b, "set -e; umask 077; p=%s; d=%s\n", Quote(p), Quote(path.Clean(dir)))
	b.WriteString("mkdir -p -- \"$d\"\n")
	fmt.Fprintf(&b, "tmp=$(mktemp -- \"$d/\"%s)\n", Quote("."+base+".etcdkit-XXXXXX"))
	b.WriteString("trap 'rm -f -- \"$tmp\"' EXIT\n")
	b.WriteString("cat > \"$tmp\"\n")
	if sum != "" {
		fmt.Fprintf(&b, "if [ \"$(sha256sum < \"$tmp\" | cut -d' ' -f1)\" != %s ]; then echo \"checksum mismatch after transfer\" >&2; exit 1; fi\n", Quote(sum))
	}
	fmt.Fprintf(&b, "chown -- %s \"$tmp\"\n", Quote(f.owner()))
	fmt.Fprintf(&b, "chmod -- %04o \"$tmp\"\n", f.fileMode())
	b.WriteString("sync -- \"$tmp\" 2>/dev/null || sync\n")
	b.WriteString("mv -f -- \"$tmp\" \"$p\"\n")
	b.WriteString("trap - EXIT\n")
	b.WriteString("sync -- \"$d\" 2>/dev/null || sync\n")
	return b.String()
}

// metaScript sets p's owner and mode.
func metaScript(p, owner string, mode fs.FileMode) string {
	return fmt.Sprintf("chown -- %s %s && chmod -- %04o %s", Quote(owner), Quote(p), mode, Quote(p))
}

// WriteFile makes the remote file p hold data with f's mode and owner,
// atomically (see installScript). It changes nothing, and reports false,
// when p already matches; when only the mode or owner differ it fixes just
// those. Every change goes through Change, so dry-run records it.
func (c *Conn) WriteFile(ctx context.Context, p string, data []byte, f File) (bool, error) {
	h := sha256.Sum256(data)
	return c.install(ctx, p, hex.EncodeToString(h[:]), int64(len(data)), f, "",
		func() io.Reader { return bytes.NewReader(data) })
}

// install is WriteFile and Upload's shared body: compare, then write or fix
// metadata through Change. verb names the change in the plan ("upload");
// empty means create or update.
func (c *Conn) install(ctx context.Context, p, sum string, size int64, f File, verb string, content func() io.Reader) (bool, error) {
	if !path.IsAbs(p) {
		return false, c.host.errorf("write %s: remote paths must be absolute", p)
	}
	fi, have, err := c.probe(ctx, p, true)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	if exists && fi.IsDir() {
		return false, c.host.errorf("write %s: is a directory", p)
	}
	owner, mode := f.owner(), f.fileMode()
	desc := fmt.Sprintf("%s (%04o %s, %s)", p, mode, owner, HumanSize(size))
	switch {
	case exists && have == sum && fi.Mode.Perm() == mode && fi.ownedBy(owner):
		return false, nil
	case exists && have == sum:
		return true, c.Change(ctx, fmt.Sprintf("set mode and owner of %s to %04o %s (was %04o %s:%s)",
			p, mode, owner, fi.Mode.Perm(), fi.Owner, fi.Group), func(ctx context.Context) error {
			_, err := c.run(ctx, metaScript(p, owner, mode), nil, true)
			return unwrapHost(err)
		})
	}
	if verb == "" {
		verb = "create"
		if exists {
			verb = "update"
		}
	}
	return true, c.Change(ctx, verb+" "+desc, func(ctx context.Context) error {
		_, err := c.stream(ctx, installScript(p, f, sum), content(), io.Discard, io.Discard, true)
		return unwrapHost(err)
	})
}

// MkdirAll makes directory p and its missing parents (0700), and gives p
// f's mode (default 0700) and owner. It changes nothing when p already has
// them.
func (c *Conn) MkdirAll(ctx context.Context, p string, f File) (bool, error) {
	if !path.IsAbs(p) {
		return false, c.host.errorf("mkdir %s: remote paths must be absolute", p)
	}
	owner, mode := f.owner(), f.dirMode()
	fi, err := c.Stat(ctx, p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return true, c.Change(ctx, fmt.Sprintf("create directory %s (%04o %s)", p, mode, owner), func(ctx context.Context) error {
			_, err := c.run(ctx, fmt.Sprintf("umask 077; mkdir -p -- %s && %s", Quote(p), metaScript(p, owner, mode)), nil, true)
			return unwrapHost(err)
		})
	case err != nil:
		return false, err
	case !fi.IsDir():
		return false, c.host.errorf("mkdir %s: exists and is not a directory", p)
	case fi.Mode.Perm() == mode && fi.ownedBy(owner):
		return false, nil
	}
	return true, c.Change(ctx, fmt.Sprintf("set mode and owner of directory %s to %04o %s (was %04o %s:%s)",
		p, mode, owner, fi.Mode.Perm(), fi.Owner, fi.Group), func(ctx context.Context) error {
		_, err := c.run(ctx, metaScript(p, owner, mode), nil, true)
		return unwrapHost(err)
	})
}

// Remove deletes the remote file p (not a directory); a missing p is no
// change.
func (c *Conn) Remove(ctx context.Context, p string) (bool, error) {
	fi, err := c.Stat(ctx, p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if fi.IsDir() {
		return false, c.host.errorf("remove %s: is a directory", p)
	}
	return true, c.Change(ctx, "remove "+p, func(ctx context.Context) error {
		_, err := c.run(ctx, fmt.Sprintf("rm -f -- %s && (sync -- %s 2>/dev/null || sync)", Quote(p), Quote(path.Dir(p))), nil, true)
		return unwrapHost(err)
	})
}

// HumanSize is n bytes as the plan shows sizes: 227 B, 1.2 KiB, 46.8 MiB.
func HumanSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
