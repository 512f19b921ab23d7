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
// stops at once. The domain book (domainbook.go) keeps, in the clear,
// which vault chose which domain, for when the vault cannot be asked: it
// is sealed, or served by another host.

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

// domainEntry is what DNS said of a domain, until when, and what the
// domain book said of that vault and the domain.
type domainEntry struct {
	name   string // the vault the record names; "" for none
	until  time.Time
	chosen int8 // in the book: 0 not asked yet, 1 yes, -1 no
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
	// The book never says more than the vault: a domain leaves the book
	// before the vault, and enters it after.
	if old != "" && old != domain {
		if err := h.book().DeleteDomain(ctx, old, name); err != nil {
			return vault.MoveResult{}, policy.Wrap(policy.KindUnavailable, "temporarily_unavailable", "cannot record the domain; try again", err)
		}
	}
	res, err := hd.Vault.SetDomain(ctx, domain)
	if err != nil {
		return res, err
	}
	if domain != "" {
		if err := h.book().PutDomain(ctx, domain, name); err != nil {
			// The vault has it; the next opening writes it to the book.
			h.log.Warn("cannot record a custom domain in the domain book", "vault", name, "err", err)
		}
	}
	h.mu.Lock()
	delete(h.domains, old)
	if domain != "" {
		h.domains[domain] = domainEntry{name: name, until: time.Now().Add(domainTTL), chosen: 1}
	}
	h.mu.Unlock()
	return res, nil
}

// DomainIssuer is a vault's public base URL at a domain its owner brought.
func (h *Host) DomainIssuer(domain string) string { return h.opts.Vault.DomainIssuer(domain) }

// ChoseDomain says whether the domain book records that the named vault's
// owner chose domain (cached with the domain's DNS answer). It is what a
// sealed vault's domain is known by: the unlock form is served there.
func (h *Host) ChoseDomain(ctx context.Context, domain, name string) bool {
	h.mu.Lock()
	e, ok := h.domains[domain]
	h.mu.Unlock()
	if ok && e.name == name && e.chosen != 0 {
		return e.chosen > 0
	}
	yes, err := h.book().HasDomain(ctx, domain, name)
	if err != nil {
		h.log.Warn("cannot read the domain book", "err", err)
		return false
	}
	h.noteChosen(domain, name, yes)
	return yes
}

// noteChosen caches what the book says of a pair, with the domain's DNS
// answer if that still names the vault.
func (h *Host) noteChosen(domain, name string, yes bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e, ok := h.domains[domain]; ok && e.name == name {
		e.chosen = -1
		if yes {
			e.chosen = 1
		}
		h.domains[domain] = e
	}
}

// openDomain is the domain of the named vault if it is open on this host,
// without opening or claiming it.
func (h *Host) openDomain(name string) string {
	h.mu.Lock()
	e, ok := h.entries[name]
	var v *vault.Vault
	if ok {
		v = e.v
	}
	h.mu.Unlock()
	if v == nil {
		return ""
	}
	return v.Domain()
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
		if h.ChoseDomain(ctx, domain, name) {
			// The open vault is the authority: the book was ahead of a
			// replica restored from before the owner's choice.
			if err := h.book().DeleteDomain(ctx, domain, name); err == nil {
				h.noteChosen(domain, name, false)
			}
		}
		return nil, "", ErrNotServed
	}
	return hd, name, nil
}

// KnowsDomain says whether a TLS certificate may be requested for a
// custom domain: DNS names a vault, and the domain book or the vault (if
// open here) says its owner chose the domain. Nothing is opened or
// claimed: any host sharing the book can answer for a vault served by
// another.
func (h *Host) KnowsDomain(ctx context.Context, domain string) bool {
	name, err := h.VaultAt(ctx, domain)
	if err != nil {
		return false
	}
	return h.ChoseDomain(ctx, domain, name) || h.openDomain(name) == domain
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
	return h.named(ctx, domain)
}

// named asks DNS, unbounded and uncached, which vault the domain names.
func (h *Host) named(ctx context.Context, domain string) (string, error) {
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
// domain an owner brought whose DNS agrees with the domain book. A name that
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
