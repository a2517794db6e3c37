package snapshot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	etcdutlsnap "go.etcd.io/etcd/etcdutl/v3/snapshot"
)

// The database check runs in a child process (this same executable, with
// dbCheckEnv set). bbolt reads the file through mmap and runs its
// consistency check in a goroutine of its own, so a damaged page whose
// offsets point past the end of the file faults (SIGBUS or SIGSEGV) where
// no recover and no debug.SetPanicOnFault can reach, and the Go runtime
// ends the whole process. etcdutl dies that way on such a file; etcdkit
// must instead say the snapshot is damaged, and must not die in the middle
// of a restore or a scheduled backup. The child's fate is the finding.
const (
	dbCheckEnv     = "ETCDKIT_INTERNAL_DBCHECK_PATH"
	dbCheckSizeEnv = "ETCDKIT_INTERNAL_DBCHECK_SIZE"
)

// A binary that links this package (etcdkit, or a test binary) becomes the
// checker when started with dbCheckEnv: it checks, prints the result as
// JSON and exits before anything else runs.
func init() {
	path := os.Getenv(dbCheckEnv)
	if path == "" {
		return
	}
	size, err := strconv.ParseInt(os.Getenv(dbCheckSizeEnv), 10, 64)
	var res dbCheckResult
	if err != nil {
		res.Err = fmt.Sprintf("bad %s: %v", dbCheckSizeEnv, err)
	} else if err := limitCheckMemory(size); err != nil {
		res.Err = err.Error()
	} else if st, err := dbStatusInProcess(path, size); err != nil {
		res.Err = err.Error()
	} else {
		res.Status = st
	}
	res.Done = true
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		os.Exit(2)
	}
	os.Exit(0)
}

// limitCheckMemory caps the checker's heap. A damaged page header can
// claim billions of overflow pages, and bbolt's check records each one in
// a map: unbounded, it grows until the host's OOM killer picks a victim,
// which on a control-plane host may be etcd itself. A sound database needs
// a map entry per page (tens of bytes per 4 KiB page), far below the cap.
// RLIMIT_DATA counts the Go heap but not bbolt's shared read-only mmap of
// the file, so the cap does not depend on how large the file is mapped.
func limitCheckMemory(dbSize int64) error {
	lim := uint64(checkMemoryLimit(dbSize))
	return syscall.Setrlimit(syscall.RLIMIT_DATA, &syscall.Rlimit{Cur: lim, Max: lim})
}

func checkMemoryLimit(dbSize int64) int64 { return 256<<20 + dbSize/4 }

// checkTimeLimit bounds the checker's time. Damaged branch pages can point
// at the same subtree many times over, and bbolt's check walks it every
// time: exponential work in a few kilobytes, with no memory growth for the
// cap above to catch. A sound database is checked at hundreds of MB/s
// from the page cache; the limit allows 2 minutes plus 10 MB/s from disk.
// A variable so a test can see the limit work.
var checkTimeLimit = func(dbSize int64) time.Duration {
	return 2*time.Minute + time.Duration(dbSize/(10<<20))*time.Second
}

type dbCheckResult struct {
	Done   bool               `json:"done"`
	Status etcdutlsnap.Status `json:"status"`
	Err    string             `json:"err,omitempty"`
}

// dbStatus runs dbStatusInProcess in a child process; see above.
func dbStatus(path string, dbSize int64) (etcdutlsnap.Status, error) {
	exe, err := os.Executable()
	if err != nil {
		// Without our own executable there is no child to run; check
		// here and accept the risk the child exists to remove.
		return dbStatusInProcess(path, dbSize)
	}
	limit := checkTimeLimit(dbSize)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var res dbCheckResult
	stderr, runErr := runChild(ctx, exe, []string{dbCheckEnv + "=" + path, dbCheckSizeEnv + "=" + strconv.FormatInt(dbSize, 10)}, &res)
	if res.Done {
		if res.Err != "" {
			return etcdutlsnap.Status{}, errors.New(res.Err)
		}
		return res.Status, nil
	}
	if ctx.Err() != nil {
		return etcdutlsnap.Status{}, fmt.Errorf("checking the database did not finish in %v, which a sound database of %d bytes never needs: it is likely damaged (pages that refer to each other over and over), or the disk is extremely slow", limit, dbSize)
	}
	if how, ok := childFaulted(runErr, stderr); ok {
		return etcdutlsnap.Status{}, fmt.Errorf("the database is damaged: reading it faulted%s: a page points outside the file", how)
	}
	if bytes.Contains(stderr, []byte("out of memory")) {
		return etcdutlsnap.Status{}, fmt.Errorf("the database is damaged: checking it needed more than %d MiB of memory, which a sound database of %d bytes never does (a page claims an impossible number of overflow pages)", checkMemoryLimit(dbSize)>>20, dbSize)
	}
	return etcdutlsnap.Status{}, fmt.Errorf("database check (%s) failed: %v: %s", exe, runErr, lastLine(stderr))
}
