#!/usr/bin/env bash
# Sets up the machine, builds keel (release) and starts a single-node cluster
# with its data in ./keel-data. Extra arguments are passed to keel.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/setup.sh"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/keel-target}"
cargo build --locked --release --manifest-path "$root/Cargo.toml" -p keel
exec "$CARGO_TARGET_DIR/release/keel" "$@"
