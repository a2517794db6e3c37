package main

import (
	"flag"
	"testing"
)

// TestRerunCommand: the printed command parses back to the same flags; a
// bool flag is printed bare when set and left out when not ("-name false"
// would set it and leave "false" behind as an argument).
func TestRerunCommand(t *testing.T) {
	t.Setenv("TMPDIR", "/dev/shm")
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.Int("runs", 5, "")
	fs.Bool("calibrate", false, "")
	fs.Bool("other", false, "")
	if err := fs.Parse([]string{"-runs", "6", "-calibrate"}); err != nil {
		t.Fatal(err)
	}
	got := rerunCommand("load", fs)
	want := "TMPDIR=/dev/shm go run ./bench/cmd/etcdkit-bench load -calibrate -runs 6"
	if got != want {
		t.Fatalf("rerun command\n got %s\nwant %s", got, want)
	}
}
