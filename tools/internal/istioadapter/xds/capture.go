package xds

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"

	"istio.io/istio/tools/common/config"
	"istio.io/istio/tools/istio-iptables/pkg/capture"
	dep "istio.io/istio/tools/istio-iptables/pkg/dependencies"
)

// CaptureTraffic applies the sidecar's iptables rules inside the network namespace at nsPath,
// with the values Istio's injector gives istio-init by default: every inbound port but the
// proxy's own (15020, 15021, 15090) redirected to 15006, all outbound TCP redirected to 15001,
// the proxy's uid/gid 1337 excluded, REDIRECT mode.
//
// Istio's configurator runs iptables in the network namespace of the calling thread (istio-init
// runs inside the pod; istio-cni enters the pod's namespace first), so this runs it on a thread
// moved into nsPath, as istio-cni does. That thread is never handed back to the Go scheduler:
// it ends with its goroutine.
func CaptureTraffic(nsPath string) error {
	cfg := config.DefaultConfig()
	cfg.ProxyPort = "15001"
	cfg.InboundCapturePort = "15006"
	cfg.ProxyUID = "1337"
	cfg.ProxyGID = "1337"
	cfg.InboundInterceptionMode = "REDIRECT"
	cfg.InboundPortsInclude = "*"
	cfg.InboundPortsExclude = "15090,15021,15020"
	cfg.OutboundIPRangesInclude = "*"
	cfg.NetworkNamespace = nsPath
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // deliberately never unlocked
		ns, err := os.Open(nsPath)
		if err != nil {
			errc <- err
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("entering %s: %w", nsPath, err)
			return
		}
		// The configurator detects the iptables variant as it is built: inside the namespace too.
		c, err := capture.NewIptablesConfigurator(cfg, &dep.RealDependencies{NetworkNamespace: nsPath})
		if err != nil {
			errc <- err
			return
		}
		errc <- c.Run()
	}()
	if err := <-errc; err != nil {
		return fmt.Errorf("iptables for %s: %w", nsPath, err)
	}
	return nil
}
