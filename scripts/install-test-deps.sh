#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine.
# Idempotent: skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

# Go modules (pinned in go.mod / go.sum).
go mod download

# The npm "smpp" package: an SMSC nobody here wrote, for the SMPP
# transport's interop test (connectors/smpp/interop_test.go).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "node and npm are required (apt-get install nodejs npm)" >&2
  exit 1
fi
smpp_dir=connectors/smpp/testdata/interop
if [ ! -f "$smpp_dir/node_modules/.package-lock.json" ] || [ "$smpp_dir/package-lock.json" -nt "$smpp_dir/node_modules/.package-lock.json" ]; then
  (cd "$smpp_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi

# Carbon (Debian's graphite-carbon, with python3-whisper's whisper-fetch):
# the real Graphite backend of the metrics end-to-end test
# (connectors/graphite/carbon_test.go), started on loopback by the test.
if ! command -v carbon-cache >/dev/null 2>&1 || ! command -v whisper-fetch >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "carbon-cache and whisper-fetch are required (run as root, or: sudo apt-get install graphite-carbon python3-whisper)" >&2
    exit 1
  fi
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends graphite-carbon python3-whisper
fi

# npm packages of the non-Go history consumer (internal/e2e
# TestHistoryNodeConsumer: kafkajs, kafkajs-snappy and
# @kafkajs/confluent-schema-registry), into a project-local node_modules.
# Needs node and npm; skipped when the lock file's packages are installed.
node_dir=internal/e2e/testdata/node
if ! command -v npm >/dev/null 2>&1; then
  echo "npm is missing: install nodejs and npm (TestHistoryNodeConsumer needs them)" >&2
  exit 1
fi
if [ ! -f "$node_dir/node_modules/.package-lock.json" ] || [ "$node_dir/package-lock.json" -nt "$node_dir/node_modules/.package-lock.json" ]; then
  (cd "$node_dir" && npm ci --no-audit --no-fund)
fi

# prosody and ngircd: the real XMPP and IRC servers of the chat transports'
# end-to-end tests (connectors/xmpp/prosody_test.go,
# connectors/irc/ngircd_test.go). The tests start them on loopback with
# temporary configs; the system services are not used.
# ngircd lives in /usr/sbin, which is not on every user's PATH.
if ! command -v prosody >/dev/null 2>&1 || ! command -v prosodyctl >/dev/null 2>&1 || { ! command -v ngircd >/dev/null 2>&1 && [ ! -x /usr/sbin/ngircd ]; }; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "prosody and ngircd are required (run as root, or: sudo apt-get install prosody ngircd)" >&2
    exit 1
  fi
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prosody ngircd
fi

# Chromium and chromedriver: the headless browser of the dashboard test
# (internal/management TestDashboardInBrowser), driven over WebDriver.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "chromium and chromedriver are required (run as root, or: sudo apt-get install chromium chromium-driver)" >&2
    exit 1
  fi
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver
fi
