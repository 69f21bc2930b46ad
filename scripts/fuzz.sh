#!/usr/bin/env bash
# Fuzzes every Fuzz* target for the given -fuzztime each: a duration such
# as 30s, or an iteration count such as 3000x (default 30s). CI uses a
# count: under load, duration-based runs can end in a spurious "context
# deadline exceeded".
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:-30s}
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
    echo "== $pkg $f"
    go test "$pkg" -run '^$' -fuzz "^$f\$" -fuzztime "$t"
  done
done
