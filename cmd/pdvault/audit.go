package main

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pdvault/pdvault/api/client"
	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
)

const auditUsage = `Usage:
  pdvault audit list [--limit N] [--cursor C] [--json]   newest first
  pdvault audit verify [--json]                           verify the running vault's log and state (online)
  pdvault audit verify --dir DIR|FILE                     verify a stopped vault or a backup file (offline; asks for the passphrase)

verify rebuilds the Merkle tree from every entry, checks the signed tree
heads, every authenticated row and the cross-checks, and then holds the log
against the tree head this machine kept from its last verification of the
same vault: a log that is shorter (cut, or a whole older copy) or not
consistent with it (rewritten) is refused. The new head is kept in
--anchors (env PDVAULT_ANCHORS; default $XDG_CONFIG_HOME/pdvault/anchors or
~/.config/pdvault/anchors).

Flags: --addr URL (env PDVAULT_ADDR), --token T (env PDVAULT_TOKEN),
       --passphrase-file F (env PDVAULT_PASSPHRASE, with --dir)
`

func (a *app) cmdAudit(ctx context.Context, args []string) error {
	oc, err := a.ownerCommand("audit", auditUsage, args)
	if err != nil {
		return err
	}
	sub, fs := oc.sub, oc.fs
	asJSON := fs.Bool("json", false, "print JSON")
	limit := fs.Int("limit", 50, "entries to show")
	cursor := fs.String("cursor", "", "continue from this cursor")
	dir := fs.String("dir", "", "verify offline: a stopped vault's directory, or a backup file")
	pfile := fs.String("passphrase-file", "", "with --dir: read the passphrase from this file (or env PDVAULT_PASSPHRASE)")
	anchors := fs.String("anchors", a.defaultAnchors(), "where the tree heads of verified logs are kept")
	switch sub {
	case "list":
		_, c, err := oc.start()
		if err != nil {
			return err
		}
		p, err := c.ListAudit(ctx, *limit, *cursor)
		if err != nil {
			return err
		}
		if *asJSON {
			return a.printJSON(p)
		}
		for _, e := range p.Entries {
			fmt.Fprintln(a.stdout, auditLine(e))
		}
		if p.NextCursor != "" {
			fmt.Fprintf(a.stderr, "More: pdvault audit list --cursor %s\n", p.NextCursor)
		}
		return nil
	case "verify":
		if _, err := a.interleaved(fs, oc.args); err != nil {
			return err
		}
		var rep client.AuditReport
		var src client.AuditSource
		if *dir != "" {
			v, done, err := a.openForVerify(ctx, *dir, *pfile)
			if err != nil {
				return err
			}
			defer done()
			r, err := v.VerifyAudit(ctx)
			if err != nil {
				return err
			}
			rep = offlineReport(r)
			src = vaultAuditSource{v}
		} else {
			_, c, err := oc.start()
			if err != nil {
				return err
			}
			if rep, err = c.VerifyAudit(ctx); err != nil {
				return err
			}
			src = client.OwnerAuditSource{Owner: c}
		}
		if *asJSON {
			a.printJSON(rep)
		}
		if !rep.OK {
			for _, p := range rep.Problems {
				fmt.Fprintf(a.stdout, "entry %d: %s\n", p.Seq, p.Problem)
			}
			return hint(fmt.Errorf("the audit log does not verify (%d problems)", len(rep.Problems)),
				"the log was changed outside pdvault; restore from a backup and keep this vault for investigation")
		}
		kept := ""
		if rep.TreeHead != "" {
			if kept, err = a.witness(ctx, src, client.AnchorStore{Dir: *anchors}, rep.TreeHead); err != nil {
				return err
			}
		}
		fmt.Fprintf(a.stdout, "ok: %d entries, %d signed checkpoints, head %s\n", rep.Entries, rep.Checkpoints, rep.Head)
		if kept != "" {
			fmt.Fprintln(a.stdout, kept)
		}
		if u := rep.Unlogged; u.RequestsDropped+u.StrangerRefusals+u.ReadRefusals > 0 {
			fmt.Fprintf(a.stdout, "counted, not logged (since the vault started): %d requests over the pending limits, %d requests from unknown keys breaking the terms, %d refused reads beyond a grant's logging rate\n",
				u.RequestsDropped, u.StrangerRefusals, u.ReadRefusals)
		}
		return nil
	}
	return usageError{fmt.Sprintf("unknown audit subcommand %q", sub), "use list or verify"}
}

// witness holds a verified head against the anchor kept for its vault and
// keeps the newer one.
func (a *app) witness(ctx context.Context, src client.AuditSource, store client.AnchorStore, head string) (string, error) {
	vid, ok := client.VaultIDOf(head)
	if !ok {
		return "", policy.ErrBadTreeHead
	}
	old, err := store.Load(vid)
	if err != nil {
		return "", err
	}
	next, err := client.Witness(ctx, src, old, head)
	if errors.Is(err, policy.ErrLogRolledBack) || errors.Is(err, policy.ErrLogForked) {
		return "", hint(err, "this machine verified a longer or different log of this vault before; the vault's file was cut, rolled back or replaced. Keep it for investigation; restore from a backup you trust")
	}
	if err != nil {
		return "", err
	}
	if err := store.Save(next); err != nil {
		return "", fmt.Errorf("cannot keep the tree head: %w", err)
	}
	if old == nil {
		return fmt.Sprintf("kept the signed tree head (size %d) in %s: later verifications must extend it", next.Size, store.Dir), nil
	}
	return fmt.Sprintf("consistent with the tree head kept on %s (size %d); now keeping size %d", old.Seen.Format("2006-01-02"), old.Size, next.Size), nil
}

// deviceFile is where this machine keeps its device token for the vault
// at the --addr in use (one file per address), beside the anchors.
func (a *app) deviceFile(rf remoteFlags) string {
	h := sha256.Sum256([]byte(*rf.addr))
	return filepath.Join(filepath.Dir(a.defaultAnchors()), "devices", hex.EncodeToString(h[:8]))
}

func (a *app) defaultAnchors() string {
	if d := a.getenv("PDVAULT_ANCHORS"); d != "" {
		return d
	}
	if d := a.getenv("XDG_CONFIG_HOME"); d != "" {
		return filepath.Join(d, "pdvault", "anchors")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".config", "pdvault", "anchors")
	}
	return "pdvault-anchors"
}

// openForVerify opens a stopped vault, or a copy of a backup file (opening
// may upgrade the schema: a backup is never changed in place).
func (a *app) openForVerify(ctx context.Context, path, pfile string) (*vault.Vault, func(), error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil, hint(vault.ErrNoVault, "--dir names a vault directory or a backup file")
	}
	dir := path
	cleanup := func() {}
	if !st.IsDir() {
		tmp, err := os.MkdirTemp("", "pdvault-verify-")
		if err != nil {
			return nil, nil, err
		}
		cleanup = func() { os.RemoveAll(tmp) }
		b, err := os.ReadFile(path)
		if err == nil {
			err = os.WriteFile(filepath.Join(tmp, vault.DBFile), b, 0o600)
		}
		if err != nil {
			cleanup()
			return nil, nil, err
		}
		dir = tmp
	}
	v, _, err := a.openVault(ctx, dir, pfile, vault.Options{})
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return v, func() { v.Close(); cleanup() }, nil
}

func offlineReport(r vault.AuditReport) client.AuditReport {
	rep := client.AuditReport{OK: r.OK, Entries: r.Entries, Checkpoints: r.Checkpoints, Head: r.Head, TreeHead: r.TreeHead}
	for _, p := range r.Problems {
		rep.Problems = append(rep.Problems, struct {
			Seq     int64  `json:"seq"`
			Problem string `json:"problem"`
		}{p.Seq, p.Problem})
	}
	return rep
}

// vaultAuditSource is an open vault as a client.AuditSource.
type vaultAuditSource struct{ v *vault.Vault }

func (s vaultAuditSource) Keys(ctx context.Context) ([]ed25519.PublicKey, error) {
	var out []ed25519.PublicKey
	for _, k := range s.v.JWKS().Keys {
		if pk, ok := k.Key.(ed25519.PublicKey); ok {
			out = append(out, pk)
		}
	}
	return out, nil
}

func (s vaultAuditSource) Consistency(ctx context.Context, from int64) (client.ConsistencyProof, error) {
	p, err := s.v.Consistency(ctx, from)
	if errors.Is(err, vault.ErrBeyondLog) {
		return client.ConsistencyProof{}, policy.ErrLogRolledBack
	}
	return client.ConsistencyProof{TreeHead: p.TreeHead, Size: p.Size, Proof: p.Proof}, err
}
