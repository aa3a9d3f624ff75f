#!/usr/bin/env bash
# Regenerates docs/benchmarks.md and its plots: every scenario against
# Switchyard (in-process bus and NATS, each Switchyard subprotocol) and
# nats-server's WebSocket listener, same generator, same run. Every server is
# warmed before measuring and the targets alternate over ROUNDS rounds; the
# page quotes medians with their spread; the token-streaming scenarios
# (tests/bench/streams.mjs, `ws` from tests/e2e's node_modules) follow.
# Takes ~35 minutes on 2 cores. Run as root on the bench machine (perf needs
# it); nothing else may load the machine meanwhile.
#
# Knobs (environment): ROUNDS (default 3), DURATION (seconds per measured
# step, default 5), SUBPROTOCOLS (default json,ndjson,msgpack), SUBS_LARGE
# (default 10000), QUICK=1 (fan-out only: no many-topics, idle, storm,
# token streaming, profile or micro-benchmarks; for checking this script).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v gnuplot >/dev/null || apt-get install -y -qq gnuplot-nox >/dev/null
command -v perf >/dev/null || apt-get install -y -qq linux-perf >/dev/null
./deploy/build.sh >/dev/null
out=build/bench
mkdir -p "$out" docs/img
rm -f "$out"/*.json "$out/streams.txt"
git rev-parse --short HEAD >"$out/commit.txt" 2>/dev/null || true
load=build/tests/bench/swload
rounds=${ROUNDS:-3}
duration=${DURATION:-4}
large=${SUBS_LARGE:-10000}
# 256-byte events, as the independent generator used; the node with two
# WebSocket I/O threads (its best on 2 cores; nats-server uses both cores).
common="--switchyard build/switchyard --subprotocol ${SUBPROTOCOLS:-json,ndjson,msgpack} --rounds $rounds --duration $duration --payload 256 --io-threads 2"

echo "fan-out, closed loop, 1k subscribers" >&2
$load --scenario fanout --closed-loop --subs 1000 \
  --json "$out/closed1k.json" $common | tee "$out/closed1k.txt"
echo "fan-out, closed loop, $large subscribers" >&2
$load --scenario fanout --closed-loop --subs "$large" \
  --json "$out/closed10k.json" $common | tee "$out/closed10k.txt"
echo "fan-out at equal load (open loop): 1M deliveries/s to 1k subscribers" >&2
$load --scenario fanout --subs 1000 --rates 1000 \
  --json "$out/equal1k.json" $common | tee "$out/equal1k.txt"
echo "fan-out at equal load (open loop): 500k deliveries/s to $large" >&2
$load --scenario fanout --subs "$large" --rates $((500000 / large)) \
  --json "$out/equal10k.json" $common | tee "$out/equal10k.txt"
if [ "${QUICK:-0}" = 1 ]; then
  python3 tests/bench/report.py "$out" docs
  echo "wrote docs/benchmarks.md (QUICK: fan-out only)" >&2
  exit 0
fi
echo "many topics, 10k connections in 100 orgs" >&2
$load --scenario many-topics --conns 10000 --per-org 100 \
  --rates 2000,8000,32000 \
  --json "$out/many.json" $common --subprotocol json | tee "$out/many.txt"
echo "idle capacity" >&2
$load --scenario idle --conns 19500 --procs 2 --shared --duration 5 \
  --targets switchyard,nats --json "$out/idle-shared.json" \
  --switchyard build/switchyard | tee "$out/idle-shared.txt"
$load --scenario idle --conns 19500 --procs 2 --duration 5 \
  --targets switchyard,nats --json "$out/idle-unique.json" \
  --switchyard build/switchyard | tee "$out/idle-unique.txt"
echo "connect storm" >&2
$load --scenario storm --conns 10000 --procs 2 --shared \
  --json "$out/storm.json" --switchyard build/switchyard | tee "$out/storm.txt"

echo "token streaming: rooms, watchers, echo agents" >&2
# The first again with two client processes: how much of the latency is the
# generator's own (one Node.js process near a full core).
for scenario in "--rooms 100 --watchers 10 --tps 50" "--rooms 1000 --watchers 2 --tps 20" \
  "--rooms 100 --watchers 10 --tps 50 --procs 2"; do
  # shellcheck disable=SC2086 # the scenario is its flags
  node tests/bench/streams.mjs $scenario --rounds "$rounds" \
    --switchyard build/switchyard --json "$out/streams.json" | tee -a "$out/streams.txt"
done

echo "profile of the node at saturation (perf, cpu-clock)" >&2
$load --scenario fanout --closed-loop --subs 10000 --targets switchyard-nats \
  --subprotocol ndjson --io-threads 2 --payload 256 \
  --rounds 1 --server-warmup 0 --duration 20 --switchyard build/switchyard \
  >"$out/profile-run.txt" &
loadpid=$!
sleep 15
nodepid=$(pgrep -n -f "switchyard --port" || true)
if [ -n "$nodepid" ]; then
  perf record -e cpu-clock -g -p "$nodepid" -o "$out/perf.data" -- sleep 5 \
    >/dev/null 2>&1 || true
  perf report -i "$out/perf.data" --stdio --no-children --sort dso,symbol \
    -g none --percent-limit 1 2>/dev/null | grep -E '^ +[0-9]' \
    | sed -E 's/ +/ /g; s/( -)+ *$//' | cut -c1-150 | head -30 \
    >"$out/profile.txt" || true
  # Kernel against user space, for the summary.
  perf report -i "$out/perf.data" --stdio --no-children --sort dso -g none \
    2>/dev/null | grep -E '^ +[0-9]' | sed -E 's/ +/ /g' | head -8 \
    >"$out/profile-dso.txt" || true
fi
wait $loadpid || true

echo "micro-benchmarks" >&2
build/tests/bench/switchyard-micro --benchmark_min_time=0.5 2>/dev/null \
  | grep -vE '^\*\*\*|^-+$' >"$out/micro.txt" || true

python3 tests/bench/report.py "$out" docs
echo "wrote docs/benchmarks.md and docs/img/*.png" >&2
