package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/pdvault/pdvault/vault"
)

// The config file: TOML whose keys are serve's flag names, so there is
// one name for each setting whether given on the command line, in the
// file or (for some) in the environment. TOML rather than YAML: values
// are typed explicitly (no "NO" read as false, no 0700 read as octal),
// and a flat list of key = value is the whole format we need.
//
//	dir    = "/var/lib/pdvault"
//	domain = "vault.example.org"
//	trusted-proxy = ["10.0.0.0/8"]
//	backup-dir = "/var/backups/pdvault"
//
// Precedence: a flag on the command line, then the environment variable
// named in envOverride, then the file, then the default.

// envOverride names the environment variables that win over the file.
var envOverride = map[string]string{
	"dir":             "PDVAULT_DIR",
	"passphrase-file": "PDVAULT_PASSPHRASE", // a passphrase in the environment beats a file named in the config
}

// notInConfig are flags a config file may not set.
var notInConfig = map[string]string{
	"config": "a config file cannot name another",
	"dev":    "a throwaway vault is for the command line",
}

// applyConfig sets every flag of fs that the file at path names and that
// was not set on the command line (set) or overridden by the environment.
// set records where each value came from.
func (a *app) applyConfig(fs *flag.FlagSet, path string, set map[string]string) ([]vault.ChannelConfig, error) {
	var raw map[string]any
	_, err := toml.DecodeFile(path, &raw)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return nil, usageError{fmt.Sprintf("config %s: line %d: %s", path, perr.Position.Line, perr.Message), "the file is TOML: key = \"value\", one per line"}
		}
		if errors.Is(err, os.ErrNotExist) {
			return nil, usageError{"config " + path + ": no such file", "give an existing file with --config or PDVAULT_CONFIG"}
		}
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var channels []vault.ChannelConfig
	for _, k := range keys {
		if k == "notify" {
			chs, err := configChannels(raw[k])
			if err != nil {
				return nil, usageError{fmt.Sprintf("config %s: notify: %v", path, err), "each [[notify]] has kind = \"ntfy\", \"webhook\" or \"email\" and its settings (docs/operations.md)"}
			}
			channels = chs
			set["notify"] = "config"
			continue
		}
		f := fs.Lookup(k)
		if f == nil {
			hint := `the keys are serve's flag names without the dashes; run "pdvault serve -h"`
			if k == "passphrase" || k == "metrics-token" {
				hint = "a config file holds no secrets: name a file with " + k + "-file, or use a systemd credential"
			}
			return nil, usageError{fmt.Sprintf("config %s: unknown setting %q", path, k), hint}
		}
		if why, ok := notInConfig[k]; ok {
			return nil, usageError{fmt.Sprintf("config %s: %q cannot be set in a config file", path, k), why}
		}
		val, err := configValue(raw[k])
		if err != nil {
			return nil, usageError{fmt.Sprintf("config %s: %s: %v", path, k, err), ""}
		}
		if set[k] != "" {
			continue // the command line wins
		}
		if env := envOverride[k]; env != "" && a.getenv(env) != "" {
			set[k] = "env " + env
			continue
		}
		if err := fs.Set(k, val); err != nil {
			return nil, usageError{fmt.Sprintf("config %s: %s = %q: %v", path, k, val, unwrapFlagErr(err)), fmt.Sprintf(`run "pdvault serve -h" for what %s takes`, k)}
		}
		set[k] = "config"
	}
	return channels, nil
}

// configChannels reads [[notify]] tables: notification channels that
// serve adds at start if the vault lacks them. Secrets come from files.
func configChannels(v any) ([]vault.ChannelConfig, error) {
	tables, ok := v.([]map[string]any)
	if !ok {
		return nil, errors.New("write it as [[notify]] tables")
	}
	known := map[string]bool{"kind": true, "name": true, "url": true, "token-file": true, "secret-file": true,
		"to": true, "from": true, "smtp-host": true, "smtp-port": true, "smtp-tls": true, "smtp-user": true, "smtp-password-file": true}
	var out []vault.ChannelConfig
	for i, t := range tables {
		str := func(k string) string { s, _ := t[k].(string); return s }
		for k, val := range t {
			if !known[k] {
				return nil, fmt.Errorf("entry %d: unknown setting %q", i+1, k)
			}
			if _, isStr := val.(string); !isStr && k != "smtp-port" {
				return nil, fmt.Errorf("entry %d: %s must be a string", i+1, k)
			}
		}
		secret := func(k string) (string, error) {
			if str(k) == "" {
				return "", nil
			}
			b, err := os.ReadFile(str(k))
			if err != nil {
				return "", fmt.Errorf("entry %d: %s: %w", i+1, k, err)
			}
			return strings.TrimSpace(string(b)), nil
		}
		c := vault.ChannelConfig{Kind: str("kind"), Name: str("name"), URL: str("url")}
		var err error
		if c.Token, err = secret("token-file"); err != nil {
			return nil, err
		}
		if c.Secret, err = secret("secret-file"); err != nil {
			return nil, err
		}
		switch c.Kind {
		case vault.ChannelNtfy:
		case vault.ChannelWebhook:
			if c.Secret == "" {
				return nil, fmt.Errorf("entry %d: a webhook needs secret-file (whsec_…), the secret its receiver verifies with", i+1)
			}
		case vault.ChannelEmail:
			port, _ := t["smtp-port"].(int64)
			pass, err := secret("smtp-password-file")
			if err != nil {
				return nil, err
			}
			c.SMTP = &vault.SMTPConfig{Host: str("smtp-host"), Port: int(port), TLS: str("smtp-tls"), Username: str("smtp-user"), Password: pass, From: str("from"), To: str("to")}
		default:
			return nil, fmt.Errorf("entry %d: kind %q is not ntfy, webhook or email (a browser subscribes itself, on the UI's notifications page)", i+1, c.Kind)
		}
		out = append(out, c)
	}
	return out, nil
}

// configValue turns a TOML value into the flag's text form.
func configValue(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case bool:
		return strconv.FormatBool(v), nil
	case int64:
		return strconv.FormatInt(v, 10), nil
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), nil
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			s, ok := e.(string)
			if !ok {
				return "", errors.New("a list must hold strings")
			}
			parts[i] = s
		}
		return strings.Join(parts, ","), nil
	case map[string]any:
		return "", errors.New("is a table; settings are plain key = value")
	}
	return "", fmt.Errorf("unsupported value %v (%T)", v, v)
}

func unwrapFlagErr(err error) error {
	if u := errors.Unwrap(err); u != nil {
		return u
	}
	return err
}

// cmdConfig: pdvault config check [--config FILE] [serve flags]
func (a *app) cmdConfig(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "check" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintln(a.stdout, "Usage: pdvault config check [--config FILE] [serve flags]\n\nChecks a config file (and any serve flags given with it) as serve would,\nwithout starting: every key known, every value valid, files readable, the\nvault present. Prints the settings that differ from the defaults and\nwhere each came from.")
			return nil
		}
		return usageError{"usage: pdvault config check [--config FILE]", "the only subcommand is check"}
	}
	s := a.serveFlags()
	s.fs.Init("config check", flag.ContinueOnError)
	if _, err := a.loadServe(s, args[1:]); err != nil {
		return err
	}
	if s.config == "" {
		return usageError{"no config file to check", "give one with --config FILE or PDVAULT_CONFIG"}
	}
	if _, err := newTLS(s.to, s.dir); err != nil {
		return err
	}
	if !s.dev {
		if _, err := os.Stat(filepath.Join(s.dir, vault.DBFile)); err != nil {
			return hint(fmt.Errorf("no vault in %s", s.dir), "create one with: pdvault init --dir "+s.dir)
		}
	}
	if s.backup.Dir != "" {
		if err := checkWritableDir(s.backup.Dir); err != nil {
			return fmt.Errorf("--backup-dir: %w", err)
		}
	}
	fmt.Fprintf(a.stdout, "%s: ok\n", s.config)
	var names []string
	for k := range s.set {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if k == "config" {
			continue
		}
		if k == "notify" {
			fmt.Fprintf(a.stdout, "  %-20s = %-30s (%s)\n", "[[notify]]", plural(int64(len(s.channels)), "channel"), s.set[k])
			continue
		}
		fmt.Fprintf(a.stdout, "  %-20s = %-30s (%s)\n", k, s.fs.Lookup(k).Value.String(), s.set[k])
	}
	return nil
}

// checkWritableDir reports whether dir exists, or could be made, and takes
// files.
func checkWritableDir(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		parent := filepath.Dir(filepath.Clean(dir))
		if _, perr := os.Stat(parent); perr != nil {
			return fmt.Errorf("%s does not exist, nor does %s", dir, parent)
		}
		return nil // made on the first backup
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	f, err := os.CreateTemp(dir, ".pdvault-check-*")
	if err != nil {
		return fmt.Errorf("cannot write into %s", dir)
	}
	f.Close()
	return os.Remove(f.Name())
}
