#!/usr/bin/env bash
# Runs every fuzz target for FUZZ_SECONDS seconds each (default 60) on the stable toolchain,
# without a sanitizer (`-s none`), starting from the committed seeds in fuzz/seeds/TARGET and the
# local corpus in fuzz/corpus/TARGET. Prints, per target, how many executions it survived.
# A libFuzzer run uses one core: FUZZ_JOBS targets (default: the number of cores) run at once.
# Long run: FUZZ_SECONDS=3600 scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
cargo fuzz build -s none

mkdir -p logs
fuzz_one() {
    local target=$1
    mkdir -p "corpus/$target" "seeds/$target"
    echo "== fuzz $target for ${secs}s"
    if cargo fuzz run -s none "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$secs" -print_final_stats=1 >"logs/$target.log" 2>&1; then
        echo ok >"logs/$target.status"
    else
        echo failed >"logs/$target.status"
    fi
}
targets=$(cargo fuzz list)
running=0
for target in $targets; do
    rm -f "logs/$target.status"
    fuzz_one "$target" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
    fi
done
wait

summary=()
failed=0
for target in $targets; do
    if [ "$(cat "logs/$target.status" 2>/dev/null)" != ok ]; then
        tail -40 "logs/$target.log"
        echo "fuzz target $target FAILED (crash input under fuzz/artifacts/$target)" >&2
        failed=1
        continue
    fi
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "logs/$target.log" | grep -oE '[0-9]+$' || echo "?")
    summary+=("$target: $runs executions in ${secs}s, no failure")
done
printf '%s\n' "${summary[@]}"
exit "$failed"
