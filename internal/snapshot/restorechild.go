package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	etcdutlsnap "go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"
)

// Each member's restore (etcdutl's code) runs in a child process, this
// same executable started with restoreEnv, for the reason the database
// check does (dbcheck.go): etcdutl opens the copied database with bbolt,
// and a damaged one can fault where nothing recovers. In a child that
// fault is a finding, and the restore can start while the snapshot is
// still being verified: Restore kills the children and removes what they
// wrote if the verification fails, instead of making every restore wait
// for a full read of the file first.
const restoreEnv = "ETCDKIT_INTERNAL_RESTORE"

type restoreChildResult struct {
	Done bool   `json:"done"`
	Err  string `json:"err,omitempty"`
}

// A binary that links this package becomes a restorer when started with
// restoreEnv (etcdutl's RestoreConfig as JSON): it restores, prints the
// result as JSON and exits before anything else runs.
func init() {
	cfg := os.Getenv(restoreEnv)
	if cfg == "" {
		return
	}
	var rc etcdutlsnap.RestoreConfig
	var res restoreChildResult
	if err := json.Unmarshal([]byte(cfg), &rc); err != nil {
		res.Err = fmt.Sprintf("bad %s: %v", restoreEnv, err)
	} else if err := etcdutlsnap.NewV3(zap.NewNop()).Restore(rc); err != nil {
		res.Err = err.Error()
	}
	res.Done = true
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		os.Exit(2)
	}
	os.Exit(0)
}

// restoreMember runs etcdutl's restore of one member in a child process
// (exe), killed when ctx ends. With no executable to run it restores in
// this process; the caller must then have verified the snapshot first.
func restoreMember(ctx context.Context, exe string, rc etcdutlsnap.RestoreConfig) error {
	if exe == "" {
		return etcdutlsnap.NewV3(zap.NewNop()).Restore(rc)
	}
	cfg, err := json.Marshal(rc)
	if err != nil {
		return err
	}
	var res restoreChildResult
	stderr, runErr := runChild(ctx, exe, []string{restoreEnv + "=" + string(cfg)}, &res)
	if res.Done {
		if res.Err != "" {
			return errors.New(res.Err)
		}
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if how, ok := childFaulted(runErr, stderr); ok {
		return fmt.Errorf("the database is damaged: restoring it faulted%s: a page points outside the file", how)
	}
	return fmt.Errorf("restore (%s) failed: %v: %s", exe, runErr, lastLine(stderr))
}
