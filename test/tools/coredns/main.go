// Command coredns is CoreDNS with only the plugins the local cluster's DNS needs, built as CoreDNS documents
// for custom builds (coredns.io/2017/07/25/compile-time-enabling-or-disabling-plugins): its own main that
// imports coremain and the chosen plugins and sets dnsserver.Directives. The full build compiles every
// plugin and their cloud SDKs; this one compiles the kubernetes plugin and little else. There is no forward
// plugin on purpose: a name outside the cluster gets an answer from no one, never from an upstream resolver.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/ready"
)

func init() {
	// The order is the plugins' execution order, as in CoreDNS's plugin.cfg.
	dnsserver.Directives = []string{"ready", "health", "errors", "cache", "kubernetes"}
}

func main() { coremain.Run() }
