package api

import (
	"net/http"
	"net/netip"

	"github.com/pdvault/pdvault/policy"
)

// certificatePath is where a TLS-terminating proxy in front of the host
// asks, before it obtains a certificate on demand, whether the host serves
// a name (Caddy's on_demand_tls "ask": GET ...?domain=NAME, any 2xx
// allows). Without it a proxy issuing on demand would ask its CA for any
// name a stranger sends in a handshake.
const certificatePath = "/v1/host/certificate-allowed"

var errNotServed = policy.E(policy.KindNotFound, "not_served", "this host does not serve that name")

// certificateAllowed answers the proxy: 200 when host.Serves the name, 404
// otherwise. Only the proxy may ask (a loopback peer or one in
// --trusted-proxy, whatever the Host header), so it answers to every Host.
func (hs *hosting) certificateAllowed(w http.ResponseWriter, r *http.Request) {
	if p, ok := r.Context().Value(routeKey{}).(*reqInfo); ok {
		p.route = "host.certificate_allowed" // for the request log and metrics
	}
	peer, ok := remoteAddr(r)
	if !ok || !(peer.Unmap().IsLoopback() || trustedPeer(hs.cfg.TrustedProxies, peer)) {
		writeError(w, r, hs.s.log, errNotFound)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: errMethod.Code, Description: errMethod.Msg})
		return
	}
	name := r.URL.Query().Get("domain")
	if !hs.h.Serves(r.Context(), name) {
		writeError(w, r, hs.s.log, errNotServed)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"domain": bareHost(name)})
}

func trustedPeer(trusted []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
