// Command etcdkit: a secure, highly available etcd cluster and every day-2
// operation on it. The command tree lives in internal/cli.
package main

import (
	"os"

	"github.com/etcdkit/etcdkit/internal/cli"
)

func main() {
	os.Exit(cli.NewApp().Main(os.Args[1:]))
}
