#!/usr/bin/env bash
# Runs every benchmark and writes the figures to BENCHMARKS.md: the machine
# they were taken on, the exact commands, the end-to-end pipeline at fixed
# offered loads and at saturation, then every per-component benchmark.
# Tests never assert on speed; this file is where the targets are checked.
#
#   PIPELINE_ONLY=1   only the end-to-end pipeline (a few minutes)
#   BENCH_PROFILE=DIR also write a CPU profile of each pipeline run to DIR
#   BENCH_COUNT, BENCH_TIME  for the unit benchmarks (default 3, 1s)
set -euo pipefail
cd "$(dirname "$0")/.."
out=BENCHMARKS.md
tmp=$(mktemp)
raw=$(mktemp)
trap 'rm -f "$tmp" "$raw"' EXIT

go test -c -o "$raw.e2e" ./internal/e2e/ >/dev/null
trap 'rm -f "$tmp" "$raw" "$raw.e2e"' EXIT

# pipeline NAME RATE COUNT: one run of BenchmarkPipeline in its own process
# (so that peak RSS is that run's), its figures as one table row.
pipeline() {
  local name=$1 rate=$2 count=$3 prof=()
  if [ -n "${BENCH_PROFILE:-}" ]; then
    mkdir -p "$BENCH_PROFILE"
    prof=(-test.cpuprofile "$BENCH_PROFILE/pipeline-$name.pprof")
  fi
  local cmd="PIPELINE_RATE=$rate go test ./internal/e2e/ -run '^\$' -bench 'Pipeline\$' -benchtime ${count}x -count 1"
  echo "$cmd" >>"$raw.cmds"
  local line
  line=$(cd internal/e2e && PIPELINE_RATE=$rate "$raw.e2e" -test.run '^$' -test.bench 'Pipeline$' \
    -test.benchtime "${count}x" -test.count 1 "${prof[@]}" 2>&1 | tee -a "$raw" | grep '^BenchmarkPipeline' || true)
  if [ -z "$line" ]; then
    echo "| $name | $count | (failed: see the output below) |||||||||||" >>"$tmp.rows"
    return
  fi
  # "value unit" pairs after the name, iterations and ns/op.
  echo "$line" | awk -v name="$name" -v n="$count" '{
    for (i = 5; i < NF; i += 2) v[$(i+1)] = $i
    printf "| %s | %s | %s | %s / %s / %s | %s / %s / %s | %s / %s / %s | %s / %s / %s | %s | %s | %s | %s |\n", name, n,
      v["msgs/s"], v["http-p50-ms"], v["http-p99-ms"], v["http-p99.9-ms"],
      v["smsc-p50-ms"], v["smsc-p99-ms"], v["smsc-p99.9-ms"],
      v["ack-p50-ms"], v["ack-p99-ms"], v["ack-p99.9-ms"],
      v["dr-p50-ms"], v["dr-p99-ms"], v["dr-p99.9-ms"],
      v["cpu-µs/msg"], v["peak-rss-MiB"], v["peak-heap-MiB"], v["dup-events"] }' >>"$tmp.rows"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
: >"$raw.cmds"
: >"$tmp.rows"
pipeline "500 msgs/s offered" 500 15000
pipeline "2,000 msgs/s offered" 2000 40000
pipeline "saturation (256 clients)" 0 60000
pipeline "10,000 msgs/s offered, 20 s" 10000 200000
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

{
  echo "# Benchmarks"
  echo
  echo "Written by \`make bench\` (scripts/bench.sh) on $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo none)$(git diff --quiet 2>/dev/null || echo ' with local changes')."
  echo
  echo "## Machine"
  echo
  echo "* CPU: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "* Memory: $(free -h | awk '/^Mem:/ {print $2}')"
  echo "* Kernel: $(uname -sr); $(go version)"
  echo "* Load average (1, 5, 15 min) before the pipeline runs: $load_before; after: $load_after."
  echo "  This machine is shared: a load above the core count means the figures are"
  echo "  lower than the code's, and varied from run to run by a factor of two or more."
  echo
  echo "## End to end: HTTP send API -> router -> SMPP transport -> SMSC simulator -> events back to the application"
  echo
  echo "One process: the embedded broker (kfake) and schema registry, Avro on every topic, the"
  echo "\`http_send_api\` application, a \`simple_dispatch_router\`, the \`smpp\` transport (window 128,"
  echo "amqp_prefetch_count 256, delivery receipts requested) bound to the SMSC simulator, and the load"
  echo "generator (HTTP clients on loopback). A message's path: POST -> api.sends -> send API processor"
  echo "-> api.outbound -> router -> smpp.outbound -> submit_sm -> SMSC -> submit_sm_resp and a"
  echo "deliver_sm receipt -> smpp.event -> router -> api.event -> send API processor (status table)."
  echo
  echo "Latency is measured from the moment a message's POST was due on an open-loop schedule (a slow"
  echo "server does not slow the sender down and hide its latency): *http* until the 201 answer,"
  echo "*smsc* until the simulator read the submit_sm, *ack* and *dr* until the ack and the delivery"
  echo "report were on api.event. Throughput counts messages whose ack and delivery report are both"
  echo "back. CPU is getrusage of the whole process (broker, registry, every worker, simulator and"
  echo "load generator) divided by the messages; peak RSS is VmHWM (reset before the run), peak heap"
  echo "the largest live Go heap sampled every 50 ms. Targets: >= 10,000 msgs/s sustained; p99 < 50 ms"
  echo "at 2,000 msgs/s."
  echo
  echo "| load | messages | msgs/s | http p50 / p99 / p99.9 ms | smsc p50 / p99 / p99.9 ms | ack p50 / p99 / p99.9 ms | dr p50 / p99 / p99.9 ms | CPU µs/msg | peak RSS MiB | peak heap MiB | duplicate events |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  cat "$tmp.rows"
  echo
  echo "Commands (each in its own process):"
  echo
  echo '```'
  cat "$raw.cmds"
  echo '```'
  echo
  echo "To profile a run, add \`-cpuprofile cpu.out\` to one of these commands (or run"
  echo "\`BENCH_PROFILE=DIR PIPELINE_ONLY=1 make bench\`) and read it with \`go tool pprof -top -cum\`."
  echo "docs/performance.md records what the profiles showed and what was changed."
  echo
  echo "<details><summary>Raw output of the pipeline runs</summary>"
  echo
  echo '```'
  grep -v -e '^goos:' -e '^goarch:' -e '^pkg:' -e '^cpu:' "$raw" || true
  echo '```'
  echo
  echo "</details>"
} >"$tmp"
rm -f "$tmp.rows" "$raw.cmds"

if [ -n "${PIPELINE_ONLY:-}" ]; then
  mv "$tmp" "$out"
  chmod 644 "$out"
  trap - EXIT
  rm -f "$raw" "$raw.e2e"
  echo "wrote $out (pipeline only)"
  exit 0
fi

# section TITLE NOTE... CMD: a heading, notes, the command, its output.
section() {
  local title=$1
  shift
  {
    echo
    echo "## $title"
    echo
    while [ $# -gt 1 ]; do echo "$1"; shift; done
    echo
    echo '```'
    echo "\$ $1"
  } >>"$tmp"
  bash -c "$1" 2>&1 | grep -v -e '^goos:' -e '^goarch:' -e '^cpu:' -e '^PASS$' -e 'no test files' >>"$tmp" || true
  echo '```' >>"$tmp"
}

pkgs=$(go list ./... | grep -v -e /internal/e2e -e /connectors/httpapi -e /internal/query | tr '\n' ' ')
section "Unit benchmarks (codecs, hashing, tables, middleware, ...)" \
  "Each package's Benchmark* functions; packages without benchmarks print only \`ok\`." \
  "go test -run '^\$' -bench . -benchmem -count ${BENCH_COUNT:-3} -benchtime ${BENCH_TIME:-1s} $pkgs"
section "Transport -> application -> transport on the embedded broker" \
  "* BenchmarkRoundTrip: 200,000 messages from 1,000 users, 64 concurrent senders (target >= 10,000 msgs/s)" \
  "* BenchmarkRoundTripAt1000PerSecond: 10,000 messages paced at 1,000/s (goal p99 < 20 ms)" \
  "go test ./internal/e2e/ -run '^\$' -bench 'RoundTrip\$' -benchtime 200000x -count 1 && go test ./internal/e2e/ -run '^\$' -bench 'RoundTripAt1000PerSecond\$' -benchtime 10000x -count 1"
section "HTTP API transport" \
  "* BenchmarkIngress: 50,000 requests, reply_expected false, 64 clients on this machine (target >= 15,000 req/s)" \
  "* BenchmarkSyncReplyAt1000PerSecond: 10,000 requests at 1,000/s through the echo app (target p99 < 25 ms)" \
  "go test ./connectors/httpapi/ -run '^\$' -bench 'Ingress\$' -benchtime 50000x -count 1 && go test ./connectors/httpapi/ -run '^\$' -bench 'SyncReplyAt1000PerSecond\$' -benchtime 10000x -count 1"
section "Message store on the embedded broker" \
  "* BenchmarkStoreMixedTraffic: 100,000 records (inbound, outbound, ack, delivery report per user) indexed into one batch (target >= 10,000 msgs/s)" \
  "* BenchmarkStack4Layers, the four-layer middleware stack (target <= 5 µs/msg), is with the unit benchmarks" \
  "go test ./internal/e2e/ -run '^\$' -bench 'StoreMixedTraffic\$' -benchtime 100000x -count 1"
section "Dispatchers" \
  "* BenchmarkDispatcherHop: 200,000 inbound messages through one keyword dispatcher hop on the embedded broker (target >= 20,000 msgs/s)" \
  "* BenchmarkRoutingMemoryLookup, event routing memory in LevelDB with 1,000,000 remembered ids, is with the unit benchmarks" \
  "go test ./internal/e2e/ -run '^\$' -bench 'DispatcherHop\$' -benchtime 200000x -count 1"
section "Archive and analytics" \
  "* BenchmarkArchiverThroughput: 200,000 SMS messages produced onto the embedded broker while the archiver runs, until all are committed in Parquet files (target >= 50,000 msgs/s)" \
  "* BenchmarkConversationQuery: queries over an archive of 10,000,000 messages (Parquet written directly, 200,000 users, SMS/USSD/XMPP, 30 days); one_user (one end user's conversations, in order) target < 2 s; the others scan every conversation" \
  "go test ./internal/e2e/ -run '^\$' -bench 'ArchiverThroughput\$' -benchtime 200000x -count 1 && go test ./internal/query/ -run '^\$' -bench 'ConversationQuery' -benchtime 3x -count 1 -timeout 60m"

mv "$tmp" "$out"
chmod 644 "$out"
trap - EXIT
rm -f "$raw" "$raw.e2e"
echo "wrote $out"
