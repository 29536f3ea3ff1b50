package envoyeval

import (
	"net/netip"
	"strconv"
	"strings"
)

// lastAddressFromXFF is Envoy's reading of X-Forwarded-For (source/common/http/utility.cc
// getLastAddressFromXFF): drop skip entries from the right, cutting at each ',' (fewer
// entries than that: no address), take the text after the last remaining ',' (or all of it),
// trim whitespace, and parse it as a bare IP address. An empty last entry ("a,") leaves the
// ',' in the text, which then does not parse either. No address means the caller keeps the
// connection's peer.
func lastAddressFromXFF(xff string, present bool, skip int) (netip.Addr, bool) {
	if !present {
		return netip.Addr{}, false
	}
	for range skip {
		i := strings.LastIndexByte(xff, ',')
		if i < 0 {
			return netip.Addr{}, false
		}
		xff = xff[:i]
	}
	if i := strings.LastIndexByte(xff, ','); i >= 0 && i+1 < len(xff) {
		xff = xff[i+1:]
	}
	// Envoy's StringUtil whitespace: space, \t, \f, \v, \n, \r.
	return parseInternetAddress(strings.Trim(xff, " \t\f\v\n\r"))
}

// gatewayInterfaces are the network interfaces of a gateway Pod: an IPv6 zone may name
// them (for link-local addresses only, see parseInternetAddress).
var gatewayInterfaces = []string{"lo", "eth0"}

// parseInternetAddress is Envoy's parseInternetAddressNoThrow (source/common/network/
// utility.cc) without a port: first inet_pton(AF_INET), then getaddrinfo(AF_INET6,
// AI_NUMERICHOST) on glibc. So:
//
//   - IPv4 only as four decimal octets without leading zeros ("010.1.2.3" does not parse);
//   - IPv6 without brackets; "[2001:db8::1]" and any port ("203.0.113.5:1234",
//     "[2001:db8::1]:443") do not parse;
//   - an IPv4-mapped IPv6 address ("::ffff:198.51.100.7") stays an IPv6 address;
//   - a zone ("%eth0", "%2") parses when it is a decimal number, or, on a link-local address,
//     the name of an interface of the host (glibc __inet6_scopeid_pton). The zone takes no
//     part in CIDR matching.
func parseInternetAddress(s string) (netip.Addr, bool) {
	if !strings.Contains(s, ":") {
		a, err := netip.ParseAddr(s)
		return a, err == nil && a.Is4()
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() {
		return netip.Addr{}, false
	}
	if zone := a.Zone(); zone != "" {
		_, err := strconv.ParseUint(zone, 10, 32)
		numeric := allDigits(zone) && err == nil
		linkLocal := a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast()
		named := false
		for _, ifc := range gatewayInterfaces {
			named = named || zone == ifc
		}
		if !numeric && !(linkLocal && named) {
			return netip.Addr{}, false
		}
	}
	return a, true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
