#!/usr/bin/env bash
# Fresh machine to a running node on 127.0.0.1:8080: install, build, start a
# local nats-server for the node's event bus, run the node with a development
# secret it prints. Extra arguments go to the node.
set -euo pipefail
cd "$(dirname "$0")/.."
./deploy/install-deps.sh
./deploy/build.sh
secret="${SWITCHYARD_JWT_SECRET:-dev-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
export SWITCHYARD_JWT_SECRET="$secret"
cat <<EOM

Development secret: $secret
Mint a token for it (another terminal):
  SWITCHYARD_JWT_SECRET=$secret build/switchyard token --sub u_1 --org org_123 --pub 'events.org_123.>'

EOM
exec build/switchyard --host 127.0.0.1 --port 8080 "$@"
