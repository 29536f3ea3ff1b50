package envoyeval

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

var regexCache sync.Map

// fullMatch reports whether re matches all of s. Envoy's safe_regex is RE2 and must match the
// whole input; Go's regexp is RE2 as well, so anchoring is the only change.
func fullMatch(re, s string) (bool, error) {
	if c, ok := regexCache.Load(re); ok {
		return c.(*regexp.Regexp).MatchString(s), nil
	}
	c, err := regexp.Compile(`^(?:` + re + `)$`)
	if err != nil {
		return false, fmt.Errorf("regex %q: %w", re, err)
	}
	regexCache.Store(re, c)
	return c.MatchString(s), nil
}

// MatchString evaluates an envoy.type.matcher.v3.StringMatcher.
func MatchString(m *matcherv3.StringMatcher, s string) (bool, error) {
	if m == nil {
		return false, fmt.Errorf("empty string matcher")
	}
	in := s
	fold := func(x string) string {
		if m.GetIgnoreCase() {
			return strings.ToLower(x)
		}
		return x
	}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		return fold(in) == fold(p.Exact), nil
	case *matcherv3.StringMatcher_Prefix:
		return strings.HasPrefix(fold(in), fold(p.Prefix)), nil
	case *matcherv3.StringMatcher_Suffix:
		return strings.HasSuffix(fold(in), fold(p.Suffix)), nil
	case *matcherv3.StringMatcher_Contains:
		return strings.Contains(fold(in), fold(p.Contains)), nil
	case *matcherv3.StringMatcher_SafeRegex:
		// ignore_case does not apply to regexes in Envoy.
		return fullMatch(p.SafeRegex.GetRegex(), in)
	default:
		return false, fmt.Errorf("string matcher %T is not modelled", p)
	}
}

// MatchHeader evaluates an envoy.config.route.v3.HeaderMatcher, used by routes and RBAC.
func MatchHeader(m *routev3.HeaderMatcher, h Headers) (bool, error) {
	v, present := h.Get(m.GetName())
	if !present && m.GetTreatMissingHeaderAsEmpty() {
		v, present = "", true
	}
	var ok bool
	var err error
	switch p := m.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_PresentMatch:
		// present_match: false matches an absent header; invert_match flips it again below.
		ok = present == p.PresentMatch
	case nil:
		// No specifier means "the header is present".
		ok = present
	default:
		if !present {
			// A value matcher never matches an absent header, inverted or not.
			return false, nil
		}
		switch p := p.(type) {
		case *routev3.HeaderMatcher_ExactMatch:
			ok = v == p.ExactMatch
		case *routev3.HeaderMatcher_PrefixMatch:
			ok = strings.HasPrefix(v, p.PrefixMatch)
		case *routev3.HeaderMatcher_SuffixMatch:
			ok = strings.HasSuffix(v, p.SuffixMatch)
		case *routev3.HeaderMatcher_ContainsMatch:
			ok = strings.Contains(v, p.ContainsMatch)
		case *routev3.HeaderMatcher_SafeRegexMatch:
			ok, err = fullMatch(p.SafeRegexMatch.GetRegex(), v)
		case *routev3.HeaderMatcher_StringMatch:
			ok, err = MatchString(p.StringMatch, v)
		default:
			return false, fmt.Errorf("header matcher %T on %q is not modelled", p, m.GetName())
		}
	}
	if err != nil {
		return false, err
	}
	return ok != m.GetInvertMatch(), nil
}

// MatchCIDR reports whether ip is inside the range.
func MatchCIDR(r *corev3.CidrRange, ip netip.Addr) (bool, error) {
	a, err := netip.ParseAddr(r.GetAddressPrefix())
	if err != nil {
		return false, fmt.Errorf("cidr %q: %w", r.GetAddressPrefix(), err)
	}
	bits := int(r.GetPrefixLen().GetValue())
	if r.GetPrefixLen() == nil {
		bits = a.BitLen()
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return false, err
	}
	// Envoy (source/common/network/cidr_range.cc isInRange) matches only addresses of the
	// range's IP version: an IPv4-mapped IPv6 address is IPv6 and never in an IPv4 range, an
	// IPv4 address never in ::ffff:0:0/96. The IPv6 scope takes no part.
	return ip.IsValid() && p.Contains(ip.WithZone("")), nil
}

// MatchMetadata evaluates an envoy.type.matcher.v3.MetadataMatcher against dynamic metadata.
func MatchMetadata(m *matcherv3.MetadataMatcher, md map[string]*structpb.Struct) (bool, error) {
	var v *structpb.Value
	if st := md[m.GetFilter()]; st != nil {
		v = structpb.NewStructValue(st)
		for _, seg := range m.GetPath() {
			key := seg.GetKey()
			if v.GetStructValue() == nil {
				v = nil
				break
			}
			v = v.GetStructValue().GetFields()[key]
			if v == nil {
				break
			}
		}
	}
	ok, err := MatchValue(m.GetValue(), v)
	if err != nil {
		return false, fmt.Errorf("metadata %s%v: %w", m.GetFilter(), pathKeys(m), err)
	}
	return ok != m.GetInvert(), nil
}

func pathKeys(m *matcherv3.MetadataMatcher) []string {
	var keys []string
	for _, s := range m.GetPath() {
		keys = append(keys, s.GetKey())
	}
	return keys
}

// MatchValue evaluates a ValueMatcher; v is nil when the metadata path does not exist.
func MatchValue(m *matcherv3.ValueMatcher, v *structpb.Value) (bool, error) {
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.ValueMatcher_PresentMatch:
		return (v != nil) == p.PresentMatch, nil
	case *matcherv3.ValueMatcher_NullMatch_:
		_, isNull := v.GetKind().(*structpb.Value_NullValue)
		return v != nil && isNull, nil
	case *matcherv3.ValueMatcher_StringMatch:
		sv, ok := v.GetKind().(*structpb.Value_StringValue)
		if !ok {
			return false, nil
		}
		return MatchString(p.StringMatch, sv.StringValue)
	case *matcherv3.ValueMatcher_BoolMatch:
		bv, ok := v.GetKind().(*structpb.Value_BoolValue)
		return ok && bv.BoolValue == p.BoolMatch, nil
	case *matcherv3.ValueMatcher_DoubleMatch:
		nv, ok := v.GetKind().(*structpb.Value_NumberValue)
		if !ok {
			return false, nil
		}
		switch d := p.DoubleMatch.GetMatchPattern().(type) {
		case *matcherv3.DoubleMatcher_Exact:
			return nv.NumberValue == d.Exact, nil
		case *matcherv3.DoubleMatcher_Range:
			return nv.NumberValue >= d.Range.GetStart() && nv.NumberValue < d.Range.GetEnd(), nil
		}
		return false, fmt.Errorf("double matcher %T is not modelled", p.DoubleMatch.GetMatchPattern())
	case *matcherv3.ValueMatcher_ListMatch:
		// list_match only matches list values: a scalar claim never satisfies it.
		lv, ok := v.GetKind().(*structpb.Value_ListValue)
		if !ok {
			return false, nil
		}
		one := p.ListMatch.GetOneOf()
		if one == nil {
			return false, fmt.Errorf("list matcher without one_of is not modelled")
		}
		for _, item := range lv.ListValue.GetValues() {
			hit, err := MatchValue(one, item)
			if err != nil || hit {
				return hit, err
			}
		}
		return false, nil
	case *matcherv3.ValueMatcher_OrMatch:
		for _, alt := range p.OrMatch.GetValueMatchers() {
			hit, err := MatchValue(alt, v)
			if err != nil || hit {
				return hit, err
			}
		}
		return false, nil
	default:
		return false, fmt.Errorf("value matcher %T is not modelled", p)
	}
}
