package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/pdvault/pdvault/api"
	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
	"github.com/pdvault/pdvault/vault/host"
)

const hostUsage = `Usage:
  pdvault host serve --domain NAME [--root DIR] [--addr HOST:PORT] [--public-url URL] ...
                     serve every vault under DIR, each at https://<name>.NAME
  pdvault host invite [--root DIR] [--expires 168h]
                     make a single-use sign-up code (shown once)
  pdvault host create NAME [--root DIR] [--passphrase-file FILE]
                     create a vault for a person, who types its passphrase
  pdvault host list [--root DIR] [--format text|json]
                     the vaults: name, size on disk, last change (never their content)
  pdvault host delete NAME [--root DIR] --yes
                     erase a vault's directory (the host must be stopped)
  pdvault host release NAME [--root DIR]
                     hand a vault over to another host: the serving host
                     finishes its requests, flushes its replica and gives
                     up its lease (needs serve --replica)
  pdvault host domains --domain NAME [--root DIR] [--replica s3://...] [--format map|json]
                     the domains owners brought that DNS still gives to
                     their vaults, as an HAProxy map: DOMAIN NAME.DOMAIN

A host keeps one directory and one SQLite file per vault under DIR/vaults/,
each with its own keys. It never stores a passphrase: after a restart every
vault is sealed (organizations hear 503 vault_sealed) until its owner logs
in. See docs/operations.md, "Hosting pdvault for many people".

With --replica s3://BUCKET/PREFIX?endpoint=URL, hosts share vaults through
S3-compatible storage: each open vault is replicated by Litestream and
served under a lease there, so one host at a time writes it, and a router
(HAProxy, Caddy) sends each vault's name to its host. Credentials come from
AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. See docs/operations.md,
"Beyond one host".

With --custom-domains, an owner may move their vault to a domain they hold:
it is served there while the TXT record _pdvault.<domain> says
vault=<name>.DOMAIN and the owner has chosen it (PUT /v1/owner/domain). See
docs/operations.md, "A domain of your own".
`

func (a *app) cmdHost(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(a.stdout, hostUsage)
		if len(args) == 0 {
			return usageError{"host needs a subcommand", `run "pdvault host -h"`}
		}
		return flagHelp
	}
	switch args[0] {
	case "serve":
		return a.hostServe(ctx, args[1:])
	case "invite":
		return a.hostInvite(args[1:])
	case "create":
		return a.hostCreate(ctx, args[1:])
	case "list":
		return a.hostList(args[1:])
	case "delete":
		return a.hostDelete(ctx, args[1:])
	case "release":
		return a.hostRelease(ctx, args[1:])
	case "domains":
		return a.hostDomains(ctx, args[1:])
	}
	return usageError{fmt.Sprintf("unknown host subcommand %q", args[0]), `run "pdvault host -h"`}
}

func (a *app) defaultHostRoot() string {
	if d := a.getenv("PDVAULT_HOST_ROOT"); d != "" {
		return d
	}
	return a.defaultDir() + "-host"
}

// hostLock is held by a serving host: commands that remove or replace a
// vault's files refuse while it runs (it may have the database open).
func hostLock(root string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(root, "host.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, errHostRunning
	}
	return f, nil
}

var errHostRunning = errors.New("a host is serving this directory")

// errNotAVault: a TLS handshake named a host name that is no vault here.
var errNotAVault = errors.New("no vault by that name on this host")

type hostSettings struct {
	root, domain, addr, publicURL, signup string
	certFile, keyFile, trustedProxies     string
	acme                                  bool
	acmeDir, acmeEmail, acmeRoots         string
	maxOpen                               int
	idle                                  time.Duration
	quota                                 vault.Quota
	rateAddr, rateOrg                     float64
	allowLoopback                         bool
	logLevel, logFormat                   string
	replica, hostID, handoverKeyFile      string
	leaseTTL, replicaSync, replicaMaxLag  time.Duration
	pageSize                              int
	confirmTimeout                        time.Duration
	customDomains, replicaConfirm         bool
	dnsResolver                           string
}

func (a *app) hostServe(ctx context.Context, args []string) error {
	var s hostSettings
	fs := a.flags("host serve", "host serve --domain NAME [--root DIR] [--addr HOST:PORT] [--public-url URL] [--signup invite|open|closed]")
	fs.StringVar(&s.root, "root", a.defaultHostRoot(), "the host's directory: vaults/<name>/ and invites/ (env PDVAULT_HOST_ROOT)")
	fs.StringVar(&s.domain, "domain", "", "vaults are served as <name>.DOMAIN; DOMAIN itself serves sign-up (required)")
	fs.StringVar(&s.addr, "addr", DefaultAddr, "address to listen on")
	fs.StringVar(&s.publicURL, "public-url", "", "how clients reach the apex, e.g. https://vaults.example.org (default http://DOMAIN:PORT); vaults' issuers take its scheme and port")
	fs.StringVar(&s.signup, "signup", "invite", "who may create a vault over the web: invite (a code from \"pdvault host invite\"), open, or closed")
	fs.BoolVar(&s.acme, "acme", false, "serve HTTPS with a certificate per vault (NAME.DOMAIN) and for DOMAIN, obtained and renewed by ACME (TLS-ALPN-01 on --addr; Let's Encrypt unless --acme-directory); implies agreeing to the CA's terms")
	fs.StringVar(&s.acmeDir, "acme-directory", "", "ACME directory URL of another CA (staging, a private CA)")
	fs.StringVar(&s.acmeEmail, "acme-email", "", "contact address given to the ACME CA (expiry warnings)")
	fs.StringVar(&s.acmeRoots, "acme-ca-roots", "", "PEM file of roots to trust for the ACME directory itself (a private CA)")
	fs.BoolVar(&s.customDomains, "custom-domains", false, "let owners bring their own domains: served when the domain's TXT record _pdvault.<domain> says vault=NAME.DOMAIN and the owner chose it (PUT /v1/owner/domain); with --acme, each gets its certificate")
	fs.StringVar(&s.dnsResolver, "dns-resolver", "", "HOST:PORT of the DNS resolver custom domains are looked up with (default: the system's)")
	fs.StringVar(&s.certFile, "tls-cert", "", "serve HTTPS with this PEM certificate chain (a wildcard for *.DOMAIN and DOMAIN)")
	fs.StringVar(&s.keyFile, "tls-key", "", "the PEM private key of --tls-cert")
	fs.StringVar(&s.trustedProxies, "trusted-proxy", "", "comma-separated addresses or CIDRs of reverse proxies whose Forwarded / X-Forwarded-* headers are believed")
	fs.IntVar(&s.maxOpen, "max-open", 1000, "vaults open at once (each holds a few file descriptors and its caches); the least recently used close first")
	fs.DurationVar(&s.idle, "idle", 10*time.Minute, "close a vault unused this long (it reopens without its passphrase)")
	fs.Int64Var(&s.quota.Bytes, "quota-bytes", 1<<30, "bytes each vault may hold, documents included; 0 for no limit")
	fs.Int64Var(&s.quota.Records, "quota-records", 1_000_000, "records each vault may hold; 0 for no limit")
	fs.Int64Var(&s.quota.Documents, "quota-documents", 10_000, "documents each vault may hold; 0 for no limit")
	fs.Float64Var(&s.rateAddr, "rate-limit-address", 300, "requests per second per client address, per vault and for the host as a whole (burst twice that); 0 for no limit")
	fs.Float64Var(&s.rateOrg, "rate-limit-org", 200, "requests per second per organization key, per vault (burst twice that); 0 for no limit")
	fs.BoolVar(&s.allowLoopback, "allow-loopback-http", false, "let notices reach loopback addresses over plain HTTP (local testing only)")
	fs.StringVar(&s.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&s.logFormat, "log-format", "text", "text or json")
	a.replicaFlags(fs, &s)
	fs.IntVar(&s.pageSize, "page-size", 4096, "SQLite page size of vaults created from now on: 4096 keeps many small vaults small; 16384 adds documents faster")
	fs.StringVar(&s.handoverKeyFile, "handover-key-file", "", "a 32-byte key (base64) shared by the operator's hosts: a vault moved between them stays unsealed (default: moved vaults arrive sealed)")
	if err := a.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{"host serve takes no arguments", `run "pdvault host serve -h" for its flags`}
	}
	domain := strings.ToLower(strings.TrimSuffix(s.domain, "."))
	if domain == "" || strings.ContainsAny(domain, "/:@ ") {
		return usageError{"host serve needs --domain NAME", "e.g. --domain vaults.example.org: vaults are then alice.vaults.example.org, ..."}
	}
	switch s.signup {
	case "invite", "open", "closed":
	default:
		return usageError{fmt.Sprintf("--signup %q", s.signup), "choose invite, open or closed"}
	}
	switch s.pageSize {
	case 4096, 8192, 16384, 32768, 65536:
	default:
		return usageError{fmt.Sprintf("--page-size %d", s.pageSize), "4096, 8192, 16384, 32768 or 65536"}
	}
	if s.quota.Bytes < 0 || s.quota.Records < 0 || s.quota.Documents < 0 || s.maxOpen < 1 {
		return usageError{"quotas are 0 (none) or more, and --max-open at least 1", ""}
	}
	if s.dnsResolver != "" {
		if !s.customDomains {
			return usageError{"--dns-resolver needs --custom-domains", ""}
		}
		if err := checkResolver(s.dnsResolver); err != nil {
			return err
		}
	}
	proxies, err := parseProxies(s.trustedProxies)
	if err != nil {
		return err
	}
	log, err := newLogger(a.stderr, s.logLevel, s.logFormat)
	if err != nil {
		return err
	}
	to := tlsOptions{certFile: s.certFile, keyFile: s.keyFile}
	var served atomic.Pointer[host.Host] // set once the host is up
	if s.acme {
		// Certificates only for the apex and names that are vaults: an
		// invented name must not spend the CA's rate limits (or ours).
		to.domain, to.acmeDir, to.acmeEmail, to.acmeRoots = domain, s.acmeDir, s.acmeEmail, s.acmeRoots
		to.policy = func(ctx context.Context, name string) error {
			if name == domain {
				return nil
			}
			if h := served.Load(); h != nil && h.Serves(ctx, name) {
				return nil
			}
			return errNotAVault
		}
		if s.certFile != "" || s.keyFile != "" {
			return usageError{"--acme and --tls-cert/--tls-key exclude each other", "--acme obtains certificates; --tls-cert uses yours"}
		}
	} else if s.acmeDir != "" || s.acmeEmail != "" || s.acmeRoots != "" {
		return usageError{"--acme-* flags need --acme", ""}
	}
	ts, err := newTLS(to, s.root)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.root, 0o700); err != nil {
		return fmt.Errorf("cannot create --root %s: %w", s.root, err)
	}
	lock, err := hostLock(s.root)
	if errors.Is(err, errHostRunning) {
		return hint(err, "another pdvault host serves "+s.root+"; stop it first")
	}
	if err != nil {
		return err
	}
	defer lock.Close()
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return hint(fmt.Errorf("cannot listen on %s: %w", s.addr, err), "choose another address with --addr HOST:PORT")
	}
	scheme, port, err := publicBase(s.publicURL, domain, ts != nil, ln.Addr())
	if err != nil {
		ln.Close()
		return err
	}
	issuerFor := func(name string) string { return scheme + "://" + name + "." + domain + port }
	tuneGC()

	placement, err := a.placement(s, log)
	if err != nil {
		ln.Close()
		return err
	}
	s.maxOpen = fitOpen(log, s.maxOpen, fileLimit())
	opts := vault.Options{Logger: log, AllowLoopbackHTTP: s.allowLoopback, RatePerOrg: noLimitIfZero(s.rateOrg), PageSize: s.pageSize}
	courier := api.NewCourier(opts.AllowLoopbackHTTP, outboundTimeout)
	opts.Courier = courier
	opts.Notifier = api.NewNotifier(courier, nil, outboundTimeout)
	cfg := api.Config{Logger: log, RatePerAddress: noLimitIfZero(s.rateAddr), TrustedProxies: proxies}
	hopts := host.Options{Root: s.root, Logger: log, Vault: opts, IssuerFor: issuerFor, Quota: s.quota,
		MaxOpen: s.maxOpen, IdleAfter: s.idle, Attach: api.VaultHandler(cfg), Placement: placement,
		Background: func(ctx context.Context, v *vault.Vault) {
			go v.RunNotices(ctx, noticeTick)
			go v.RunReencryption(ctx)
			v.RunNotifications(ctx, noticeTick, api.GenerateVAPID)
		}}
	hopts.Domain = domain
	if s.customDomains {
		hopts.Vault.DomainIssuer = func(d string) string { return scheme + "://" + d + port }
		hopts.Resolver = resolver(s.dnsResolver)
	}
	h, err := host.New(hopts)
	if err != nil {
		ln.Close()
		return err
	}
	served.Store(h)
	if ts != nil && ts.start != nil {
		bctx, cancel := context.WithCancel(ctx)
		defer cancel()
		ts.start(bctx, log) // the apex's first certificate; reloads of --tls-cert
	}
	srv := api.NewServer(s.addr, api.NewHost(h, api.HostConfig{Config: cfg, Domain: domain, Signup: s.signup}), log)
	errc := make(chan error, 1)
	admin, err := serveAdmin(s.root, api.HostAdmin(h, log), errc)
	if err != nil {
		ln.Close()
		h.Close(context.Background())
		return err
	}
	defer admin.Close()
	if ts != nil {
		srv.TLSConfig = ts.config
		go func() { errc <- srv.ServeTLS(ln, "", "") }()
	} else {
		go func() { errc <- srv.Serve(ln) }()
	}
	apex := scheme + "://" + domain + port
	fmt.Fprintf(a.stdout, "pdvault host serving %s at %s (vaults at %s)\n", s.root, apex, issuerFor("NAME"))
	if a.listening != nil {
		a.listening(apex)
	}
	select {
	case err := <-errc:
		h.Close(context.Background())
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "grace", shutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	srv.Shutdown(sctx)
	if err := h.Close(sctx); err != nil {
		log.Warn("vaults still in use at shutdown", "err", err)
	}
	fmt.Fprintln(a.stdout, "pdvault host stopped")
	return nil
}

// publicBase is the scheme and ":port" (empty for the scheme's default)
// of the vaults' URLs.
func publicBase(publicURL, domain string, tls bool, addr net.Addr) (scheme, port string, err error) {
	if publicURL == "" {
		scheme = "http"
		if tls {
			scheme = "https"
		}
		_, p, _ := net.SplitHostPort(addr.String())
		if (scheme == "http" && p != "80") || (scheme == "https" && p != "443") {
			port = ":" + p
		}
		return scheme, port, nil
	}
	u, err := url.Parse(publicURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Hostname() != domain || (u.Path != "" && u.Path != "/") {
		return "", "", usageError{fmt.Sprintf("--public-url %q", publicURL), "give the apex as clients reach it, e.g. https://" + domain + " (no path)"}
	}
	if u.Port() != "" {
		port = ":" + u.Port()
	}
	return u.Scheme, port, nil
}

// hostFlags starts an operator command's flags with --root.
func (a *app) hostFlags(name, synopsis string) (*flag.FlagSet, *string) {
	fs := a.flags("host "+name, "host "+synopsis)
	return fs, fs.String("root", a.defaultHostRoot(), "the host's directory (env PDVAULT_HOST_ROOT)")
}

// hostOffline parses an operator command's flags and opens the host
// directory, serving nothing; with rs (the replica flags, set) the vaults
// are claimed in the shared storage as a serving host would.
func (a *app) hostOffline(fs *flag.FlagSet, rootFlag *string, args []string, mustExist bool, rs ...*hostSettings) (*host.Host, []string, error) {
	pos, err := a.interleaved(fs, args)
	if err != nil {
		return nil, nil, err
	}
	root := *rootFlag
	if _, err := os.Stat(root); err != nil && mustExist {
		return nil, nil, hint(fmt.Errorf("no host directory at %s", root), "give it with --root DIR")
	}
	var p host.Placement
	if len(rs) > 0 {
		if p, err = a.placement(*rs[0], slog.New(slog.DiscardHandler)); err != nil {
			return nil, nil, err
		}
	}
	h, err := host.New(host.Options{Root: root, IssuerFor: func(n string) string { return n }, MaxOpen: 1, Placement: p})
	if err != nil {
		return nil, nil, err
	}
	return h, pos, nil
}

func (a *app) hostInvite(args []string) error {
	fs, root := a.hostFlags("invite", "invite [--root DIR] [--expires 168h]")
	exp := fs.String("expires", "168h", "how long the code is valid")
	h, pos, err := a.hostOffline(fs, root, args, false)
	if err != nil {
		return err
	}
	defer h.Close(context.Background())
	if len(pos) > 0 {
		return usageError{"invite takes no arguments", ""}
	}
	d, err := time.ParseDuration(*exp)
	if err != nil || d < time.Minute || d > 90*24*time.Hour {
		return usageError{fmt.Sprintf("--expires %q", *exp), "a duration from 1m to 2160h, e.g. 168h"}
	}
	code, err := h.Invite(d)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "%s\n", code)
	fmt.Fprintf(a.stderr, "single-use sign-up code, valid until %s; it is not shown again\n", time.Now().Add(d).UTC().Format("2006-01-02 15:04 UTC"))
	return nil
}

func (a *app) hostCreate(ctx context.Context, args []string) error {
	fs, root := a.hostFlags("create", "create NAME [--root DIR] [--passphrase-file FILE] [--replica s3://...]")
	pfile := fs.String("passphrase-file", "", "read the new vault's passphrase from this file instead of prompting")
	var s hostSettings
	a.replicaFlags(fs, &s)
	h, pos, err := a.hostOffline(fs, root, args, false, &s)
	if err != nil {
		return err
	}
	defer h.Close(context.Background())
	if len(pos) != 1 {
		return usageError{"create takes one vault name", "e.g. pdvault host create alice"}
	}
	if err := host.ValidName(pos[0]); err != nil {
		return err
	}
	if h.Exists(pos[0]) {
		return hint(host.ErrNameTaken, "nothing was changed")
	}
	pass, err := a.readPassphrase(passphraseSource{file: *pfile, envName: "PDVAULT_PASSPHRASE", prompt: "New passphrase for " + pos[0], confirm: true})
	if err != nil {
		return err
	}
	hd, err := h.Create(ctx, pos[0], pass)
	if err != nil {
		return err
	}
	hd.Release()
	if s.replica != "" {
		// Close now, not deferred: the vault's first replica is flushed and
		// its lease released before this says it is done.
		if err := h.Close(ctx); err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "Created vault %s in %s; any host sharing it can serve it, sealed until its owner logs in\n", pos[0], s.replica)
		return nil
	}
	fmt.Fprintf(a.stdout, "Created vault %s; it is sealed until its owner logs in on the running host\n", pos[0])
	return nil
}

func (a *app) hostList(args []string) error {
	fs, root := a.hostFlags("list", "list [--root DIR] [--format text|json]")
	format := fs.String("format", "text", "text or json")
	h, pos, err := a.hostOffline(fs, root, args, true)
	if err != nil {
		return err
	}
	defer h.Close(context.Background())
	if len(pos) > 0 {
		return usageError{"list takes no arguments", ""}
	}
	vs, err := h.List()
	if err != nil {
		return err
	}
	switch *format {
	case "json":
		if vs == nil {
			vs = []host.VaultInfo{}
		}
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(vs)
	case "text":
	default:
		return usageError{fmt.Sprintf("--format %q", *format), "choose text or json"}
	}
	if len(vs) == 0 {
		fmt.Fprintln(a.stdout, "no vaults")
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSIZE\tMODIFIED")
	for _, v := range vs {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", v.Name, mib(float64(v.Bytes)), v.Modified.Format("2006-01-02 15:04"))
	}
	return tw.Flush()
}

func (a *app) hostDelete(ctx context.Context, args []string) error {
	fs, rootFlag := a.hostFlags("delete", "delete NAME [--root DIR] [--replica s3://...] --yes")
	yes := fs.Bool("yes", false, "confirm: the vault and everything in it is erased from this host (and, with --replica, from the shared storage)")
	var s hostSettings
	a.replicaFlags(fs, &s)
	h, pos, err := a.hostOffline(fs, rootFlag, args, true, &s)
	if err != nil {
		return err
	}
	root := *rootFlag
	defer h.Close(context.Background())
	if !*yes {
		return usageError{"delete erases a person's vault", "add --yes if you mean it"}
	}
	if len(pos) != 1 {
		return usageError{"delete takes one vault name", "e.g. pdvault host delete alice --yes"}
	}
	// A serving host may hold the database open: never pull it away.
	lock, err := hostLock(root)
	if errors.Is(err, errHostRunning) {
		return hint(err, "stop the host first; a vault's owner can delete it while the host runs (DELETE /v1/owner/vault)")
	}
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := h.Delete(ctx, pos[0]); err != nil {
		return err
	}
	if s.replica != "" {
		fmt.Fprintf(a.stdout, "Deleted vault %s from %s and from %s; erase its backups too (docs/operations.md, \"Erasure\")\n", pos[0], root, s.replica)
		return nil
	}
	fmt.Fprintf(a.stdout, "Deleted vault %s from %s; erase its replicas and backups too (docs/operations.md, \"Erasure\")\n", pos[0], root)
	return nil
}

// fileLimit is the process's limit of open files (Go raises the soft
// limit to the hard one at start); 0 when unknown.
func fileLimit() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<30 {
		return 0
	}
	return int(rl.Cur)
}

// fitOpen bounds --max-open by the descriptors there are: open vaults may
// use three quarters of them, the rest is for connections and the host's
// own files. Opening vaults past the limit would fail every request, not
// just the new vault's: a stranger asking for many names must not get there.
func fitOpen(log *slog.Logger, maxOpen, limit int) int {
	if limit <= 0 {
		return maxOpen
	}
	per := vault.FilesPerVault(host.ReadersPerVault)
	fit := max(1, (limit-max(256, limit/4))/per)
	if maxOpen > fit {
		log.Warn("fewer vaults open at once than --max-open: the file descriptor limit is too low; raise it (LimitNOFILE= in the systemd unit, ulimit -n)",
			"max_open", maxOpen, "serving", fit, "nofile", limit, "per_vault", per)
		return fit
	}
	return maxOpen
}

func checkResolver(addr string) error {
	if _, _, err := net.SplitHostPort(addr); addr != "" && err != nil {
		return usageError{fmt.Sprintf("--dns-resolver %q", addr), "give HOST:PORT, e.g. 127.0.0.53:53"}
	}
	return nil
}

// hostDomains prints the domain book, checked against DNS, for a router:
// each line of the map sends a brought domain to its vault's name, which
// the router's own map sends to a host (docs/operations.md, "Several
// hosts and brought domains").
func (a *app) hostDomains(ctx context.Context, args []string) error {
	fs, root := a.hostFlags("domains", "domains --domain NAME [--root DIR] [--replica s3://...] [--dns-resolver HOST:PORT] [--format map|json]")
	domain := fs.String("domain", "", "the host's domain, as given to serve (required)")
	dns := fs.String("dns-resolver", "", "HOST:PORT of the DNS resolver to check the _pdvault TXT records with (default: the system's)")
	format := fs.String("format", "map", "map (an HAProxy map file, one \"DOMAIN NAME.DOMAIN\" per line) or json")
	s := hostSettings{leaseTTL: 30 * time.Second, replicaSync: time.Second, replicaMaxLag: 5 * time.Second} // read only: no lease is taken
	fs.StringVar(&s.replica, "replica", a.getenv("PDVAULT_REPLICA"), "the hosts' shared storage, s3://BUCKET/PREFIX?endpoint=URL, whose domain book is read (env PDVAULT_REPLICA; credentials from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY); without it, the one in --root")
	pos, err := a.interleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{"domains takes no arguments", ""}
	}
	if *domain == "" || !policy.ValidHostName(strings.ToLower(strings.TrimSuffix(*domain, "."))) {
		return usageError{"domains needs the host's domain", "e.g. pdvault host domains --domain vaults.example.org"}
	}
	if *format != "map" && *format != "json" {
		return usageError{fmt.Sprintf("--format %q", *format), "choose map or json"}
	}
	if err := checkResolver(*dns); err != nil {
		return err
	}
	if s.replica == "" {
		if _, err := os.Stat(*root); err != nil {
			return hint(fmt.Errorf("no host directory at %s", *root), "give it with --root DIR, or the shared storage with --replica")
		}
	}
	p, err := a.placement(s, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	h, err := host.New(host.Options{Root: *root, IssuerFor: func(n string) string { return n }, MaxOpen: 1, Placement: p,
		Domain: *domain, Resolver: resolver(*dns), Vault: vault.Options{DomainIssuer: func(d string) string { return d }}})
	if err != nil {
		return err
	}
	defer h.Close(context.Background())
	routes, err := h.Routes(ctx)
	if err != nil {
		return err
	}
	if *format == "json" {
		if routes == nil {
			routes = []host.DomainPair{}
		}
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(routes)
	}
	for _, r := range routes {
		fmt.Fprintf(a.stdout, "%s %s\n", r.Domain, r.Name)
	}
	return nil
}

// resolver is the DNS resolver custom domains are looked up with: addr
// (HOST:PORT), or the system's.
func resolver(addr string) host.Resolver {
	if addr == "" {
		return net.DefaultResolver
	}
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
}
