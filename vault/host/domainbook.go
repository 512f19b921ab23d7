package host

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
)

// The domain book: which vault's owner chose which domain, in the clear.
//
// The vault is the authority on its domain, but a sealed vault cannot be
// asked, and a host that does not serve the vault cannot ask it. Without a
// record outside the vault, the owner of a sealed vault reached at their
// domain is sent home to unlock (and logs in twice), another host cannot
// vouch for the domain's certificate, and a router cannot be told where
// the domain goes. The book is that record. It holds nothing DNS does not
// already publish (the _pdvault TXT record names the vault), so it is
// kept unsealed.
//
// The book is written only after the vault (SetDomain), and erased before
// it, so it never says more than the vault did; a host opening a vault
// writes the vault's domain back (a crash between the two), and a host
// finding an open vault without the domain the book names strikes the
// entry. What the book says counts only while DNS agrees.

// DomainBook keeps the (domain, vault) pairs. A Placement that implements
// it is shared by all hosts; otherwise the host keeps one in its
// directory.
type DomainBook interface {
	// PutDomain records that the named vault's owner chose domain.
	PutDomain(ctx context.Context, domain, name string) error
	// DeleteDomain strikes the pair; no error if it was not there.
	DeleteDomain(ctx context.Context, domain, name string) error
	// HasDomain says whether the pair is recorded.
	HasDomain(ctx context.Context, domain, name string) (bool, error)
	// Domains lists every pair, by domain.
	Domains(ctx context.Context) ([]DomainPair, error)
}

// DomainPair is one domain an owner brought and their vault's name.
type DomainPair struct {
	Domain string `json:"domain"`
	Name   string `json:"name"`
}

// book is the host's domain book.
func (h *Host) book() DomainBook {
	if b, ok := h.opts.Placement.(DomainBook); ok {
		return b
	}
	return dirBook(filepath.Join(h.opts.Root, "domains"))
}

// dirBook keeps the pairs as empty files DIR/<domain>/<name>: a domain
// and a vault name are each one path element (policy.ValidHostName,
// ValidName), and a pair is created or struck atomically.
type dirBook string

func (d dirBook) path(domain, name string) (string, error) {
	if !policy.ValidHostName(domain) || ValidName(name) != nil {
		return "", ErrBadName
	}
	return filepath.Join(string(d), domain, name), nil
}

func (d dirBook) PutDomain(_ context.Context, domain, name string) error {
	p, err := d.path(domain, name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}

func (d dirBook) DeleteDomain(_ context.Context, domain, name string) error {
	p, err := d.path(domain, name)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	os.Remove(filepath.Dir(p)) // only if empty
	return nil
}

func (d dirBook) HasDomain(_ context.Context, domain, name string) (bool, error) {
	p, err := d.path(domain, name)
	if err != nil {
		return false, nil
	}
	_, err = os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

func (d dirBook) Domains(context.Context) ([]DomainPair, error) {
	doms, err := os.ReadDir(string(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []DomainPair
	for _, dom := range doms {
		if !dom.IsDir() || !policy.ValidHostName(dom.Name()) {
			continue
		}
		names, err := os.ReadDir(filepath.Join(string(d), dom.Name()))
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if ValidName(n.Name()) == nil {
				out = append(out, DomainPair{Domain: dom.Name(), Name: n.Name()})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Domain != out[j].Domain {
			return out[i].Domain < out[j].Domain
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// forgetDomains strikes every pair of the named vault: it is erased.
func (h *Host) forgetDomains(ctx context.Context, name string) error {
	b := h.book()
	pairs, err := b.Domains(ctx)
	if err != nil {
		return err
	}
	for _, p := range pairs {
		if p.Name == name {
			if err := b.DeleteDomain(ctx, p.Domain, name); err != nil {
				return err
			}
		}
	}
	h.mu.Lock()
	for d, e := range h.domains {
		if e.name == name {
			delete(h.domains, d)
		}
	}
	h.mu.Unlock()
	return nil
}

// Routes are the domains owners brought that DNS still gives to their
// vaults, each with the vault's address on this host's domain: what a
// router needs to send a domain where its vault's name goes. Each pair
// costs a DNS lookup (not the host's bounded, cached ones: this is an
// operator's command, not a stranger's request).
func (h *Host) Routes(ctx context.Context) ([]DomainPair, error) {
	if !h.Domains() {
		return nil, vault.ErrNoDomains
	}
	pairs, err := h.book().Domains(ctx)
	if err != nil {
		return nil, err
	}
	var out []DomainPair
	for _, p := range pairs {
		named, err := h.named(ctx, p.Domain)
		if err != nil {
			return nil, err
		}
		if named == p.Name {
			out = append(out, DomainPair{Domain: p.Domain, Name: p.Name + "." + h.opts.Domain})
		}
	}
	return out, nil
}
