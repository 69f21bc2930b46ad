#!/usr/bin/env bash
# Runs every benchmark and writes the figures to BENCHMARKS.txt, with the
# machine they were taken on. Tests never assert on speed; this file is
# where the targets of the issues are checked.
set -euo pipefail
cd "$(dirname "$0")/.."
out=BENCHMARKS.txt
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
{
  echo "# make bench, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "# $(go version); $(nproc) cores; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "# commit $(git rev-parse --short HEAD 2>/dev/null || echo none)"
} >"$tmp"
go test -run '^$' -bench . -benchmem -count "${BENCH_COUNT:-3}" -benchtime "${BENCH_TIME:-1s}" ./... | tee -a "$tmp"
mv "$tmp" "$out"
trap - EXIT
echo "wrote $out"
