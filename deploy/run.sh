#!/usr/bin/env bash
# Fresh machine to a running node on 127.0.0.1:8080: install, build, start a
# local nats-server (127.0.0.1:4222, monitoring on 8222, JetStream on with
# its data in build/nats-data: the rooms and their histories) as the node's
# event bus, and run the node with a development secret it prints. Extra arguments
# go to the node. Ctrl-C stops both; so does a node that fails to start, and
# the script then exits with the node's status.
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/install-deps.sh
./deploy/build.sh
nats_pid=""
if ! (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; then
  nats-server -a 127.0.0.1 -p 4222 -m 8222 -js -sd build/nats-data \
    >build/nats-server.log 2>&1 &
  nats_pid=$!
  echo "started nats-server (pid $nats_pid, log build/nats-server.log)"
fi
secret="${SWITCHYARD_JWT_SECRET:-dev-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
export SWITCHYARD_JWT_SECRET="$secret"
cat <<EOM

Development secret: $secret
Mint a token for it (another terminal):
  SWITCHYARD_JWT_SECRET=$secret build/switchyard token --sub u_1 --org org_123 --pub 'events.org_123.>'

EOM
node_pid=""
stop() {
  [ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null || true
  [ -n "$node_pid" ] && wait "$node_pid" 2>/dev/null || true
  [ -n "$nats_pid" ] && kill "$nats_pid" 2>/dev/null || true
  [ -n "$nats_pid" ] && wait "$nats_pid" 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
build/switchyard --host 127.0.0.1 --port 8080 --nats nats://127.0.0.1:4222 "$@" &
node_pid=$!
# The node exits at once when it cannot start (1: port taken; 2: bad flags),
# and within its stop bound on Ctrl-C; either way the trap stops nats-server.
status=0
wait "$node_pid" || status=$?
node_pid=""
if [ "$status" -ne 0 ]; then
  echo "switchyard exited with status $status (see docs/operations.md)" >&2
fi
exit "$status"
