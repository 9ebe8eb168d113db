#!/usr/bin/env bash
# The project's test command (README, .ci/run): lint, then every test suite inside a private
# D-Bus session with gnome-keyring unlocked, in a fresh HOME, so the keyring tests talk to a real
# Secret Service. Needs: cargo, dbus-run-session (dbus), gnome-keyring, python3 (the proxy tests'
# stand-in clients).
#
# Every suite runs (`--no-fail-fast`), with `--features testing`, and with `--include-ignored`:
# the tests ignored in a plain `cargo test` need the Secret Service this script provides, or
# root (the chown and tmpfs tests; left out, by name, when this script does not run as root).
# Arguments are cargo's (e.g. `scripts/test.sh --test it`). The last line counts every suite:
# `suites: N passed, N failed, N skipped` (skipped: tests still ignored, e.g. root-only ones when not root); the exit code is cargo test's.
set -euo pipefail
cd "$(dirname "$0")/.."

# Reports go to the cargo target directory, wherever CARGO_TARGET_DIR puts it.
target_dir=${CARGO_TARGET_DIR:-$PWD/target}

if [ -z "${KIMI_VAULT_IN_TEST_SESSION:-}" ]; then
    cargo fmt --check
    cargo clippy --all-targets --features testing -- -D warnings

    if ! command -v dbus-run-session >/dev/null || ! command -v gnome-keyring-daemon >/dev/null \
        || ! command -v python3 >/dev/null; then
        echo "scripts/test.sh: dbus-run-session, gnome-keyring-daemon and python3 are needed (apt-get install dbus-x11 gnome-keyring python3)" >&2
        exit 1
    fi

    # Build first, outside the keyring session, so the session only runs tests.
    cargo test --features testing --no-run "$@"

    mkdir -p "$target_dir"
    keyring_home=$(mktemp -d)
    trap 'rm -rf "$keyring_home"' EXIT
    # The rest of this script again, inside the session (no exec: the trap cleans up after it).
    KIMI_VAULT_IN_TEST_SESSION=1 KEYRING_HOME="$keyring_home" \
        dbus-run-session -- "$0" "$@"
    exit
fi

# Inside dbus-run-session, in a fresh HOME.
REAL_HOME=$HOME
export HOME=$KEYRING_HOME
export CARGO_HOME=${CARGO_HOME:-$REAL_HOME/.cargo}
export RUSTUP_HOME=${RUSTUP_HOME:-$REAL_HOME/.rustup}
unset GNOME_KEYRING_CONTROL
mkdir -p "$HOME/.local/share/keyrings"
# A non-empty password creates and unlocks the login keyring.
printf "kimi-vault-test-password" | gnome-keyring-daemon --unlock --components=secrets >/dev/null
export KIMI_VAULT_TEST_KEYRING=1
export KIMI_VAULT_TEST_REPORT=$target_dir/test-report.txt
rm -f "$KIMI_VAULT_TEST_REPORT"

harness=(--include-ignored)
if [ "$(id -u)" -ne 0 ]; then
    # The tests that need root say so in their #[ignore = "needs root …"]; the next fn is theirs.
    while read -r name; do
        harness+=(--skip "$name")
        echo "not run (needs root): $name"
    done < <(grep -rh -A3 '#\[ignore = "needs root' tests/ | grep -oE '^fn [a-z0-9_]+' | cut -c4-)
fi

# The real clients' tests (tests/it/clients.rs) need scripts/clients.sh's install: without it
# they are left out, by name, and this says so (with it, as in .ci/run, they run).
clients_dir=${KIMI_VAULT_CLIENTS:-$target_dir/clients}
if [ ! -x "$clients_dir/npm/node_modules/.bin/claude" ] || [ ! -x "$clients_dir/venv/bin/python" ]; then
    while read -r name; do
        harness+=(--skip "$name")
        echo "not run (needs the real clients: scripts/clients.sh): $name"
    done < <(grep -rh -A3 '#\[ignore = "needs the real clients' tests/ | grep -oE '^fn [a-z0-9_]+' | cut -c4-)
fi

log=$(mktemp)
set +e
cargo test --features testing --no-fail-fast "$@" -- "${harness[@]}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
if [ -f "$KIMI_VAULT_TEST_REPORT" ]; then
    echo "== measured by the tests"
    cat "$KIMI_VAULT_TEST_REPORT"
fi
# A suite that could not run at all (it crashed, or did not build) has no "test result:" line;
# cargo's exit code still says so. One closing line over every suite, last.
awk '/^test result:/ { p += $4; f += $6; i += $8 }
     END { printf "suites: %d passed, %d failed, %d skipped\n", p, f, i }' "$log" \
    | tee "$target_dir/test-summary.txt"
rm -f "$log"
exit "$rc"
