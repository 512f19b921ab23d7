#!/usr/bin/env bash
# Runs every pdvault test, from a fresh machine: vet, then the whole suite
# under the race detector. CI (.ci/run) calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

go vet ./...
go test -race -count=1 ./...
