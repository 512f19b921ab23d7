package api

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/pdvault/pdvault/policy"
)

// Behind a reverse proxy (docs/operations.md, "Behind a proxy").
//
// A request from a peer in Config.TrustedProxies may say, in Forwarded
// (RFC 7239) or in X-Forwarded-For/-Proto/-Host, which client it came
// from and which scheme and host that client called; from any other peer
// those headers are ignored (anyone can write them). What they say is used
// for three things only: the client address the rate limits count, the
// host checked against the issuer's, and the scheme checked against the
// issuer's. The DPoP htu check compares with the issuer, so a request
// that reached the vault under another origin is refused with a message
// naming both, instead of a proof that "does not match".

type schemeKey struct{}

// requestScheme is the scheme the client used, when known: https over
// the vault's own TLS, what a trusted proxy says, "" when neither.
func requestScheme(r *http.Request) string {
	if s, ok := r.Context().Value(schemeKey{}).(string); ok {
		return s
	}
	if r.TLS != nil {
		return "https"
	}
	return ""
}

// forwarded applies what a trusted proxy says about the client.
func forwarded(trusted []netip.Prefix, next http.Handler) http.Handler {
	if len(trusted) == 0 {
		return next
	}
	isTrusted := func(a netip.Addr) bool { return trustedPeer(trusted, a) }
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer, ok := remoteAddr(r)
		if !ok || !isTrusted(peer) {
			next.ServeHTTP(w, r)
			return
		}
		hops, proto, host := parseForwarded(r.Header)
		// The client is the nearest address that is not a trusted proxy:
		// addresses further left were written by whoever sent the request
		// to the first proxy and prove nothing.
		client := peer
		for i := len(hops) - 1; i >= 0; i-- {
			a, err := netip.ParseAddr(hops[i])
			if err != nil {
				break
			}
			client = a
			if !isTrusted(a) {
				break
			}
		}
		r2 := r.Clone(r.Context())
		r2.RemoteAddr = netip.AddrPortFrom(client.Unmap(), 0).String()
		if host != "" {
			r2.Host = host
		}
		if proto == "http" || proto == "https" {
			r2 = r2.WithContext(context.WithValue(r2.Context(), schemeKey{}, proto))
		}
		next.ServeHTTP(w, r2)
	})
}

func remoteAddr(r *http.Request) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err == nil {
		return ap.Addr(), true
	}
	a, err := netip.ParseAddr(r.RemoteAddr)
	return a, err == nil
}

// parseForwarded reads the client addresses (oldest first), and the
// scheme and host of the nearest proxy's element: RFC 7239 Forwarded if
// present, else the X-Forwarded-* headers.
func parseForwarded(h http.Header) (hops []string, proto, host string) {
	if fw := h.Values("Forwarded"); len(fw) > 0 {
		for _, line := range fw {
			for elem := range strings.SplitSeq(line, ",") {
				proto, host = "", ""
				for pair := range strings.SplitSeq(elem, ";") {
					k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
					if !ok {
						continue
					}
					v = strings.Trim(v, `"`)
					switch strings.ToLower(k) {
					case "for":
						hops = append(hops, forwardedNode(v))
					case "proto":
						proto = strings.ToLower(v)
					case "host":
						host = v
					}
				}
			}
		}
		return hops, proto, host
	}
	for _, line := range h.Values("X-Forwarded-For") {
		for a := range strings.SplitSeq(line, ",") {
			hops = append(hops, strings.TrimSpace(a))
		}
	}
	return hops, strings.ToLower(lastValue(h, "X-Forwarded-Proto")), lastValue(h, "X-Forwarded-Host")
}

// forwardedNode is the address in an RFC 7239 node ("192.0.2.1:4711",
// "[2001:db8::1]:4711"); obfuscated names come back as they are.
func forwardedNode(v string) string {
	if h, _, err := net.SplitHostPort(v); err == nil {
		return h
	}
	return strings.Trim(v, "[]")
}

// lastValue is the last comma-separated value of a header: the one the
// nearest proxy added.
func lastValue(h http.Header, name string) string {
	vs := h.Values(name)
	if len(vs) == 0 {
		return ""
	}
	parts := strings.Split(vs[len(vs)-1], ",")
	return strings.TrimSpace(parts[len(parts)-1])
}

// wrongOrigin says which origin the vault answers as, so that a proxy or
// client misconfiguration is visible at once.
func wrongOrigin(issuer, scheme, host string) error {
	if len(host) > 255 {
		host = host[:255] + "…"
	}
	return policy.E(policy.KindMisdirected, "invalid_host",
		"this vault answers as "+issuer+", but the request was made to "+scheme+"://"+host+
			" (set --issuer to the URL clients use, or --trusted-proxy for the proxy in front)")
}
