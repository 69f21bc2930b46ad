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
  echo
  echo "## unit benchmarks (codecs, hashing, ...)"
} >"$tmp"
# Benchmarks that run a deployment use fixed message counts below.
pkgs=$(go list ./... | grep -v -e /internal/e2e -e /connectors/httpapi -e /internal/query)
go test -run '^$' -bench . -benchmem -count "${BENCH_COUNT:-3}" -benchtime "${BENCH_TIME:-1s}" $pkgs | tee -a "$tmp"
{
  echo
  echo "## end to end on the embedded broker (transport -> application -> transport)"
  echo "# BenchmarkRoundTrip: 200,000 messages from 1,000 users, 64 concurrent senders (target >= 10,000 msgs/s)"
  echo "# BenchmarkRoundTripAt1000PerSecond: 10,000 messages paced at 1,000/s (goal p99 < 20 ms)"
} >>"$tmp"
go test ./internal/e2e/ -run '^$' -bench 'RoundTrip$' -benchtime 200000x -count 1 | tee -a "$tmp"
go test ./internal/e2e/ -run '^$' -bench 'RoundTripAt1000PerSecond$' -benchtime 10000x -count 1 | tee -a "$tmp"
{
  echo
  echo "## HTTP API transport"
  echo "# BenchmarkIngress: 50,000 requests, reply_expected false, 64 clients on this machine (target >= 15,000 req/s)"
  echo "# BenchmarkSyncReplyAt1000PerSecond: 10,000 requests at 1,000/s through the echo app (target p99 < 25 ms)"
} >>"$tmp"
go test ./connectors/httpapi/ -run '^$' -bench 'Ingress$' -benchtime 50000x -count 1 | tee -a "$tmp"
go test ./connectors/httpapi/ -run '^$' -bench 'SyncReplyAt1000PerSecond$' -benchtime 10000x -count 1 | tee -a "$tmp"
{
  echo
  echo "## message store on the embedded broker"
  echo "# BenchmarkStoreMixedTraffic: 100,000 records (inbound, outbound, ack, delivery report per user) indexed into one batch (target >= 10,000 msgs/s)"
  echo "# (BenchmarkStack4Layers, the four-layer middleware stack, target <= 5 us/msg, is with the unit benchmarks)"
} >>"$tmp"
go test ./internal/e2e/ -run '^$' -bench 'StoreMixedTraffic$' -benchtime 100000x -count 1 | tee -a "$tmp"
{
  echo
  echo "## dispatchers"
  echo "# BenchmarkDispatcherHop: 200,000 inbound messages through one keyword dispatcher hop on the embedded broker (target >= 20,000 msgs/s)"
  echo "# (BenchmarkRoutingMemoryLookup, event routing memory in LevelDB with 1,000,000 remembered ids, is with the unit benchmarks)"
} >>"$tmp"
go test ./internal/e2e/ -run '^$' -bench 'DispatcherHop$' -benchtime 200000x -count 1 | tee -a "$tmp"
{
  echo
  echo "## archive and analytics"
  echo "# BenchmarkArchiverThroughput: 200,000 SMS messages produced onto the embedded broker while the archiver runs, until all are committed in Parquet files (target >= 50,000 msgs/s)"
  echo "# BenchmarkConversationQuery: queries over an archive of 10,000,000 messages (Parquet written directly, 200,000 users, SMS/USSD/XMPP, 30 days);"
  echo "#   one_user (one end user's conversations, in order) target < 2 s; the others scan every conversation"
} >>"$tmp"
go test ./internal/e2e/ -run '^$' -bench 'ArchiverThroughput$' -benchtime 200000x -count 1 | tee -a "$tmp"
go test ./internal/query/ -run '^$' -bench 'ConversationQuery' -benchtime 3x -count 1 -timeout 60m | tee -a "$tmp"
mv "$tmp" "$out"
trap - EXIT
echo "wrote $out"
