#!/usr/bin/env bash
# Starts a local keel cluster of N nodes (default 3) on loopback, each with
# its own data directory under ./keel-cluster/, and stops it on Ctrl-C.
#
#   deploy/local-cluster.sh [N]          # uses the release binary
#   KEEL_BIN=/path/to/keel deploy/local-cluster.sh 5
#
# Node i listens on: ingress 8080+i-1, admin 9070+i-1, node gRPC 5122+i-1.
set -euo pipefail
n="${1:-3}"
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="${KEEL_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/keel-target}/release/keel}"
[ -x "$bin" ] || { echo "keel binary not found at $bin (run scripts/run.sh once, or set KEEL_BIN)" >&2; exit 1; }
data="${KEEL_CLUSTER_DIR:-$PWD/keel-cluster}"
mkdir -p "$data"
# The nodes authenticate each other with a shared secret, made once and
# readable by this user only.
secret="$data/cluster-secret"
if [ ! -s "$secret" ]; then
  (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$secret")
fi

peers=""
for i in $(seq 1 "$n"); do
  peers="${peers:+$peers,}$i=127.0.0.1:$((5122 + i - 1))"
done

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait || true
}
trap cleanup EXIT INT TERM

for i in $(seq 1 "$n"); do
  "$bin" --node-id "$i" --peers "$peers" --data-dir "$data/node-$i" --cluster-secret-file "$secret" \
    --ingress-addr "127.0.0.1:$((8080 + i - 1))" \
    --admin-addr "127.0.0.1:$((9070 + i - 1))" \
    --node-addr "127.0.0.1:$((5122 + i - 1))" \
    >"$data/node-$i.log" 2>&1 &
  pids+=("$!")
  echo "node $i: ingress :$((8080 + i - 1)) admin :$((9070 + i - 1)) log $data/node-$i.log"
done
echo "partition table: curl -s localhost:9070/cluster    (Ctrl-C stops the cluster)"
wait
