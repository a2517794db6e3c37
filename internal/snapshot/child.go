package snapshot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// runChild runs exe (this program, which becomes one of the package's
// children when it sees env: the database check, a member's restore) and
// decodes the JSON result it prints into res. A child that died first
// leaves res as it was; runErr and stderr then say how it ended.
func runChild(ctx context.Context, exe string, env []string, res any) (stderr []byte, runErr error) {
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), env...)
	var stdout, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &errOut
	runErr = cmd.Run()
	_ = json.Unmarshal(stdout.Bytes(), res)
	return errOut.Bytes(), runErr
}

// childFaulted says whether a child ended with a memory fault, the way a
// damaged database ends a process that reads it through bbolt: killed by a
// signal (SIGBUS, SIGSEGV), or the Go runtime's own report of a fault. how
// names the signal, for a message, when there was one.
func childFaulted(runErr error, stderr []byte) (how string, faulted bool) {
	var exit *exec.ExitError
	if !errors.As(runErr, &exit) {
		return "", false
	}
	if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return " (" + ws.Signal().String() + ")", true
	}
	return "", bytes.Contains(stderr, []byte("unexpected fault address"))
}

func lastLine(b []byte) string {
	b = bytes.TrimSpace(b)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	return string(b)
}
