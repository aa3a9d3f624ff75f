#!/usr/bin/env bash
# Fuzzes each libFuzzer target for SECONDS (default 60) on a copy of its seed
# corpus in a temporary folder, one target after the other.
#
#   tests/fuzz/run.sh [SECONDS] [BUILD_DIR]
#
# Builds nothing: BUILD_DIR (or $FUZZ_BUILD_DIR; default build-fuzz) must be
# a SWITCHYARD_FUZZ=ON build. $FUZZ_TARGETS (space-separated) picks targets.
# Exits non-zero when a target crashed, leaked, hung or ran out of memory,
# and prints the input that did it (kept under the temporary folder).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-60}
build=${2:-${FUZZ_BUILD_DIR:-$root/build-fuzz}}
read -r -a targets <<< "${FUZZ_TARGETS:-fuzz_ws_parser fuzz_client_frame fuzz_envelope fuzz_token fuzz_topic fuzz_rooms fuzz_rules fuzz_sse fuzz_ingest fuzz_smtp}"
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

for t in "${targets[@]}"; do
  if [[ ! -x $build/tests/fuzz/$t ]]; then
    echo "run.sh: no $build/tests/fuzz/$t; configure with -DSWITCHYARD_FUZZ=ON and build" >&2
    exit 2
  fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-fuzz.XXXXXX")
failed=()
for t in "${targets[@]}"; do
  dir=$work/$t
  mkdir -p "$dir/corpus" "$dir/artifacts"
  cp "$root/tests/fuzz/corpus/$t/"* "$dir/corpus/"
  seeds=$(find "$dir/corpus" -type f | wc -l)
  "$build/tests/fuzz/$t" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$dir/artifacts/" \
    "$dir/corpus" > "$dir/log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
  corpus=$(find "$dir/corpus" -type f | wc -l)
  artifacts=$(find "$dir/artifacts" -type f)
  if [[ $rc -eq 0 && -z $artifacts ]]; then
    echo "$t: ok, ${runs:-?} runs in ${seconds}s, corpus $seeds -> $corpus"
    continue
  fi
  failed+=("$t")
  echo "$t: FAILED (exit $rc) after ${runs:-?} runs; log: $dir/log"
  tail -n 60 "$dir/log"
  for a in $artifacts; do
    echo "$t: crashing input: $a"
  done
done

passed=$((${#targets[@]} - ${#failed[@]}))
if ((${#failed[@]} > 0)); then
  echo "failed targets: ${failed[*]} (inputs and logs under $work)"
  echo "fuzz: $passed passed, ${#failed[@]} failed"
  exit 1
fi
rm -rf "$work"
echo "fuzz: $passed passed, 0 failed"
