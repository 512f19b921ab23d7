package api

import (
	"encoding/xml"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
)

// Intents: the public feed (JSON and Atom, RFC 4287), offers from
// organizations, and the owner's side.

func (s *server) listIntents(w http.ResponseWriter, r *http.Request) {
	list, err := s.svc.ListIntents(r.Context())
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	if strings.Contains(r.Header.Get("Accept"), "application/atom+xml") {
		s.writeAtom(w, list)
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=60")
	writeJSON(w, http.StatusOK, map[string]any{"intents": list})
}

func (s *server) intentsAtom(w http.ResponseWriter, r *http.Request) {
	list, err := s.svc.ListIntents(r.Context())
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	s.writeAtom(w, list)
}

type atomFeed struct {
	XMLName xml.Name    `xml:"http://www.w3.org/2005/Atom feed"`
	ID      string      `xml:"id"`
	Title   string      `xml:"title"`
	Updated string      `xml:"updated"`
	Links   []atomLink  `xml:"link"`
	Entries []atomEntry `xml:"entry"`
}

type atomLink struct {
	Rel  string `xml:"rel,attr,omitempty"`
	Type string `xml:"type,attr,omitempty"`
	Href string `xml:"href,attr"`
}

type atomEntry struct {
	ID       string     `xml:"id"`
	Title    string     `xml:"title"`
	Updated  string     `xml:"updated"`
	Summary  string     `xml:"summary,omitempty"`
	Category *atomCat   `xml:"category,omitempty"`
	Links    []atomLink `xml:"link"`
	Content  atomText   `xml:"content"`
}

type atomCat struct {
	Term string `xml:"term,attr"`
}

type atomText struct {
	Type string `xml:"type,attr"`
	Body string `xml:",chardata"`
}

// writeAtom renders the feed. Entries carry the signed intent as their
// content, so a reader can check each one without trusting the feed.
func (s *server) writeAtom(w http.ResponseWriter, list []vault.PublicIntent) {
	iss := s.svc.Issuer()
	f := atomFeed{ID: iss + "/v1/intents", Title: "Intents", Updated: time.Unix(0, 0).UTC().Format(time.RFC3339),
		Links: []atomLink{{Rel: "self", Type: "application/atom+xml", Href: iss + "/v1/intents.atom"}}}
	for _, in := range list {
		updated := time.Unix(in.IssuedAt, 0).UTC().Format(time.RFC3339)
		if updated > f.Updated {
			f.Updated = updated
		}
		summary := in.Description
		if in.Budget != nil {
			summary = strings.TrimSpace(summary + " (" + in.Budget.String() + ")")
		}
		if in.Region != "" {
			summary = strings.TrimSpace(summary + " Region: " + in.Region + ".")
		}
		e := atomEntry{ID: "urn:pdvault:intent:" + in.ID, Title: in.Title, Updated: updated, Summary: summary,
			Links: []atomLink{
				{Rel: "alternate", Type: "application/json", Href: iss + "/v1/intents/" + in.ID},
				{Rel: "replies", Href: iss + "/v1/intents/" + in.ID + "/offers"},
			},
			Content: atomText{Type: "text", Body: in.Signed}}
		if in.Category != "" {
			e.Category = &atomCat{Term: in.Category}
		}
		f.Entries = append(f.Entries, e)
	}
	w.Header().Set("Content-Type", "application/atom+xml; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=60")
	w.WriteHeader(http.StatusOK)
	w.Write([]byte(xml.Header))
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	enc.Encode(f)
}

func (s *server) getIntent(w http.ResponseWriter, r *http.Request) {
	in, err := s.svc.GetIntent(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, in)
}

// sourceAddress is the client's address for per-address limits: the IP,
// or for IPv6 its /64, since one subscriber usually holds a whole /64 and
// could otherwise take a fresh address for every request. Forwarded
// headers are not trusted: behind a proxy, every client shares its address.
func sourceAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is4() {
		return ip.String()
	}
	p, _ := ip.Prefix(64)
	return p.String()
}

func (s *server) submitOffer(w http.ResponseWriter, r *http.Request) {
	signed, err := s.signedBody(w, r)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	t, err := s.svc.SubmitOffer(r.Context(), mux.Vars(r)["id"], signed, sourceAddress(r))
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusCreated, t)
}

func (s *server) publishIntent(w http.ResponseWriter, r *http.Request) {
	var in policy.IntentInput
	if err := s.decodeJSON(w, r, &in); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	oi, err := s.svc.PublishIntent(r.Context(), in)
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusCreated, oi)
}

func (s *server) ownerIntents(w http.ResponseWriter, r *http.Request) {
	list, err := s.svc.OwnerIntents(r.Context())
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"intents": list})
}

func (s *server) ownerIntent(w http.ResponseWriter, r *http.Request) {
	oi, err := s.svc.OwnerIntent(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, oi)
}

func (s *server) closeIntent(w http.ResponseWriter, r *http.Request) {
	oi, err := s.svc.CloseIntent(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, oi)
}

func (s *server) acceptOffer(w http.ResponseWriter, r *http.Request) {
	req, err := s.svc.AcceptOffer(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		writeError(w, r, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, req)
}

func (s *server) declineOffer(w http.ResponseWriter, r *http.Request) {
	if err := s.svc.DeclineOffer(r.Context(), mux.Vars(r)["id"]); err != nil {
		writeError(w, r, s.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
