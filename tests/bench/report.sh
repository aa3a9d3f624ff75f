#!/usr/bin/env bash
# Regenerates docs/benchmarks.md and its plots: every scenario against
# Switchyard (in-process bus and NATS) and nats-server's WebSocket listener,
# same generator, same run. Takes ~15 minutes on 2 cores. Run as root on the
# bench machine (perf needs it); nothing else may load the machine meanwhile.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v gnuplot >/dev/null || apt-get install -y -qq gnuplot-nox >/dev/null
command -v perf >/dev/null || apt-get install -y -qq linux-perf >/dev/null
./deploy/build.sh >/dev/null
out=build/bench
mkdir -p "$out" docs/img
rm -f "$out"/*.json
git rev-parse --short HEAD >"$out/commit.txt" 2>/dev/null || true
load=build/tests/bench/swload
sw="--switchyard build/switchyard"

echo "fan-out, 1k subscribers" >&2
$load --scenario fanout --subs 1000 --rates 100,200,400,800,1600 --saturate \
  --duration 4 --json "$out/fanout1k.json" $sw | tee "$out/fanout1k.txt"
echo "fan-out, 10k subscribers" >&2
$load --scenario fanout --subs 10000 --rates 12,25,50,100,200 \
  --duration 4 --json "$out/fanout10k.json" $sw | tee "$out/fanout10k.txt"
echo "many topics, 10k connections in 100 orgs" >&2
$load --scenario many-topics --conns 10000 --per-org 100 \
  --rates 1000,2000,4000,8000,16000,32000 --duration 4 \
  --json "$out/many.json" $sw | tee "$out/many.txt"
echo "idle capacity" >&2
$load --scenario idle --conns 19500 --procs 2 --shared --duration 5 \
  --targets switchyard,nats --json "$out/idle-shared.json" $sw | tee "$out/idle-shared.txt"
$load --scenario idle --conns 19500 --procs 2 --duration 5 \
  --targets switchyard,nats --json "$out/idle-unique.json" $sw | tee "$out/idle-unique.txt"
echo "connect storm" >&2
$load --scenario storm --conns 10000 --procs 2 --shared \
  --json "$out/storm.json" $sw | tee "$out/storm.txt"

echo "profile of the node at saturation (perf, cpu-clock)" >&2
$load --scenario fanout --subs 10000 --targets switchyard-nats --rates 100 \
  --duration 20 $sw >"$out/profile-run.txt" &
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
