#!/usr/bin/env bash
# The release binary as the README's performance section measures it: fat LTO, panic=abort
# (Cargo.toml) and, on Linux with glibc, static and non-PIE (`-C target-feature=+crt-static
# -C relocation-model=static`; the trade-offs are written in Cargo.toml). An explicit --target
# keeps these flags off build scripts and proc-macros (which must stay dynamic). Prints the
# binary's path. Usage: scripts/release-build.sh [more cargo options, e.g. --example seed]
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
case "$host" in
    *-linux-gnu)
        export RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static -C relocation-model=static" ;;
esac
cargo build --release --quiet --target "$host" --bin kimi-vault "$@" >&2
dir=$(cargo metadata --format-version 1 --no-deps | sed -E 's/.*"target_directory":"([^"]+)".*/\1/')
echo "$dir/$host/release/kimi-vault"
