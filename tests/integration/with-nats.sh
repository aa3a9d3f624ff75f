#!/usr/bin/env bash
# Runs a test program against a JetStream-enabled nats-server of its own:
#   with-nats.sh <nats-server binary> <program> [args...]
# starts the server on a free port with a fresh store directory, runs
# `<program> [args...] nats://127.0.0.1:<port>` and stops the server. Exits
# with the program's status, or 77 (ctest's SKIP_RETURN_CODE) when there is
# no nats-server.
set -u

server=$1
shift
if [[ ! -x $server ]]; then
  echo "nats-server not installed ($server): skipped"
  exit 77
fi

dir=$(mktemp -d)
pid=
cleanup() {
  if [[ -n $pid ]]; then
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  fi
  rm -rf "$dir"
}
trap cleanup EXIT

# A random port may be taken: a server that cannot listen exits, and the
# next attempt takes another port.
for attempt in 1 2 3 4 5; do
  port=$((20000 + RANDOM % 40000))
  "$server" -js -sd "$dir/store" -a 127.0.0.1 -p "$port" >"$dir/log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    if grep -q "Server is ready" "$dir/log"; then
      break 2
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      break
    fi
    sleep 0.1
  done
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  pid=
  echo "nats-server did not start on port $port (attempt $attempt):"
  tail -n 5 "$dir/log"
done
if [[ -z $pid ]]; then
  echo "no nats-server to test against"
  exit 1
fi

"$@" "nats://127.0.0.1:$port"
exit $?
