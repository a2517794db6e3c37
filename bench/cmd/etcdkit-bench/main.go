// Command etcdkit-bench runs etcdkit's benchmarks side by side with stock
// etcd and prints Markdown for BENCHMARKS.md.
//
//	go run ./bench/cmd/etcdkit-bench up [-runs 7] [-members 3]
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/etcdkit/etcdkit/bench"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: etcdkit-bench up [-runs N] [-members N]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "up":
		fs := flag.NewFlagSet("up", flag.ExitOnError)
		runs := fs.Int("runs", 7, "measurements of each side")
		members := fs.Int("members", 3, "cluster size")
		_ = fs.Parse(os.Args[2:])
		if err := up(*runs, *members); err != nil {
			fmt.Fprintln(os.Stderr, "Error:", err)
			os.Exit(1)
		}
	default:
		fmt.Fprintf(os.Stderr, "unknown benchmark %q; known: up\n", os.Args[1])
		os.Exit(2)
	}
}

func up(runs, members int) error {
	dir, err := os.MkdirTemp("", "etcdkit-bench-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b, err := bench.Build(dir)
	if err != nil {
		return err
	}
	// Interleave the two sides so drift on the machine hits both alike.
	kit := bench.Sample{Name: fmt.Sprintf("etcdkit up, %d members (certificates and configs included)", members)}
	stock := bench.Sample{Name: fmt.Sprintf("stock etcd 3.7, %d processes started together (certificates made beforehand)", members)}
	for i := 0; i < runs; i++ {
		d, err := bench.UpEtcdkit(b, members)
		if err != nil {
			return err
		}
		kit.Runs = append(kit.Runs, d)
		d, err = bench.UpStock(b, members)
		if err != nil {
			return err
		}
		stock.Runs = append(stock.Runs, d)
	}
	fmt.Printf("Machine: %s; %s\n\n", bench.Machine(), time.Now().UTC().Format("2006-01-02"))
	fmt.Println("| time from start to first acknowledged write | runs | min | median | max |")
	fmt.Println("|---|---|---|---|---|")
	fmt.Println(kit.Row())
	fmt.Println(stock.Row())
	fmt.Printf("\nRatio etcdkit/stock (medians): %.2f\n", bench.Ratio(kit, stock))
	return nil
}
