#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/fuzz_targets/) with libFuzzer, one after the other, and
# prints executions and crashes per target. Exit status 1 if any target crashed.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     default: 60 seconds, all targets
#   scripts/fuzz.sh --ci                                 25 seconds each
#
# Only stable Rust is needed: RUSTC_BOOTSTRAP=1 unlocks the flags cargo-fuzz passes.
# cargo-fuzz is installed into $HOME/.cache/mxmesh/cargo-fuzz if missing; builds go to
# $HOME/.cache/mxmesh/fuzz-target, the growing corpus to $HOME/.cache/mxmesh/fuzz-corpus
# (the committed seeds in fuzz/corpus/ are read, never written), crash inputs to
# fuzz/artifacts/<target>/. FUZZ_SANITIZER=address|none (default address).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

seconds=60
if [ "${1:-}" = "--ci" ]; then
  seconds=25
  shift
elif [[ "${1:-}" =~ ^[0-9]+$ ]]; then
  seconds=$1
  shift
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(smtp_commands data_framer message_pipeline rule_json mesh_decoders)
fi

source scripts/setup.sh
cache="$HOME/.cache/mxmesh"
export PATH="$cache/cargo-fuzz/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz into $cache/cargo-fuzz" >&2
  cargo install --locked --quiet cargo-fuzz --version 0.13.2 --root "$cache/cargo-fuzz" >&2
fi
export RUSTC_BOOTSTRAP=1
sanitizer="${FUZZ_SANITIZER:-address}"
target_dir="$cache/fuzz-target"

# Longest input per target: whole sessions and messages need more than libFuzzer's 4 KiB.
max_len() {
  case "$1" in
    smtp_commands | message_pipeline) echo 65536 ;;
    data_framer) echo 16384 ;;
    *) echo 8192 ;;
  esac
}

cd fuzz
echo "fuzz: building ${targets[*]} (sanitizer: $sanitizer)" >&2
build_start=$(date +%s)
for t in "${targets[@]}"; do
  cargo fuzz build --sanitizer "$sanitizer" --target-dir "$target_dir" "$t" >&2
done
echo "fuzz: build took $(($(date +%s) - build_start)) s" >&2

failed=0
summary=()
for t in "${targets[@]}"; do
  work="$cache/fuzz-corpus/$t"
  artifacts="$root/fuzz/artifacts/$t"
  log="$cache/fuzz-logs/$t.log"
  mkdir -p "$work" "$artifacts" "$(dirname "$log")"
  echo "fuzz: $t for ${seconds}s" >&2
  status=0
  cargo fuzz run --sanitizer "$sanitizer" --target-dir "$target_dir" "$t" \
    "$work" "$root/fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1 || status=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  units=$(find "$work" -type f | wc -l)
  crashes=0
  if [ "$status" -ne 0 ]; then
    failed=1
    crashes=$(find "$artifacts" -type f | wc -l)
    echo "fuzz: $t FAILED (exit $status); log $log" >&2
    grep -m5 -E 'panicked|ERROR: libFuzzer|SUMMARY|Test unit written' "$log" >&2 || true
  fi
  summary+=("$(printf '%-18s %12s execs %8s exec/s %6s corpus  %s' "$t" "${execs:-?}" \
    "${rate:-?}" "$units" "$([ "$status" -eq 0 ] && echo ok || echo "CRASH ($crashes in fuzz/artifacts/$t)")")")
done

echo
echo "target             executions        rate        corpus  result (${seconds}s each, $sanitizer)"
printf '%s\n' "${summary[@]}"
exit "$failed"
