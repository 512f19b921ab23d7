package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pdvault/pdvault/vault/host"
	"github.com/pdvault/pdvault/vault/host/replica"
)

// replicaFlags are the flags of hosts sharing vaults (serve, delete).
func (a *app) replicaFlags(fs *flag.FlagSet, s *hostSettings) {
	fs.StringVar(&s.replica, "replica", a.getenv("PDVAULT_REPLICA"), "share vaults with other hosts through S3-compatible storage: s3://BUCKET/PREFIX?endpoint=URL (env PDVAULT_REPLICA; credentials from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)")
	fs.StringVar(&s.hostID, "host-id", "", "this host's name in the vaults' leases; distinct per host (default: the machine's host name)")
	fs.DurationVar(&s.leaseTTL, "lease-ttl", 30*time.Second, "how long a vault's lease lasts unrenewed; hosts' clocks must agree within a third of it")
	fs.DurationVar(&s.replicaSync, "replica-sync", time.Second, "how often new writes are shipped to the replica: what a host that dies can lose")
	fs.DurationVar(&s.replicaMaxLag, "replica-max-lag", 5*time.Second, "refuse writes (503 replica_behind) while the replica is further behind than this, so a host that dies loses at most about this much; at least twice --replica-sync; 0: no bound")
	fs.BoolVar(&s.replicaConfirm, "replica-confirm", false, "synchronous replication: answer a request only once what it wrote (a change, a read's audit entry) is in the replica, so a host that dies loses no acknowledged write; each answer waits for an upload, shared by concurrent requests; 503 replica_unconfirmed when the store does not confirm within --replica-confirm-timeout")
	fs.DurationVar(&s.confirmTimeout, "replica-confirm-timeout", 0, "with --replica-confirm, how long an answer waits for the replica before it is 503 replica_unconfirmed (the change is saved all the same), 100ms to 1m (default 5s)")
}

// placement is the shared storage of --replica, or nil without it.
func (a *app) placement(s hostSettings, log *slog.Logger) (host.Placement, error) {
	if s.replica == "" {
		if s.hostID != "" || s.handoverKeyFile != "" || s.replicaConfirm || s.confirmTimeout != 0 {
			return nil, usageError{"--host-id, --handover-key-file and --replica-confirm(-timeout) need --replica", "give the shared storage with --replica s3://BUCKET/PREFIX?endpoint=URL"}
		}
		return nil, nil
	}
	cfg, err := replica.ParseURL(s.replica)
	if err != nil {
		return nil, usageError{err.Error(), "e.g. --replica 's3://vaults/prod?endpoint=https://s3.example.org'"}
	}
	cfg.AccessKey, cfg.SecretKey = a.getenv("AWS_ACCESS_KEY_ID"), a.getenv("AWS_SECRET_ACCESS_KEY")
	if cfg.Endpoint != "" && (cfg.AccessKey == "" || cfg.SecretKey == "") {
		return nil, usageError{"--replica needs credentials", "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"}
	}
	cfg.Holder, cfg.LeaseTTL, cfg.SyncInterval, cfg.Confirm, cfg.Logger = s.hostID, s.leaseTTL, s.replicaSync, s.replicaConfirm, log
	if s.confirmTimeout != 0 {
		if !s.replicaConfirm {
			return nil, usageError{"--replica-confirm-timeout needs --replica-confirm", ""}
		}
		if s.confirmTimeout < 100*time.Millisecond || s.confirmTimeout > time.Minute {
			return nil, usageError{fmt.Sprintf("--replica-confirm-timeout %s", s.confirmTimeout), "from 100ms to 1m"}
		}
		cfg.ConfirmTimeout = s.confirmTimeout
	}
	if s.leaseTTL < 3*time.Second {
		return nil, usageError{fmt.Sprintf("--lease-ttl %s", s.leaseTTL), "at least 3s (30s is the default)"}
	}
	if s.replicaSync <= 0 || s.replicaSync > s.leaseTTL/3 {
		return nil, usageError{fmt.Sprintf("--replica-sync %s", s.replicaSync), "more than 0 and at most a third of --lease-ttl"}
	}
	switch {
	case s.replicaMaxLag == 0:
		cfg.MaxLag = -1
	case s.replicaMaxLag < 2*s.replicaSync:
		return nil, usageError{fmt.Sprintf("--replica-max-lag %s", s.replicaMaxLag), "at least twice --replica-sync, or 0 for no bound"}
	default:
		cfg.MaxLag = s.replicaMaxLag
	}
	if s.handoverKeyFile != "" {
		b, err := os.ReadFile(s.handoverKeyFile)
		if err != nil {
			return nil, fmt.Errorf("--handover-key-file: %w", err)
		}
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(key) != 32 {
			return nil, usageError{"--handover-key-file must hold 32 bytes in base64", "make one with: head -c32 /dev/urandom | base64"}
		}
		cfg.HandoverKey = key
	}
	return replica.New(cfg)
}

// adminSocket is where a serving host takes the operator's commands.
func adminSocket(root string) string { return filepath.Join(root, "host.sock") }

// serveAdmin serves the operator's control on a unix socket only the
// host's user can open.
func serveAdmin(root string, h http.Handler, errc chan<- error) (io.Closer, error) {
	sock := adminSocket(root)
	os.Remove(sock) // left by a host that died: the host lock says none runs
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("cannot listen on %s: %w", sock, err)
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	return closerFunc(func() error { err := srv.Close(); os.Remove(sock); return err }), nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

func (a *app) hostRelease(ctx context.Context, args []string) error {
	fs, root := a.hostFlags("release", "release NAME [--root DIR]")
	pos, err := a.interleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"release takes one vault name", "e.g. pdvault host release alice"}
	}
	if err := host.ValidName(pos[0]); err != nil {
		return err
	}
	sock := adminSocket(*root)
	c := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://host/v1/host/vaults/"+pos[0]+"/release", nil)
	if err != nil {
		return err
	}
	res, err := c.Do(req)
	if err != nil {
		return hint(fmt.Errorf("no host is serving %s", *root), "release talks to a running \"pdvault host serve\" through "+sock)
	}
	defer res.Body.Close()
	var body struct {
		Released bool   `json:"released"`
		Error    string `json:"error"`
		Desc     string `json:"error_description"`
	}
	json.NewDecoder(io.LimitReader(res.Body, 1<<16)).Decode(&body)
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("release %s: %s: %s", pos[0], body.Error, body.Desc)
	}
	if !body.Released {
		fmt.Fprintf(a.stdout, "Vault %s is not open on this host: nothing to release\n", pos[0])
		return nil
	}
	fmt.Fprintf(a.stdout, "Released vault %s: its replica is flushed and its lease given up; the next host to serve it restores it\n", pos[0])
	return nil
}
