// Command etcd-benchmark is etcd's own benchmark tool
// (go.etcd.io/etcd/v3/tools/benchmark) exactly as etcd builds it: the load
// generator for the throughput and latency benchmarks.
package main

import (
	"fmt"
	"os"

	"go.etcd.io/etcd/v3/tools/benchmark/cmd"
)

func main() {
	if err := cmd.RootCmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
