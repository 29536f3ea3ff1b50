package harness

import (
	"errors"
	"fmt"
	"strings"

	"istio.io/istio/pilot/pkg/simulation"
)

// SimulateGateway runs Istio's own traffic simulation for a gateway request. The simulation
// knows listeners, filter chains, virtual hosts and path matching, but not methods, headers,
// RBAC or JWT, so it is an independent check of the part of envoyeval it covers. It must
// run on the goroutine of the test that built the Env (it fails that test on misuse).
func (e *Env) SimulateGateway(r Request) *simulation.Result {
	if r.From != nil || e.gatewaySim == nil {
		return nil
	}
	conn, err := e.gatewayConn(r)
	if err != nil {
		return nil
	}
	if conn.TLS && conn.SNI == "" {
		// The simulation treats a missing SNI as matching any server name.
		return nil
	}
	headers, _ := requestHeaders(r)
	path, _ := headers.Get(":path")
	// The simulation does not normalise paths: give it the path the gateway's routes see, or
	// skip it when the connection manager answers before any route.
	l := e.Gateway.ListenerForPort(conn.Port)
	if l == nil {
		return nil
	}
	path, ok := e.Gateway.RoutedPath(l, conn, path)
	if !ok {
		return nil
	}
	// Envoy matches routes on the path without the query; the simulation would compare the
	// query too.
	path, _, _ = strings.Cut(path, "?")
	call := simulation.Call{
		Port: conn.Port, Path: path, HostHeader: r.Host, Protocol: simulation.HTTP,
		CallMode: simulation.CallModeGateway, Sni: conn.SNI,
	}
	if conn.TLS {
		call.TLS = simulation.TLS
	}
	res := e.gatewaySim.Run(call)
	return &res
}

// CrossCheck compares the gateway's routing in res with Istio's simulation of the same
// request and returns the disagreements the simulation's blind spots do not explain.
func (e *Env) CrossCheck(res Result, sim *simulation.Result) []string {
	gw := res.Gateway
	if sim == nil || gw == nil {
		return nil
	}
	mismatch := func(format string, a ...any) []string {
		return []string{"Istio's simulation disagrees: " + fmt.Sprintf(format, a...)}
	}
	switch {
	case gw.Status == -1 && gw.Reason == "no filter chain matches":
		if !errors.Is(sim.Error, simulation.ErrNoFilterChain) {
			return mismatch("no filter chain here, simulation %v / chain %q", sim.Error, sim.FilterChainMatched)
		}
	case gw.Status == -1:
		// Client certificates are beyond the simulation.
	case gw.Status == 404 && strings.HasPrefix(gw.Reason, "no virtual host"):
		if !errors.Is(sim.Error, simulation.ErrNoVirtualHost) {
			return mismatch("no virtual host here, simulation %v / %q", sim.Error, sim.VirtualHostMatched)
		}
	case gw.RouteName == "" && gw.Status == 404:
		// No route here; the simulation, which ignores methods, may still find one by path.
		if sim.Error == nil && !e.routeHasHeaderMatch(sim.VirtualHostMatched, sim.RouteMatched) {
			return mismatch("no route here, simulation picked %q without a method or header match", sim.RouteMatched)
		}
		if sim.Error != nil && !errors.Is(sim.Error, simulation.ErrNoRoute) {
			return mismatch("no route here, simulation %v", sim.Error)
		}
	case gw.RouteName != "":
		if sim.Error != nil {
			return mismatch("route %q here, simulation %v", gw.RouteName, sim.Error)
		}
		if sim.VirtualHostMatched != gw.VirtualHost {
			return mismatch("virtual host %q here, %q in the simulation", gw.VirtualHost, sim.VirtualHostMatched)
		}
		if sim.RouteMatched != gw.RouteName && !e.routeHasHeaderMatch(sim.VirtualHostMatched, sim.RouteMatched) {
			return mismatch("route %q here, %q in the simulation", gw.RouteName, sim.RouteMatched)
		}
	}
	return nil
}

// routeHasHeaderMatch reports whether the named route matches on headers (":method" among
// them), which the simulation ignores.
func (e *Env) routeHasHeaderMatch(vhost, route string) bool {
	for _, rc := range e.Gateway.Routes {
		for _, vh := range rc.GetVirtualHosts() {
			if vh.GetName() != vhost {
				continue
			}
			for _, r := range vh.GetRoutes() {
				if r.GetName() == route && len(r.GetMatch().GetHeaders()) > 0 {
					return true
				}
			}
		}
	}
	return false
}
