package testenv

import "net"

// FreeAddresses returns n distinct local addresses (127.0.0.1:port) that nothing listened on
// at the time of the call, for servers a test or the demo starts: the operator's metrics,
// probes and profiling endpoints.
func FreeAddresses(n int) ([]string, error) {
	addresses := make([]string, 0, n)
	// All held open at once, so the ports differ.
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, l)
		addresses = append(addresses, l.Addr().String())
	}
	return addresses, nil
}
