#!/usr/bin/env bash
# Fresh machine to a local 3-node cluster on loopback: install, build, start
# a 3-node NATS cluster with JetStream (client ports 4222-4224, routes
# 6222-6224, monitoring 8222-8224, data under build/cluster/) and three
# Switchyard nodes n1-n3 (HTTP and WebSocket on 8080-8082, cluster listeners
# on 7401-7403, each seeded with the other two, JetStream buckets and stream
# with 3 replicas), all with one development secret it prints. Extra
# arguments go to every node. Ctrl-C stops everything; so does a process
# that exits, and the script then exits with its status.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ${SWITCHYARD_SKIP_BUILD:-} != 1 ]]; then
  ./deploy/install-deps.sh
  ./deploy/build.sh
fi
dir=build/cluster
mkdir -p "$dir"
pids=()
stop() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for i in 1 2 3; do
  routes=()
  for j in 1 2 3; do
    [[ $j == "$i" ]] || routes+=("nats://127.0.0.1:$((6221 + j))")
  done
  cat >"$dir/nats-$i.conf" <<EOF
server_name: nats-$i
listen: 127.0.0.1:$((4221 + i))
http: 127.0.0.1:$((8221 + i))
jetstream { store_dir: "$dir/nats-$i" }
cluster {
  name: switchyard
  listen: 127.0.0.1:$((6221 + i))
  routes: [$(IFS=,; echo "${routes[*]}")]
}
EOF
  nats-server -c "$dir/nats-$i.conf" >"$dir/nats-$i.log" 2>&1 &
  pids+=($!)
done
# Whether GET $2 on 127.0.0.1:$1 answers 200 (bash alone: no curl needed).
http_ok() {
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'GET %s HTTP/1.0\r\n\r\n' "$2" >&3
  local status
  read -r _ status _ <&3
  exec 3<&-
  [[ $status == 200 ]]
}
# /healthz answers 200 once JetStream is current with an elected meta leader.
for i in 1 2 3; do
  for _ in $(seq 150); do
    http_ok $((8221 + i)) /healthz 2>/dev/null && continue 2
    sleep 0.2
  done
  echo "nats-server $i did not become healthy; see $dir/nats-$i.log" >&2
  exit 1
done

secret="${SWITCHYARD_JWT_SECRET:-dev-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
export SWITCHYARD_JWT_SECRET="$secret"
nats_urls=nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224
for i in 1 2 3; do
  seeds=()
  for j in 1 2 3; do
    [[ $j == "$i" ]] || seeds+=("127.0.0.1:$((7400 + j))")
  done
  build/switchyard --host 127.0.0.1 --port $((8079 + i)) \
    --nats "$nats_urls" --nats-replicas 3 \
    --cluster-port $((7400 + i)) --node-name "n$i" \
    --cluster-seeds "$(IFS=,; echo "${seeds[*]}")" "$@" \
    >"$dir/switchyard-$i.log" 2>&1 &
  pids+=($!)
done
cat <<EOM
Three nodes: http://127.0.0.1:8080 (n1), :8081 (n2), :8082 (n3); logs in $dir/.
Development secret: $secret
Mint a token that may watch the cluster (another terminal):
  SWITCHYARD_JWT_SECRET=$secret build/switchyard token --sub ops --org org_123 --node-admin
  curl -H "Authorization: Bearer \$TOKEN" http://127.0.0.1:8080/v1/cluster
EOM
# The first process to exit ends the cluster (a node that cannot start exits
# at once: 1 port taken, 2 bad flags).
set +e
wait -n "${pids[@]}"
status=$?
echo "a process of the cluster exited with $status; stopping the others" >&2
exit "$status"
