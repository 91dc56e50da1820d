package netguard

import (
	"net/netip"
)

// special are the ranges that are not public, with what they are called in
// a refusal. Order matters only for overlaps (none here but ::/96, which
// is looked at after these).
var special = []struct {
	prefix netip.Prefix
	reason string
}{
	// 0.0.0.0/8 is "this network"; Linux connects 0.0.0.0 to the local
	// host, so it is as good as loopback to an attacker.
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared (CGNAT)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "reserved (IETF protocol assignments)"},
	{netip.MustParsePrefix("198.18.0.0/15"), "reserved (benchmarking)"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"}, // and 255.255.255.255
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fc00::/7"), "private"},
	{netip.MustParsePrefix("fec0::/10"), "private"}, // deprecated site-local
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// IPv6 ranges that carry an IPv4 address: a connection to one may reach
// that IPv4 address (through the kernel, a NAT64 gateway or a 6to4 relay),
// so the embedded address is judged.
var (
	mapped    = netip.MustParsePrefix("::ffff:0:0/96")
	compat    = netip.MustParsePrefix("::/96") // deprecated IPv4-compatible
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	nat64Loc  = netip.MustParsePrefix("64:ff9b:1::/48") // local-use NAT64
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// Classify says what kind of non-public address ip is ("loopback",
// "link-local", "private", "shared (CGNAT)", "unspecified", "multicast",
// "reserved"…, followed by the IPv6 form for an embedded IPv4 address),
// or "" for a public address. An invalid address is "invalid".
func Classify(ip netip.Addr) string {
	if !ip.IsValid() {
		return "invalid"
	}
	ip = ip.WithZone("")
	for _, s := range special {
		if s.prefix.Contains(ip) {
			return s.reason
		}
	}
	if !ip.Is6() {
		return ""
	}
	b := ip.As16()
	var v4 [4]byte
	var form string
	switch {
	case mapped.Contains(ip):
		copy(v4[:], b[12:])
		form = "IPv4-mapped"
	case compat.Contains(ip):
		copy(v4[:], b[12:])
		form = "IPv4-compatible"
	case nat64.Contains(ip):
		copy(v4[:], b[12:])
		form = "NAT64"
	case nat64Loc.Contains(ip):
		// Local-use NAT64 prefixes may be any length up to /96 (RFC 8215);
		// the IPv4 address is not at a fixed place, and such a gateway
		// leads to the local network anyway.
		return "private (local-use NAT64)"
	case sixToFour.Contains(ip):
		copy(v4[:], b[2:6])
		form = "6to4"
	default:
		return ""
	}
	if r := Classify(netip.AddrFrom4(v4)); r != "" {
		return r + " (" + form + ")"
	}
	return ""
}
