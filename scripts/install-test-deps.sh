#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine.
# Idempotent: skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

# Go modules (pinned in go.mod / go.sum).
go mod download
