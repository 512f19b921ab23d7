package host

import (
	"context"
	"errors"
	"net"
	"strings"
	"time"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
)

// Custom domains (docs/operations.md, "A domain of your own"). A vault
// lives at NAME.DOMAIN; its owner may bring a domain of their own. Two
// parties must agree before the host serves a vault at a domain:
//
//   - the domain's holder, in DNS: a TXT record at _pdvault.<domain> whose
//     value is "vault=NAME.DOMAIN" (and an address or CNAME leading to the
//     host, as for any site);
//   - the vault's owner, in the vault: the domain recorded there
//     (vault.SetDomain), which the owner sets only once the record is
//     served.
//
// Routing asks both at every request, the DNS through a bounded cache: a
// domain whose TXT record goes away or names another vault stops being
// served here within domainTTL, and a vault whose owner removes the domain
// stops at once. Nothing is kept on the host's disk: any host that can
// open the vault can serve it at its domain.

// DomainLabel is where a domain's TXT record names its vault.
const DomainLabel = "_pdvault."

// Errors a caller must tell apart.
var (
	ErrHostDomain = policy.E(policy.KindInvalid, "invalid_domain", "that domain is the host's own; bring a domain you hold")
	ErrUnproven   = policy.E(policy.KindUnprocessable, "domain_unverified", "the domain's DNS does not name this vault yet: publish the TXT record given, wait until it is served, and try again")
	ErrNotServed  = policy.E(policy.KindMisdirected, "misdirected_request", "this host serves no vault at that domain")
)

// Resolver looks up TXT records (*net.Resolver is one).
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

const (
	// domainTTL and unknownTTL are how long a DNS answer is believed,
	// whatever its own TTL (Go's resolver does not give it): a change of
	// the record takes effect here within that.
	domainTTL  = 5 * time.Minute
	unknownTTL = 30 * time.Second
	// maxDomains bounds the cache: invented Host headers cost a stranger
	// nothing, so they must cost the host no more than this many entries.
	maxDomains = 10000
	// dnsRate bounds the TXT lookups the host makes a second, all domains
	// together (a flood of invented names spends this, not the resolver).
	dnsRate = 50
)

// domainEntry is what DNS said of a domain, until when.
type domainEntry struct {
	name  string // the vault the record names; "" for none
	until time.Time
}

// DomainRecord is the TXT record that points domain at the named vault.
type DomainRecord struct {
	Name  string `json:"name"`  // _pdvault.<domain>
	Type  string `json:"type"`  // TXT
	Value string `json:"value"` // vault=NAME.DOMAIN
}

// Domains says whether the host serves vaults at their owners' domains.
func (h *Host) Domains() bool { return h.opts.Vault.DomainIssuer != nil && h.opts.Domain != "" }

// Record is the TXT record the owner of the named vault publishes to
// bring domain to it.
func (h *Host) Record(name, domain string) (DomainRecord, error) {
	domain, err := h.checkDomain(domain)
	if err != nil {
		return DomainRecord{}, err
	}
	return h.record(name, domain), nil
}

func (h *Host) record(name, domain string) DomainRecord {
	return DomainRecord{Name: DomainLabel + domain, Type: "TXT", Value: "vault=" + name + "." + h.opts.Domain}
}

// checkDomain normalizes a domain an owner brings, or refuses it.
func (h *Host) checkDomain(domain string) (string, error) {
	if !h.Domains() {
		return "", vault.ErrNoDomains
	}
	domain = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(domain), "."))
	if !policy.ValidHostName(domain) {
		return "", vault.ErrBadDomain
	}
	if domain == h.opts.Domain || strings.HasSuffix(domain, "."+h.opts.Domain) {
		return "", ErrHostDomain
	}
	return domain, nil
}

// SetDomain brings domain to the named vault once its DNS names the vault
// (looked up now, not from the cache); "" takes the vault's domain away.
// The vault tells its organizations (vault.SetDomain).
func (h *Host) SetDomain(ctx context.Context, name, domain string) (vault.MoveResult, error) {
	if domain != "" {
		var err error
		if domain, err = h.checkDomain(domain); err != nil {
			return vault.MoveResult{}, err
		}
		named, err := h.lookup(ctx, domain)
		if err != nil {
			return vault.MoveResult{}, err
		}
		if named != name {
			rec := h.record(name, domain)
			return vault.MoveResult{}, ErrUnproven.WithReasons([]string{"publish " + rec.Name + " " + rec.Type + " \"" + rec.Value + "\""})
		}
	} else if !h.Domains() {
		return vault.MoveResult{}, vault.ErrNoDomains
	}
	hd, err := h.Acquire(ctx, name)
	if err != nil {
		return vault.MoveResult{}, err
	}
	defer hd.Release()
	old := hd.Vault.Domain()
	res, err := hd.Vault.SetDomain(ctx, domain)
	if err != nil {
		return res, err
	}
	h.mu.Lock()
	delete(h.domains, old)
	if domain != "" {
		h.domains[domain] = domainEntry{name: name, until: time.Now().Add(domainTTL)}
	}
	h.mu.Unlock()
	return res, nil
}

// VaultAt is the vault a custom domain's DNS names (from the cache while
// it is fresh). ErrNotServed if none; ErrThrottled while lookups are spent.
func (h *Host) VaultAt(ctx context.Context, domain string) (string, error) {
	// The host's own names are never an owner's domain: no lookup.
	if !h.Domains() || !policy.ValidHostName(domain) || domain == h.opts.Domain || strings.HasSuffix(domain, "."+h.opts.Domain) {
		return "", ErrNotServed
	}
	now := time.Now()
	h.mu.Lock()
	e, ok := h.domains[domain]
	h.mu.Unlock()
	if !ok || now.After(e.until) {
		name, err := h.lookup(ctx, domain)
		if err != nil {
			return "", err
		}
		e = domainEntry{name: name, until: now.Add(domainTTL)}
		if name == "" {
			e.until = now.Add(unknownTTL)
		}
		h.mu.Lock()
		h.remember(domain, e, now)
		h.mu.Unlock()
	}
	if e.name == "" {
		return "", ErrNotServed
	}
	return e.name, nil
}

// AcquireAt opens the vault a custom domain is served for: DNS names the
// vault, and the vault has the domain recorded. A sealed vault cannot say
// which domain it has: the error is vault.ErrSealed with the name DNS gave,
// so the caller may send its owner to the vault's own address to unlock it.
func (h *Host) AcquireAt(ctx context.Context, domain string) (*Handle, string, error) {
	name, err := h.VaultAt(ctx, domain)
	if err != nil {
		return nil, "", err
	}
	hd, err := h.Acquire(ctx, name)
	if errors.Is(err, ErrNoSuchVault) {
		return nil, "", ErrNotServed // DNS names a vault this host does not have
	}
	if err != nil {
		return nil, name, err
	}
	if hd.Vault.Domain() != domain {
		hd.Release()
		return nil, "", ErrNotServed
	}
	return hd, name, nil
}

// KnowsDomain says whether a TLS certificate may be requested for a
// custom domain: both DNS and the (unsealed) vault say it is the vault's.
func (h *Host) KnowsDomain(ctx context.Context, domain string) bool {
	hd, _, err := h.AcquireAt(ctx, domain)
	if err != nil {
		return false
	}
	hd.Release()
	return true
}

// remember caches what DNS said of a domain; h.mu is held. When full, it
// drops the stale entries, then any: the cache only saves lookups.
func (h *Host) remember(domain string, e domainEntry, now time.Time) {
	if len(h.domains) >= maxDomains {
		for d, old := range h.domains {
			if now.After(old.until) {
				delete(h.domains, d)
			}
		}
		for d := range h.domains {
			if len(h.domains) < maxDomains {
				break
			}
			delete(h.domains, d)
		}
	}
	h.domains[domain] = e
}

// lookup asks DNS which vault of this host the domain's TXT record names:
// "" when it names none, or more than one.
func (h *Host) lookup(ctx context.Context, domain string) (string, error) {
	if ok, wait := h.dnsLookups.Allow("", time.Now()); !ok {
		return "", policy.ErrRateLimited.WithRetryAfter(wait)
	}
	ctx, cancel := context.WithTimeout(ctx, dnsTimeout)
	defer cancel()
	txts, err := h.resolver.LookupTXT(ctx, DomainLabel+domain)
	if err != nil {
		// No such name, or no answer: either way the domain names no
		// vault now (a failing resolver is logged, not shown).
		if de, ok := err.(*net.DNSError); !ok || !de.IsNotFound {
			h.log.Warn("cannot look a custom domain up", "domain", domain, "err", err)
		}
		return "", nil
	}
	name := ""
	for _, t := range txts {
		v, ok := strings.CutPrefix(strings.TrimSpace(t), "vault=")
		if !ok {
			continue
		}
		// A record naming a vault at another host is that host's business.
		label, ok := strings.CutSuffix(strings.ToLower(strings.TrimSuffix(v, ".")), "."+h.opts.Domain)
		if !ok || ValidName(label) != nil {
			continue
		}
		if name != "" && name != label {
			return "", nil // two vaults here: neither
		}
		name = label
	}
	return name, nil
}

// dnsTimeout bounds one TXT lookup.
const dnsTimeout = 5 * time.Second

// Serves says whether this host answers at the DNS name: its own domain, a
// vault's name under it (here or, with shared storage, on any host), or a
// domain an owner brought whose DNS and unsealed vault agree. A name that
// is none costs at most one bounded lookup. It decides which names get
// certificates: ACME's host policy, and a proxy's on-demand TLS.
func (h *Host) Serves(ctx context.Context, name string) bool {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	switch {
	case h.opts.Domain == "" || name == "":
		return false
	case name == h.opts.Domain:
		return true
	}
	if label, ok := strings.CutSuffix(name, "."+h.opts.Domain); ok {
		return h.Knows(ctx, label)
	}
	return h.Domains() && h.KnowsDomain(ctx, name)
}
