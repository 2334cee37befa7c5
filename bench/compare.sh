#!/usr/bin/env bash
# Runs the SDK-invocation benchmark against keel and then against the real
# Restate server, one after the other, on this machine: same TS test service
# process, same load. Prints keel-bench's tables for each system.
#
#   bash bench/compare.sh [scenarios] [connections] [duration]
#   e.g. bash bench/compare.sh noop,counter,workflow,idem-send,delayed-send 1,16 10s
#
# Needs: release builds of keel (or KEEL=/path/to/keel) and keel-bench in $CARGO_TARGET_DIR, the TS
# services installed (bash tests/services/setup.sh), ports 8080, 9070, 5122
# and 9380 free. Restate 1.7.12 is installed from npm into /tmp/restate-bench
# on first use (outside the repository). How the servers are started:
# bench/servers.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
scenarios=${1:-noop,counter,workflow,idem-send,delayed-send}
connections=${2:-1,16}
duration=${3:-10s}
target=${CARGO_TARGET_DIR:-$HOME/.cache/keel-target}
pids=()
source bench/servers.sh
prepare

cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

run_bench() { # name
  echo "== $1: $scenarios at $connections connections, $duration each"
  "$bench" http --url-base http://127.0.0.1:8080 --scenario "$scenarios" --connections "$connections" \
    --duration "$duration"
}

start_services /tmp/bench-services.log
data=$(mktemp -d)
start_keel "$data/keel" /tmp/bench-keel.log
run_bench keel
stop_server "$server_pid"

start_restate "$data/restate" /tmp/bench-restate.log
run_bench "Restate 1.7.12"
stop_server "$server_pid"
rm -rf "$data"
