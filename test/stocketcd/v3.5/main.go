// Command etcd is the stock etcd 3.5.36 server, unchanged: etcdkit's tests run
// it as the cluster that etcdkit adopts, upgrades and hands back. It lives
// in its own module because two minor versions of the server cannot share
// etcdkit's go.mod.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
