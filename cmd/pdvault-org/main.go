// Command pdvault-org is a small organization-side tool for pdvault: make a
// key, ask a vault for data, collect the grant, read, and check a grant.
// It is built on api/client, which organizations can use directly.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/pdvault/pdvault/api/client"
	"github.com/pdvault/pdvault/internal/buildinfo"
	"github.com/pdvault/pdvault/policy"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

const usage = `pdvault-org: the organization side of pdvault.

Usage: pdvault-org <command> [flags]

  keygen --out key.json [--alg EdDSA|ES256]     make the organization's key (its thumbprint is your client_id)
  terms                                          print the vault's terms and their hash
  request --name N --url U --purpose P --ask COLLECTION:FIELD,FIELD [--claim COLLECTION:CLAIM] --duration 30d
                                                 sign and send an access request; prints the request id
  poll [--wait] [--out grant.json] REQUEST_ID    collect the grant once the owner decided
  read --grant grant.json COLLECTION [ID]        read granted data with a fresh DPoP proof
  introspect --grant grant.json                  ask whether the grant is still active
  release --grant grant.json                     end a grant you no longer need (RFC 7009)
  receipt --grant grant.json --deleted C1,C2     send a signed deletion receipt for an ended grant
  listen [--addr HOST:PORT] [--challenge FILE]   receive the vault's signed notices (and serve a domain challenge)
  verify [--check]                               get a domain challenge to publish / ask the vault to check it
  rotate-key --new new.json                      link a new key to your relationship, signed by the current one
  claims --grant grant.json                      read the derived claims a grant covers (a signed statement)
  intents                                        read the vault's open intents (signatures checked)
  offer --intent ID --text T --name N --url U --ask C:F,F [--price 450EUR]
                                                 answer an intent with a signed offer
  version                                        print the version and build information
  audit [--prove SEQ]                            witness the vault's audit log: check its signed tree head
                                                 against the one kept in --anchors; prove one of your entries

Common flags: --vault URL (env PDVAULT_ADDR, default http://127.0.0.1:8700),
              --key key.json (env PDVAULT_ORG_KEY),
              --anchors DIR (env PDVAULT_ORG_ANCHORS): where the vault's tree heads are kept;
                when set, read also checks the log after reading
`

type cli struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	listening      func(url string) // told where listen listens (tests)
}

type usageError struct{ msg string }

// hinted is an error with the next thing to try.
type hinted struct {
	error
	hint string
}

func (h hinted) Unwrap() error { return h.error }

// again is the --key flag to repeat in a suggested command, so that it
// works when copied: empty when the key comes from PDVAULT_ORG_KEY.
func (cm common) again(c *cli) string {
	if *cm.key == "" || *cm.key == c.getenv("PDVAULT_ORG_KEY") {
		return ""
	}
	k := *cm.key
	if strings.ContainsAny(k, " '\"$\\") {
		k = "'" + strings.ReplaceAll(k, "'", `'\''`) + "'"
	}
	return " --key " + k
}

func (e usageError) Error() string { return e.msg }

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	return (&cli{stdout: stdout, stderr: stderr, getenv: getenv}).run(ctx, args)
}

func (c *cli) run(ctx context.Context, args []string) int {
	stdout, stderr := c.stdout, c.stderr
	if len(args) > 0 && (args[0] == "version" || args[0] == "--version") {
		fmt.Fprintln(stdout, buildinfo.Read().Line("pdvault-org"))
		return 0
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmds := map[string]func(context.Context, []string) error{
		"keygen": c.keygen, "terms": c.terms, "request": c.request, "poll": c.poll, "read": c.read, "introspect": c.introspect,
		"release": c.release, "receipt": c.receipt, "verify": c.verify, "rotate-key": c.rotateKey, "listen": c.listen,
		"intents": c.intents, "offer": c.offer, "claims": c.claims, "audit": c.audit,
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "pdvault-org: error: unknown command %q\npdvault-org: hint: run \"pdvault-org help\"\n", args[0])
		return 2
	}
	err := cmd(ctx, args[1:])
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	}
	fmt.Fprintf(stderr, "pdvault-org: error: %v\n", err)
	var h hinted
	if errors.As(err, &h) {
		fmt.Fprintf(stderr, "pdvault-org: hint: %s\n", h.hint)
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "pdvault-org: hint: run \"pdvault-org %s -h\"\n", args[0])
		return 2
	}
	return 1
}

type common struct {
	fs      *flag.FlagSet
	vault   *string
	key     *string
	anchors *string
}

// commandFlags says, per command, its synopsis and which common flags
// it takes: -h shows those and no others.
var commandFlags = map[string]struct{ synopsis, common string }{
	"keygen":     {"keygen --out FILE [--alg EdDSA|ES256]", ""},
	"terms":      {"terms [--vault URL]", "vault"},
	"request":    {"request --key FILE --name N --url U --purpose P --ask COLLECTION:FIELD,... [--claim COLLECTION:CLAIM] --duration 30d", "vault key"},
	"poll":       {"poll --key FILE [--wait] [--out grant.json] REQUEST_ID", "vault key"},
	"read":       {"read --key FILE --grant grant.json COLLECTION [ID]", "vault key anchors"},
	"introspect": {"introspect --key FILE --grant grant.json", "vault key"},
	"release":    {"release --key FILE --grant grant.json", "vault key"},
	"receipt":    {"receipt --key FILE --grant grant.json --deleted C1,C2", "vault key"},
	"listen":     {"listen --key FILE [--addr HOST:PORT] [--challenge FILE]", "vault key"},
	"verify":     {"verify --key FILE [--check]", "vault key"},
	"rotate-key": {"rotate-key --key FILE --new new.json", "vault key"},
	"claims":     {"claims --key FILE --grant grant.json", "vault key"},
	"intents":    {"intents [--vault URL]", "vault"},
	"offer":      {"offer --key FILE --intent ID --text T --name N --url U --ask C:F,F [--price 450EUR]", "vault key"},
	"audit":      {"audit --key FILE --anchors DIR [--prove SEQ]", "vault key anchors"},
}

func (c *cli) flags(name string) common {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported once, by run, with a hint
	def := c.getenv("PDVAULT_ADDR")
	if def == "" {
		def = "http://127.0.0.1:8700"
	}
	spec := commandFlags[name]
	cm := common{fs: fs, vault: &def, key: new(string), anchors: new(string)}
	*cm.key, *cm.anchors = c.getenv("PDVAULT_ORG_KEY"), c.getenv("PDVAULT_ORG_ANCHORS")
	for _, f := range strings.Fields(spec.common) {
		switch f {
		case "vault":
			cm.vault = fs.String("vault", def, "vault URL, its issuer (env PDVAULT_ADDR; pdvault's --addr)")
		case "key":
			cm.key = fs.String("key", *cm.key, "the organization's private key file (env PDVAULT_ORG_KEY)")
		case "anchors":
			cm.anchors = fs.String("anchors", *cm.anchors, "directory of the vault's tree heads kept, to witness its log (env PDVAULT_ORG_ANCHORS)")
		}
	}
	fs.Usage = func() {
		fmt.Fprintf(c.stdout, "Usage: pdvault-org %s\n\n", spec.synopsis)
		fs.SetOutput(c.stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return cm
}

// quietParse parses, printing the usage only when asked for (-h), not
// before an error: run prints the error with a hint instead.
func quietParse(fs *flag.FlagSet, args []string) error {
	usage := fs.Usage
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.Usage = usage
	if errors.Is(err, flag.ErrHelp) {
		usage()
		return err
	}
	if err != nil {
		return usageError{err.Error()}
	}
	return nil
}

// parse parses flags that may come before or after positional arguments.
func (cm common) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := quietParse(cm.fs, args); err != nil {
			return nil, err
		}
		args = cm.fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func (cm common) org(needKey bool) (*client.Org, error) {
	var k *client.Key
	var err error
	if *cm.key != "" {
		if k, err = client.LoadKey(*cm.key); err != nil {
			return nil, fmt.Errorf("key %s: %w", *cm.key, err)
		}
	} else if needKey {
		return nil, usageError{"no key: pass --key key.json (make one with pdvault-org keygen)"}
	} else if k, err = client.GenerateKey(""); err != nil {
		return nil, err
	}
	return client.NewOrg(*cm.vault, k, nil)
}

func (c *cli) printJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (c *cli) keygen(ctx context.Context, args []string) error {
	cm := c.flags("keygen")
	out := cm.fs.String("out", "", "file for the private key (required; never overwritten)")
	alg := cm.fs.String("alg", "EdDSA", "EdDSA (Ed25519) or ES256 (P-256)")
	if _, err := cm.parse(args); err != nil {
		return err
	}
	if *out == "" {
		return usageError{"--out FILE is required"}
	}
	k, err := client.GenerateKey(*alg)
	if err != nil {
		return usageError{err.Error()}
	}
	b, _ := k.MarshalJSON()
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "Wrote %s. Your client_id (key thumbprint) is %s\n", *out, k.Thumbprint())
	return nil
}

func (c *cli) terms(ctx context.Context, args []string) error {
	cm := c.flags("terms")
	if _, err := cm.parse(args); err != nil {
		return err
	}
	o, err := cm.org(false)
	if err != nil {
		return err
	}
	t, err := o.Terms(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%s\nterms_hash: %s\n", t.Text, t.Hash)
	return nil
}

type askFlag []client.AuthorizationDetail

func (a *askFlag) String() string { return "" }
func (a *askFlag) Set(s string) error {
	coll, fields, ok := strings.Cut(s, ":")
	if !ok || coll == "" || fields == "" {
		return fmt.Errorf("write COLLECTION:FIELD,FIELD")
	}
	*a = append(*a, client.Detail(coll, strings.Split(fields, ",")...))
	return nil
}

type claimFlag []client.AuthorizationDetail

func (f *claimFlag) String() string { return "" }
func (f *claimFlag) Set(s string) error {
	coll, claim, ok := strings.Cut(s, ":")
	if !ok || coll == "" || claim == "" {
		return fmt.Errorf("write COLLECTION:CLAIM, e.g. profile:age_over:18")
	}
	*f = append(*f, client.AuthorizationDetail{Collection: coll, Claims: []string{claim}})
	return nil
}

// merge adds the claims to the details of the same collection.
func (f claimFlag) merge(ask askFlag) askFlag {
	for _, c := range f {
		found := false
		for i := range ask {
			if ask[i].Collection == c.Collection {
				ask[i].Claims = append(ask[i].Claims, c.Claims...)
				found = true
			}
		}
		if !found {
			ask = append(ask, c)
		}
	}
	return ask
}

func (c *cli) request(ctx context.Context, args []string) error {
	cm := c.flags("request")
	name := cm.fs.String("name", "", "organization name shown to the owner (required)")
	uri := cm.fs.String("url", "", "organization URL, https (required)")
	purpose := cm.fs.String("purpose", "", "a purpose id from the owner's terms (required)")
	purposeText := cm.fs.String("purpose-text", "", "the purpose in your own words")
	dur := cm.fs.String("duration", "30d", "how long you need the data (90d, 12h, ...)")
	callback := cm.fs.String("callback", "", "URL for revocation notices")
	asJSON := cm.fs.Bool("json", false, "print the vault's answer as JSON")
	var ask askFlag
	var claims claimFlag
	cm.fs.Var(&ask, "ask", "COLLECTION:FIELD,FIELD to ask for (repeatable)")
	cm.fs.Var(&claims, "claim", "COLLECTION:CLAIM, a derived claim instead of fields, e.g. profile:age_over:18 (repeatable)")
	if _, err := cm.parse(args); err != nil {
		return err
	}
	if *name == "" || *uri == "" || *purpose == "" || len(ask)+len(claims) == 0 {
		return usageError{"--name, --url, --purpose and at least one --ask or --claim are required"}
	}
	ask = claims.merge(ask)
	d, err := policy.ParseDuration(*dur)
	if err != nil {
		return usageError{err.Error()}
	}
	o, err := cm.org(true)
	if err != nil {
		return err
	}
	t, err := o.Request(ctx, client.AccessRequest{ClientName: *name, ClientURI: *uri, Purpose: *purpose, PurposeText: *purposeText,
		AuthorizationDetails: ask, Duration: int64(time.Duration(d) / time.Second), CallbackURI: *callback})
	if err != nil {
		return err
	}
	if *asJSON {
		return c.printJSON(t)
	}
	fmt.Fprintf(c.stdout, "%s\n", t.RequestID)
	fmt.Fprintf(c.stderr, "Request sent. Collect the grant with: pdvault-org poll%s --wait %s\n", cm.again(c), t.RequestID)
	return nil
}

func (c *cli) poll(ctx context.Context, args []string) error {
	cm := c.flags("poll")
	wait := cm.fs.Bool("wait", false, "keep polling until the owner decides")
	out := cm.fs.String("out", "", "also write the grant to this file")
	pos, err := cm.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"poll takes one REQUEST_ID"}
	}
	o, err := cm.org(true)
	if err != nil {
		return err
	}
	var tok client.Token
	if *wait {
		tok, err = o.WaitForGrant(ctx, client.Ticket{RequestID: pos[0], Interval: 5})
	} else {
		tok, err = o.Poll(ctx, pos[0])
	}
	if client.IsCode(err, "authorization_pending") || client.IsCode(err, "slow_down") {
		return hinted{err, fmt.Sprintf("the owner has not decided yet; wait for it with: pdvault-org poll%s --wait %s", cm.again(c), pos[0])}
	}
	if err != nil {
		return err
	}
	if *out != "" {
		b, _ := json.MarshalIndent(tok, "", "  ")
		if err := os.WriteFile(*out, append(b, '\n'), 0o600); err != nil {
			return err
		}
	}
	return c.printJSON(tok)
}

// grantArg reads a grant from a file (a token response or the bare token)
// or takes it as given.
func grantArg(s string) (string, error) {
	if s == "" {
		return "", usageError{"--grant is required (a file written by poll --out, or the token)"}
	}
	b, err := os.ReadFile(s)
	if err != nil {
		if strings.Count(s, ".") == 2 {
			return s, nil
		}
		return "", err
	}
	b = []byte(strings.TrimSpace(string(b)))
	if len(b) > 0 && b[0] == '{' {
		var t client.Token
		if err := json.Unmarshal(b, &t); err != nil || t.AccessToken == "" {
			return "", fmt.Errorf("%s holds no access_token", s)
		}
		return t.AccessToken, nil
	}
	return string(b), nil
}

func (c *cli) read(ctx context.Context, args []string) error {
	cm := c.flags("read")
	g := cm.fs.String("grant", "", "the grant: a file from poll --out, or the token")
	limit := cm.fs.Int("limit", 0, "records per page")
	cursor := cm.fs.String("cursor", "", "continue from this cursor")
	pos, err := cm.parse(args)
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 {
		return usageError{"read takes COLLECTION [ID]"}
	}
	grant, err := grantArg(*g)
	if err != nil {
		return err
	}
	o, err := cm.org(true)
	if err != nil {
		return err
	}
	var out any
	if len(pos) == 2 {
		out, err = o.ReadRecord(ctx, grant, pos[0], pos[1])
	} else {
		out, err = o.ReadCollection(ctx, grant, pos[0], *limit, *cursor)
	}
	if err != nil {
		return err
	}
	if err := c.printJSON(out); err != nil {
		return err
	}
	if seq := o.LastAuditSeq(); seq > 0 {
		fmt.Fprintf(c.stderr, "logged as audit entry %d (pdvault-org audit%s --prove %d)\n", seq, cm.again(c), seq)
	}
	return c.witness(ctx, o, *cm.anchors)
}

// witness checks the vault's log against the kept tree head, if a place
// to keep heads was given.
func (c *cli) witness(ctx context.Context, o *client.Org, dir string) error {
	if dir == "" {
		return nil
	}
	a, err := o.CheckLog(ctx, client.AnchorStore{Dir: dir})
	if err != nil {
		return fmt.Errorf("the vault's audit log: %w", err)
	}
	fmt.Fprintf(c.stderr, "audit log: consistent, %d entries (tree head kept in %s)\n", a.Size, dir)
	return nil
}

func (c *cli) audit(ctx context.Context, args []string) error {
	cm := c.flags("audit")
	prove := cm.fs.Int64("prove", 0, "also prove that this entry of yours is in the log")
	if _, err := cm.parse(args); err != nil {
		return err
	}
	if *cm.anchors == "" {
		return usageError{"--anchors DIR (or env PDVAULT_ORG_ANCHORS) is required: it is where the tree heads are kept"}
	}
	o, err := cm.org(*prove > 0)
	if err != nil {
		return err
	}
	if err := c.witness(ctx, o, *cm.anchors); err != nil {
		return err
	}
	if *prove > 0 {
		pe, err := o.ProveEntry(ctx, *prove)
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "entry %d is in the log of %d entries:\n%s\n", pe.Seq, pe.TreeHead.Size, pe.Entry)
	}
	return nil
}

func (c *cli) introspect(ctx context.Context, args []string) error {
	return c.withGrant("introspect", args, func(o *client.Org, grant string) error {
		in, err := o.Introspect(ctx, grant)
		if err != nil {
			return err
		}
		return c.printJSON(in)
	})
}

// withGrant is the shape of the commands that take only --grant (and the
// common flags): parse, read the grant, make the client, run.
func (c *cli) withGrant(name string, args []string, run func(o *client.Org, grant string) error) error {
	cm := c.flags(name)
	g := cm.fs.String("grant", "", "the grant: a file from poll --out, or the token")
	if _, err := cm.parse(args); err != nil {
		return err
	}
	grant, err := grantArg(*g)
	if err != nil {
		return err
	}
	o, err := cm.org(true)
	if err != nil {
		return err
	}
	return run(o, grant)
}
