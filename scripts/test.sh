#!/usr/bin/env bash
# Runs every pdvault test, from a fresh machine: installs what the tests
# need (Chromium, for the web UI tests in a real browser; HAProxy for the
# two-host test; Caddy for the on-demand TLS test; the Versity S3 gateway is built by the tests), then vet, the
# whole suite under the race detector, short fuzz runs and govulncheck.
# CI (.ci/run) calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1 && [ -z "${CHROMIUM:-}" ]; then
  echo "scripts/test.sh: installing Chromium for the browser tests (apt-get install chromium)"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi

# Node and npm for the JavaScript half of the interoperability suite.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "scripts/test.sh: installing Node.js and npm for the interop tests (apt-get install nodejs npm)"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nodejs npm >/dev/null
fi

# curl, which the README tour uses (TestTour runs it line by line).
if ! command -v curl >/dev/null 2>&1; then
  echo "scripts/test.sh: installing curl for the README tour test (apt-get install curl)"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq curl >/dev/null
fi

# systemd-analyze, to check packaging/pdvault.service (verify, and its
# exposure score offline).
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "scripts/test.sh: installing systemd's tools for the unit file test (apt-get install systemd)"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq systemd >/dev/null
fi

# HAProxy, the router of the two-host test (TestTwoHostsBehindHAProxy).
if ! command -v haproxy >/dev/null 2>&1 && [ ! -x /usr/sbin/haproxy ]; then
  echo "scripts/test.sh: installing HAProxy for the two-host test (apt-get install haproxy)"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq haproxy >/dev/null
fi
# Caddy, the TLS-terminating proxy of TestHostBehindCaddy (on-demand
# certificates that ask the host first).
if ! command -v caddy >/dev/null 2>&1; then
  echo "scripts/test.sh: installing Caddy for the proxy test (apt-get install caddy)"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq caddy >/dev/null
fi
export PATH="$PATH:/usr/sbin"

go vet ./...
go test -race -count=1 ./...
# The organization flow with standard OAuth libraries, unchanged: Go
# (x/oauth2, jwx) and JavaScript (oauth4webapi, jose), in their own module.
(cd interop/js && npm ci --no-audit --no-fund --loglevel=error)
(cd interop && go vet ./... && go test -race -count=1 ./...)
# A full disk for real: a tmpfs of a few MiB, which takes root to mount.
if [ "$(id -u)" -eq 0 ]; then
  go test -count=1 -tags diskfull -run TestDiskFull ./api
else
  sudo env "PATH=$PATH" "HOME=$HOME" go test -count=1 -tags diskfull -run TestDiskFull ./api
fi
# Each fuzz target briefly (seed corpora in */testdata/fuzz run above too).
bash scripts/fuzz.sh 3s
# Known vulnerabilities in dependencies.
bash scripts/vulncheck.sh
