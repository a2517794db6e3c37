// Command stock-etcd is the stock etcd server, exactly as etcd's own main
// builds it: the baseline every benchmark and interop test compares with.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
