#!/usr/bin/env bash
# Sets up the machine and runs every test: unit tests and the end-to-end
# tests that start real `keel` processes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The real SDK services (TypeScript on Node 22, Python) the e2e tests drive.
bash tests/services/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/keel-target}"
# The property tests (fuzz_*) run a short pass with a fixed seed, so a
# failure reproduces; set PROPTEST_RNG_SEED (and PROPTEST_CASES) to explore.
export PROPTEST_RNG_SEED="${PROPTEST_RNG_SEED:-20261207}"
# The e2e tests start the real binary, so build it first (same profile).
cargo build --locked -p keel
cargo test --locked --workspace
