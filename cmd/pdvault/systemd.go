package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/pdvault/pdvault/vault"
)

// Life under systemd (packaging/pdvault.service): Type=notify readiness,
// the watchdog, and credentials passed with LoadCredential=. Outside
// systemd every one of these is a no-op: no NOTIFY_SOCKET, no
// WATCHDOG_USEC, no CREDENTIALS_DIRECTORY.

// credential is the path of a systemd credential (LoadCredential=NAME:…)
// if the service has one by that name.
func (a *app) credential(name string) string {
	dir := a.getenv("CREDENTIALS_DIRECTORY")
	if dir == "" {
		return ""
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// sdReady tells systemd the vault is unlocked and serving, then pets the
// watchdog at half its interval for as long as the vault can serve: a
// vault whose database cannot be written stops petting, and systemd
// restarts it (Restart=on-watchdog).
func sdReady(ctx context.Context, v *vault.Vault, log *slog.Logger) {
	if ok, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.Warn("cannot notify systemd", "err", err)
		return
	} else if !ok {
		return // not under systemd
	}
	defer daemon.SdNotify(false, daemon.SdNotifyStopping)
	every, err := daemon.SdWatchdogEnabled(false)
	if err != nil || every == 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(every / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rctx, cancel := context.WithTimeout(ctx, every/4)
			err := v.Ready(rctx)
			cancel()
			if err != nil {
				log.Error("not ready; not petting the systemd watchdog", "err", err)
				continue
			}
			daemon.SdNotify(false, daemon.SdNotifyWatchdog)
		}
	}
}
