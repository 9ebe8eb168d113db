#!/usr/bin/env bash
# Whole-process figures with hyperfine (apt-get install hyperfine): `kimi-vault token` with a
# valid token on the file backend against `cat` of a small file, and on the keyring backend
# (inside a private D-Bus session with gnome-keyring). Loopback only: no request is made, the
# token is valid. Usage: scripts/bench.sh [hyperfine options]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin kimi-vault --example seed
bin=$PWD/target/release/kimi-vault
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Seed a valid credential through the library (no network): a tiny example program.
"$PWD/target/release/examples/seed" "$work/vault" >/dev/null
head -c 2000 /dev/urandom | base64 > "$work/small.txt"

echo "== file backend"
KIMI_VAULT_HOME=$work/vault KIMI_VAULT_BACKEND=file \
    hyperfine -N --warmup 20 --min-runs 300 "$@" \
    "cat $work/small.txt" \
    "$bin token"

echo "== keyring backend (gnome-keyring in a private D-Bus session)"
export KEYRING_HOME=$work/home BIN=$bin WORK=$work SEED=$PWD/target/release/examples/seed
mkdir -p "$KEYRING_HOME/.local/share/keyrings"
dbus-run-session -- bash -c '
    set -e
    export HOME=$KEYRING_HOME
    printf "bench-password" | gnome-keyring-daemon --unlock --components=secrets >/dev/null
    "$SEED" "$WORK/vault-kr" keyring >/dev/null
    KIMI_VAULT_HOME=$WORK/vault-kr KIMI_VAULT_BACKEND=keyring \
        hyperfine -N --warmup 5 --min-runs 50 '"$*"' "$BIN token"
'
