// Command tools builds, ahead of the tests, the real programs the tests
// drive that do not share etcdkit's go.mod (see internal/testtools), so the
// test run does not pay for the first builds:
//
//	go run ./test/tools            # every tool
//	go run ./test/tools weed       # just these
//	go run ./test/tools -list      # names, versions and cache paths
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/etcdkit/etcdkit/internal/testtools"
)

func main() {
	list := flag.Bool("list", false, "list the tools and where each is cached")
	flag.Parse()
	names := flag.Args()
	if len(names) == 0 {
		names = testtools.Names()
	}
	if *list {
		for _, n := range names {
			t, ok := testtools.Lookup(n)
			if !ok {
				fmt.Fprintf(os.Stderr, "tools: no tool named %q\n", n)
				os.Exit(2)
			}
			p, _ := testtools.Cached(t)
			fmt.Printf("%-16s %-40s %s\n", t.Name, t.Version, p)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	failed := false
	for _, n := range names {
		start := time.Now()
		p, err := testtools.Path(ctx, n, os.Stderr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "tools: %s: %v\n", n, err)
			failed = true
			continue
		}
		fmt.Printf("%s: %s (%s)\n", n, p, time.Since(start).Round(time.Second))
	}
	if failed {
		os.Exit(1)
	}
}
