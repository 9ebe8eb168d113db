#!/usr/bin/env bash
# Runs every fuzz target for FUZZ_SECONDS seconds each (default 60) on the stable toolchain,
# without a sanitizer (`-s none`), starting from the committed seeds in fuzz/seeds/TARGET and the
# local corpus in fuzz/corpus/TARGET. Prints, per target, how many executions it survived.
# Long run: FUZZ_SECONDS=3600 scripts/fuzz.sh
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${FUZZ_SECONDS:-60}

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
cargo fuzz build -s none

mkdir -p logs
summary=()
for target in $(cargo fuzz list); do
    mkdir -p "corpus/$target" "seeds/$target"
    echo "== fuzz $target for ${secs}s"
    cargo fuzz run -s none "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$secs" -print_final_stats=1 >"logs/$target.log" 2>&1 || {
        tail -40 "logs/$target.log"
        echo "fuzz target $target FAILED (crash input under fuzz/artifacts/$target)" >&2
        exit 1
    }
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "logs/$target.log" | grep -oE '[0-9]+$' || echo "?")
    summary+=("$target: $runs executions in ${secs}s, no failure")
done
printf '%s\n' "${summary[@]}"
