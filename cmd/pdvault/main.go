// Command pdvault is the owner's single binary: it creates and unlocks a
// vault, serves the API and web UI, and talks to a running vault.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/pdvault/pdvault/api/client"
	"github.com/pdvault/pdvault/internal/buildinfo"
	"github.com/pdvault/pdvault/policy"
	"github.com/pdvault/pdvault/vault"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	a := &app{
		stdin:  os.Stdin,
		stdout: os.Stdout,
		stderr: os.Stderr,
		getenv: os.Getenv,
		readPassword: func(prompt string) (string, error) {
			if !term.IsTerminal(int(os.Stdin.Fd())) {
				return "", errNoTerminal
			}
			fmt.Fprint(os.Stderr, prompt)
			b, err := term.ReadPassword(int(os.Stdin.Fd()))
			fmt.Fprintln(os.Stderr)
			return string(b), err
		},
	}
	if term.IsTerminal(int(os.Stderr.Fd())) {
		a.tty = os.Stderr
	}
	code := a.run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// app is the CLI with its surroundings made explicit, so tests can run any
// command in-process.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// readPassword reads a secret without echo; errNoTerminal if it cannot.
	readPassword func(prompt string) (string, error)
	// listening, if set, is told the URL a server listens on (for tests).
	listening func(url string)
	// tty is the terminal behind stderr, for progress lines; nil when
	// stderr is not a terminal (then only summaries are printed).
	tty io.Writer
}

var errNoTerminal = errors.New("no terminal to prompt on")

const usage = `pdvault: a personal-data vault you run for yourself.

Usage: pdvault <command> [flags]

Run a vault:
  init         create a vault (asks for a passphrase)
  serve        unlock a vault and serve the API (serve --dev: a throwaway demo vault)
  config       check a serve config file:  pdvault config check --config FILE
  passphrase   change the passphrase:  pdvault passphrase change
  backup       copy the vault to a file, consistently, while it serves
  restore      put a backup in place as a new vault (checked first)
  export       write an encrypted, integrity-protected backup file
  import       restore a backup into a new vault directory

Host vaults for many people:
  host         serve | invite | create | list | delete: one process, one SQLite file per vault

Talk to a running vault:
  login        exchange the passphrase for an owner token
  record       put | get | list | delete records
  data         import | formats: bring in the files you get (vCard, ...)
  docs         add | list | get | delete encrypted documents (contracts, payslips, scans)
  requests     list | show | approve | deny organizations' access requests
  grants       list | revoke grants
  agreements   export an IEEE 7012 agreement record's dispute bundle
  audit        list | verify the tamper-evident audit log
  terms        show | set | edit your terms of service
  relationships  list | show | verify | reaccept the organizations you deal with
  intents      add | list | show | close | accept | decline: state a need anonymously, take offers
  notify       add | list | test | remove: hear of requests by ntfy, email, webhook or Web Push
  keys         status | rotate the signing and record-encryption keys

Measure:
  bench        load-test a real server: grant-authorized reads, throughput, latency, CPU

See it work:
  demo         run the whole story in one command: an organization asks, you approve
               less than it asked, it reads, you revoke, its next read is refused

Other:
  version      print the version
  help         this text; "pdvault <command> -h" for a command's flags

Environment:
  PDVAULT_DIR          vault directory (default ~/.local/share/pdvault)
  PDVAULT_CONFIG       serve's config file (TOML; docs/operations.md)
  PDVAULT_HOST_ROOT    a host's directory (default: PDVAULT_DIR + "-host")
  PDVAULT_PASSPHRASE   passphrase, for scripts (prefer --passphrase-file)
  PDVAULT_ADDR         address of a running vault (default http://127.0.0.1:8700)
  PDVAULT_TOKEN        owner token for a running vault
`

type command func(ctx context.Context, args []string) error

func (a *app) run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(a.stderr, usage)
		return 2
	}
	cmds := map[string]command{
		"init":          a.cmdInit,
		"serve":         a.cmdServe,
		"host":          a.cmdHost,
		"config":        a.cmdConfig,
		"passphrase":    a.cmdPassphrase,
		"export":        a.cmdExport,
		"import":        a.cmdImport,
		"login":         a.cmdLogin,
		"record":        a.cmdRecord,
		"records":       a.cmdRecord,
		"data":          a.safe().cmdData,
		"docs":          a.cmdDocs,
		"requests":      a.safe().cmdRequests,
		"grants":        a.safe().cmdGrants,
		"agreements":    a.cmdAgreements,
		"audit":         a.safe().cmdAudit,
		"terms":         a.cmdTerms,
		"relationships": a.safe().cmdRelationships,
		"intents":       a.safe().cmdIntents,
		"notify":        a.safe().cmdNotify,
		"demo":          a.cmdDemo,
		"bench":         a.cmdBench,
		"keys":          a.cmdKeys,
		"backup":        a.cmdBackup,
		"restore":       a.cmdRestore,
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "--help":
		fmt.Fprint(a.stdout, usage)
		return 0
	case "version", "--version":
		fmt.Fprintln(a.stdout, buildinfo.Read().Line("pdvault"))
		return 0
	}
	cmd, ok := cmds[name]
	if !ok {
		a.fail(usageError{fmt.Sprintf("unknown command %q", name), `run "pdvault help" for the list of commands`})
		return 2
	}
	if err := cmd(ctx, rest); err != nil {
		if errors.Is(err, flag.ErrHelp) || errors.Is(err, flagHelp) {
			return 0
		}
		a.fail(err)
		var ue usageError
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	return 0
}

// usageError is a mistake in how the command was called.
type usageError struct{ msg, hint string }

func (e usageError) Error() string { return e.msg }

// hinted is an error with advice on what to do about it.
type hinted struct {
	err  error
	hint string
}

func (h hinted) Error() string { return h.err.Error() }
func (h hinted) Unwrap() error { return h.err }

func hint(err error, h string) error { return hinted{err, h} }

// fail prints "pdvault: error: ..." and any hint, in the age style. Vault
// errors print their client-safe message; causes go to the log only.
func (a *app) fail(err error) {
	msg := err.Error()
	var pe *policy.Error
	var ce *client.Error
	switch {
	case errors.As(err, &ce):
		msg = err.Error() // the vault's answer, with any prefix we added (a file name)
	case errors.As(err, &pe):
		msg = pe.Msg
		if pe.Kind == policy.KindInternal && pe.Err != nil {
			msg += " (" + pe.Err.Error() + ")"
		}
	}
	fmt.Fprintf(a.stderr, "pdvault: error: %s\n", msg)
	var h hinted
	var ue usageError
	switch {
	case errors.As(err, &h):
		fmt.Fprintf(a.stderr, "pdvault: hint: %s\n", h.hint)
	case errors.As(err, &ue) && ue.hint != "":
		fmt.Fprintf(a.stderr, "pdvault: hint: %s\n", ue.hint)
	default:
		if h := a.adviceFor(err); h != "" {
			fmt.Fprintf(a.stderr, "pdvault: hint: %s\n", h)
		}
	}
}

// adviceFor is the hint for errors any command talking to a vault can
// meet: no server, a session that ended, a limit that says when to retry.
func (a *app) adviceFor(err error) string {
	var ce *client.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("no vault is listening at %s; start one with: pdvault serve (or set PDVAULT_ADDR / --addr to where it runs)", a.env("PDVAULT_ADDR", "http://127.0.0.1:8700"))
	case !errors.As(err, &ce):
		return ""
	case ce.RetryAfter > 0:
		return fmt.Sprintf("too many requests; try again in %s", ce.RetryAfter.Round(time.Second))
	case ce.Status == http.StatusUnauthorized && (ce.Code == "invalid_token" || ce.Code == "unauthorized"):
		if a.getenv("PDVAULT_TOKEN") == "" {
			return `log in first: eval "$(pdvault login)"`
		}
		return `the owner session has ended (sessions expire, and end when the server restarts); log in again: eval "$(pdvault login)"`
	}
	return ""
}

// flags makes a FlagSet that reports errors as usageError and prints its
// help to stdout when asked.
func (a *app) flags(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(a.stdout, "Usage: pdvault %s\n\n", synopsis)
		fs.SetOutput(a.stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

func (a *app) parse(fs *flag.FlagSet, args []string) error {
	// The usage is printed when asked for (-h), not before an error.
	usage := fs.Usage
	fs.Usage = func() {}
	err := fs.Parse(args)
	fs.Usage = usage
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage()
			return err
		}
		return usageError{err.Error(), fmt.Sprintf(`run "pdvault %s -h" for its flags`, fs.Name())}
	}
	return nil
}

func (a *app) env(name, def string) string {
	if v := a.getenv(name); v != "" {
		return v
	}
	return def
}

func (a *app) defaultDir() string {
	if d := a.getenv("PDVAULT_DIR"); d != "" {
		return d
	}
	if d := a.getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "pdvault")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "pdvault")
	}
	return "pdvault-data"
}

// passphraseSource names where a passphrase may come from.
type passphraseSource struct {
	file    string // --passphrase-file value
	envName string // e.g. PDVAULT_PASSPHRASE
	prompt  string
	confirm bool // ask twice (when setting a passphrase)
}

// readPassphrase takes the passphrase from a file, the environment or a
// prompt, in that order.
func (a *app) readPassphrase(src passphraseSource) ([]byte, error) {
	if src.file != "" {
		b, err := os.ReadFile(src.file)
		if err != nil {
			return nil, fmt.Errorf("cannot read the passphrase file: %w", err)
		}
		s := strings.TrimRight(string(b), "\r\n")
		if s == "" {
			return nil, fmt.Errorf("the passphrase file %s is empty", src.file)
		}
		return []byte(s), nil
	}
	if s := a.getenv(src.envName); s != "" {
		return []byte(s), nil
	}
	p, err := a.readPassword(src.prompt + ": ")
	if errors.Is(err, errNoTerminal) {
		return nil, hint(errors.New("no passphrase given and no terminal to ask on"),
			fmt.Sprintf("set %s or pass --passphrase-file FILE", src.envName))
	}
	if err != nil {
		return nil, err
	}
	if src.confirm && len([]rune(p)) < vault.MinPassphraseLen {
		// Refused before it is typed twice.
		return nil, vault.ErrWeakPassphrase
	}
	if src.confirm {
		again, err := a.readPassword("Repeat " + strings.ToLower(src.prompt[:1]) + src.prompt[1:] + ": ")
		if err != nil {
			return nil, err
		}
		if again != p {
			return nil, errors.New("the passphrases do not match; nothing was changed")
		}
	}
	if p == "" {
		return nil, errors.New("empty passphrase")
	}
	return []byte(p), nil
}

// indentJSON pretty-prints a JSON document (for editing).
func indentJSON(b []byte) []byte {
	var out bytes.Buffer
	if json.Indent(&out, b, "", "  ") != nil {
		return b
	}
	out.WriteByte('\n')
	return out.Bytes()
}

// newLogger sets up log/slog once for the process.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Sprintf("unknown log level %q", level), "use debug, info, warn or error"}
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageError{fmt.Sprintf("unknown log format %q", format), "use text or json"}
}

// plural is "1 record", "2 records".
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
