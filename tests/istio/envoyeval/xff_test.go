package envoyeval

import (
	"net/netip"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func xffAddress(t *testing.T, xff string, skip int) string {
	t.Helper()
	a, ok := lastAddressFromXFF(xff, true, skip)
	if !ok {
		return "none"
	}
	return a.String()
}

// Envoy trims whitespace around the chosen entry (HTTP list syntax), nothing else.
func TestXFFTrimsWhitespace(t *testing.T) {
	for in, want := range map[string]string{
		" 198.51.100.7 ":           "198.51.100.7",
		"10.0.0.9,\t198.51.100.7 ": "198.51.100.7",
		"198.51.100.7 x":           "none",
	} {
		if got := xffAddress(t, in, 0); got != want {
			t.Errorf("%q: %s, want %s", in, got, want)
		}
	}
}

// IPv6 entries parse without brackets only; brackets and ports make an entry unparseable.
func TestXFFIPv6AndPorts(t *testing.T) {
	for in, want := range map[string]string{
		"2001:db8::1":       "2001:db8::1",
		"[2001:db8::1]":     "none",
		"[2001:db8::1]:443": "none",
		"203.0.113.5:1234":  "none",
		"2001:db8::1:443":   "2001:db8::1:443", // eight groups: an address, not a port
	} {
		if got := xffAddress(t, in, 0); got != want {
			t.Errorf("%q: %s, want %s", in, got, want)
		}
	}
}

// A zone parses when numeric, or on a link-local address when it names an interface
// (glibc getaddrinfo); it takes no part in CIDR matching.
func TestXFFIPv6Zones(t *testing.T) {
	for in, want := range map[string]string{
		"fe80::1%eth0":            "fe80::1%eth0",
		"fe80::1%7":               "fe80::1%7",
		"fe80::1%wlan9":           "none",
		"2001:db8::1%3":           "2001:db8::1%3",
		"2001:db8::1%eth0":        "none",
		"2001:db8::1%-1":          "none",
		"2001:db8::1%99999999999": "none",
	} {
		if got := xffAddress(t, in, 0); got != want {
			t.Errorf("%q: %s, want %s", in, got, want)
		}
	}
	r := &corev3.CidrRange{AddressPrefix: "2001:db8::", PrefixLen: wrapperspb.UInt32(32)}
	if ok, _ := MatchCIDR(r, netip.MustParseAddr("2001:db8::1%3")); !ok {
		t.Error("a zoned address must match its range")
	}
}

// IPv4 octets with leading zeros do not parse (inet_pton), nor do short forms.
func TestXFFIPv4Forms(t *testing.T) {
	for in, want := range map[string]string{
		"198.51.100.7": "198.51.100.7",
		"010.1.2.3":    "none",
		"198.51.100":   "none",
		"0x7f.0.0.1":   "none",
	} {
		if got := xffAddress(t, in, 0); got != want {
			t.Errorf("%q: %s, want %s", in, got, want)
		}
	}
}

// An IPv4-mapped IPv6 entry stays IPv6, and Envoy matches a range only with addresses of its
// own IP version (cidr_range.cc isInRange): ::ffff:198.51.100.7 is not in 198.51.100.0/24,
// and 198.51.100.7 is not in ::ffff:198.51.100.0/120.
func TestXFFMappedIPv4IsIPv6(t *testing.T) {
	a, ok := lastAddressFromXFF("::ffff:198.51.100.7", true, 0)
	if !ok || !a.Is6() || !a.Is4In6() {
		t.Fatalf("mapped entry parsed as %v, %v", a, ok)
	}
	v4 := &corev3.CidrRange{AddressPrefix: "198.51.100.0", PrefixLen: wrapperspb.UInt32(24)}
	mapped := &corev3.CidrRange{AddressPrefix: "::ffff:198.51.100.0", PrefixLen: wrapperspb.UInt32(120)}
	for _, c := range []struct {
		r    *corev3.CidrRange
		ip   string
		want bool
	}{
		{v4, "::ffff:198.51.100.7", false},
		{v4, "198.51.100.7", true},
		{mapped, "::ffff:198.51.100.7", true},
		{mapped, "198.51.100.7", false},
		{mapped, "::ffff:198.51.101.7", false},
	} {
		if got, err := MatchCIDR(c.r, netip.MustParseAddr(c.ip)); err != nil || got != c.want {
			t.Errorf("%s in %s/%d: %v %v, want %v", c.ip, c.r.GetAddressPrefix(), c.r.GetPrefixLen().GetValue(), got, err, c.want)
		}
	}
}

// Entries are cut at ',' from the right; an empty chosen entry, and fewer entries than the
// hops to skip, give no address.
func TestXFFEmptyEntriesAndTooFewEntries(t *testing.T) {
	for _, c := range []struct {
		xff  string
		skip int
		want string
	}{
		{"198.51.100.7,", 0, "none"},
		{"198.51.100.7, ", 0, "none"},
		{"198.51.100.7,,10.0.0.1", 1, "none"},
		{"198.51.100.7,,10.0.0.1", 2, "198.51.100.7"},
		{"198.51.100.7", 1, "none"},
		{"", 0, "none"},
		{"203.0.113.9, 198.51.100.7, 10.0.0.2", 1, "198.51.100.7"},
	} {
		if got := xffAddress(t, c.xff, c.skip); got != c.want {
			t.Errorf("%q skip %d: %s, want %s", c.xff, c.skip, got, c.want)
		}
	}
	if _, ok := lastAddressFromXFF("", false, 0); ok {
		t.Error("no header gives no address")
	}
}

// When the chosen entry does not parse, the client address is the connection's peer: behind
// one trusted proxy, that is the proxy. An allow list that holds the proxy's address then
// admits the request; one that does not refuses it.
func TestXFFUnparseableEntryFallsBackToTheProxy(t *testing.T) {
	for _, c := range []struct {
		name, direct, xff string
		want              int
	}{
		{"the proxy wrote the client with a port; the proxy is allowed", "198.51.100.1", "203.0.113.5:1234", 0},
		{"the proxy wrote the client with a port; the proxy is not allowed", "10.0.0.1", "198.51.100.7:1234", 403},
		{"a parseable entry decides, not the proxy", "198.51.100.1", "203.0.113.5", 403},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := gatewayProxy(t, 1)
			h := Headers{":method": {"GET"}, ":path": {"/x"}, ":authority": {"shop.example.com"}, "x-forwarded-for": {c.xff}}
			conn := Conn{Port: 443, DirectRemoteIP: netip.MustParseAddr(c.direct), TLS: true, SNI: "shop.example.com"}
			out, err := p.Handle(p.ListenerForPort(443), conn, h, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if out.Status != c.want {
				t.Errorf("status %d (%s), want %d", out.Status, out.Reason, c.want)
			}
		})
	}
}

// The connection's peer is appended to what the client side sent, which is kept as written.
func TestXFFAppendKeepsTheHeader(t *testing.T) {
	p := gatewayProxy(t, 1)
	h := Headers{":method": {"GET"}, ":path": {"/x"}, ":authority": {"shop.example.com"}, "x-forwarded-for": {"203.0.113.9 , 198.51.100.7"}}
	conn := Conn{Port: 443, DirectRemoteIP: netip.MustParseAddr("10.0.0.1"), TLS: true, SNI: "shop.example.com"}
	out, err := p.Handle(p.ListenerForPort(443), conn, h, nil, nil)
	if err != nil || out.Upstream == nil {
		t.Fatalf("%+v %v", out, err)
	}
	if got, _ := out.Upstream.Headers.Get("x-forwarded-for"); got != "203.0.113.9 , 198.51.100.7,10.0.0.1" {
		t.Errorf("x-forwarded-for upstream = %q", got)
	}
}
