#!/usr/bin/env bash
# The project's test command (README, .ci/run): lint, then the whole test suite inside a private
# D-Bus session with gnome-keyring unlocked, in a fresh HOME, so the keyring tests talk to a real
# Secret Service. Needs: cargo, dbus-run-session (dbus), gnome-keyring, python3 (the proxy tests' stand-in clients).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --check
cargo clippy --all-targets --features testing -- -D warnings

if ! command -v dbus-run-session >/dev/null || ! command -v gnome-keyring-daemon >/dev/null \
    || ! command -v python3 >/dev/null; then
    echo "scripts/test.sh: dbus-run-session, gnome-keyring-daemon and python3 are needed (apt-get install dbus-x11 gnome-keyring python3)" >&2
    exit 1
fi

# Build first, outside the keyring session, so the session only runs tests.
cargo test --features testing --no-run --quiet

# Reports go to the cargo target directory, wherever CARGO_TARGET_DIR puts it.
target_dir=${CARGO_TARGET_DIR:-$PWD/target}
mkdir -p "$target_dir"
export KIMI_VAULT_TARGET_DIR=$target_dir

keyring_home=$(mktemp -d)
trap 'rm -rf "$keyring_home"' EXIT
export KEYRING_HOME="$keyring_home"
exec dbus-run-session -- bash -c '
    set -euo pipefail
    REAL_HOME=$HOME
    export HOME=$KEYRING_HOME
    export CARGO_HOME=${CARGO_HOME:-$REAL_HOME/.cargo}
    export RUSTUP_HOME=${RUSTUP_HOME:-$REAL_HOME/.rustup}
    unset GNOME_KEYRING_CONTROL
    mkdir -p "$HOME/.local/share/keyrings"
    # A non-empty password creates and unlocks the login keyring.
    printf "kimi-vault-test-password" | gnome-keyring-daemon --unlock --components=secrets >/dev/null
    export KIMI_VAULT_TEST_KEYRING=1
    export KIMI_VAULT_TEST_REPORT=$KIMI_VAULT_TARGET_DIR/test-report.txt
    rm -f "$KIMI_VAULT_TEST_REPORT"
    log=$(mktemp)
    cargo test --features testing "$@" 2>&1 | tee "$log"
    if [ -f "$KIMI_VAULT_TEST_REPORT" ]; then
        echo "== measured by the tests"
        cat "$KIMI_VAULT_TEST_REPORT"
    fi
    # One closing line over every suite.
    awk "/^test result:/ { p += \$4; f += \$6 } END { printf \"all suites: %d passed, %d failed\\n\", p, f }" "$log" | tee "$KIMI_VAULT_TARGET_DIR/test-summary.txt"
    rm -f "$log"
' -- "$@"
