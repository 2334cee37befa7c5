#!/usr/bin/env bash
# Soak: keeps `keel-bench soak`'s mixed load (greet, counter, workflow,
# idempotent send) on keel for a while, then, back to back, on the real
# Restate server, against the same TS test service process; then draws one
# chart per metric with both systems in it.
#
#   bash bench/soak.sh [duration] [workers] [interval] [send rate]
#   e.g. bash bench/soak.sh 60m 16      (the defaults: 60m, 16 workers, 60s rows, 100 sends/s)
#
# Writes bench/results/soak-keel.csv, soak-restate.csv and soak-*.png
# (throughput, p50, p99, RSS, data-dir size). Each server starts on a fresh
# data directory; its pid and data directory are handed to the soak, which
# reads the RSS from /proc and walks the directory.
#
# Needs: release builds of keel (or KEEL=/path/to/keel) and keel-bench in
# $CARGO_TARGET_DIR, the TS services installed (bash tests/services/setup.sh),
# ports 8080, 9070, 5122 and 9380 free, and DejaVu Sans for the charts' text
# (Debian package fonts-dejavu-core). Restate 1.7.12 is installed from npm
# into /tmp/restate-bench on first use (outside the repository). How the
# servers are started: bench/servers.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-60m}
workers=${2:-16}
interval=${3:-60s}
send_rate=${4:-100}
target=${CARGO_TARGET_DIR:-$HOME/.cache/keel-target}
results=bench/results
pids=()
source bench/servers.sh
prepare
mkdir -p "$results"

data=$(mktemp -d)
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$data"
}
trap cleanup EXIT

soak() { # name csv: the server in server_pid, its data in $data/<name>
  echo "== $1: mixed load, $workers workers ($send_rate sends/s), $duration, a row every $interval"
  "$bench" soak --url-base http://127.0.0.1:8080 --duration "$duration" --interval "$interval" \
    --workers "$workers" --send-rate "$send_rate" --pid "$server_pid" --data-dir "$data/$1" --csv "$2"
  stop_server "$server_pid"
}

start_services /tmp/soak-services.log
start_keel "$data/keel" /tmp/soak-keel.log
soak keel "$results/soak-keel.csv"
start_restate "$data/restate" /tmp/soak-restate.log
soak restate "$results/soak-restate.csv"

"$bench" soak-chart --out-dir "$results" \
  "keel=$results/soak-keel.csv" "Restate 1.7.12=$results/soak-restate.csv"
