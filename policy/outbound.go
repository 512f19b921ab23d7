package policy

import (
	"net/netip"
	"net/url"
	"strings"
)

// Rules for the vault's own outbound requests (revocation notices to an
// organization's callback, domain-verification fetches). The vault must not
// become a way to reach the owner's private network: only https to public
// addresses, unless the owner (or a test) turns on loopback over plain
// HTTP. The address check is repeated at connect time, on the address
// actually dialled, so DNS cannot be used to slip past it.

var (
	ErrOutboundURL     = E(KindInvalid, "invalid_url", "the URL must be an absolute https URL without user info")
	ErrOutboundAddress = E(KindInvalid, "address_not_allowed", "the URL points at a loopback, private or otherwise non-public address")
)

// CheckOutboundURL checks a URL the vault is about to call.
func CheckOutboundURL(raw string, allowLoopback bool) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" || len(raw) > 2000 {
		return ErrOutboundURL
	}
	host := strings.ToLower(u.Hostname())
	loopbackName := host == "localhost" || strings.HasSuffix(host, ".localhost")
	ip, ipErr := netip.ParseAddr(host)
	isLoopback := loopbackName || (ipErr == nil && ip.IsLoopback())
	switch u.Scheme {
	case "https":
	case "http":
		if !(allowLoopback && isLoopback) {
			return ErrOutboundURL
		}
	default:
		return ErrOutboundURL
	}
	if isLoopback {
		if !allowLoopback {
			return ErrOutboundAddress
		}
		return nil
	}
	if ipErr == nil && !PublicAddr(ip) {
		return ErrOutboundAddress
	}
	return nil
}

// PublicAddr reports whether ip is a globally routable unicast address.
func PublicAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsUnspecified() || ip.IsLinkLocalUnicast() ||
		ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() || ip.IsMulticast() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// nonPublic are ranges the standard library's predicates do not cover.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, broadcast
	netip.MustParsePrefix("64:ff9b::/96"),    // NAT64 (may reach IPv4 private space)
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
}

// AllowedDialAddr is the connect-time check: loopback only when allowed,
// otherwise public addresses only.
func AllowedDialAddr(ip netip.Addr, allowLoopback bool) bool {
	if ip.Unmap().IsLoopback() {
		return allowLoopback
	}
	return PublicAddr(ip)
}
