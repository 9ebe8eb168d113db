#!/usr/bin/env bash
# Whole-process figures for a warm `kimi-vault token` (a valid token: no request is made),
# with its anchors measured in the same hyperfine run: `cat` of a small file and a static
# one-file reader (examples/read_one_file.rs, built like the release binary). Every case runs
# inside a private D-Bus session with gnome-keyring unlocked, so that the keyring is reachable:
#   token-file     KIMI_VAULT_BACKEND=file
#   token-auto     auto, the credential in the encrypted file, the keyring reachable (the
#                  backend index sends the read to the file alone)
#   token-keyring  KIMI_VAULT_BACKEND=keyring: served from the kernel keyring cache in front
#                  of gnome-keyring (src/store/kernel_cache.rs; the warm-up fills it)
#   token-keyring-miss  the same, the cached key invalidated before each run (as when it
#                  expires): gnome-keyring over D-Bus, then filling the cache. Measured in a
#                  second hyperfine run (its own --prepare; it invalidates every cached key of
#                  a profile named `default` of this user, harmless: the next `token` refills it).
#   token-keyring-baseline  only with BASELINE_BIN=/path/to/an/older/kimi-vault: that binary's
#                  keyring `token` on the same entry, in the first run (before/after figures)
# The release binary is scripts/release-build.sh's (fat LTO, panic=abort, static non-PIE).
# Loopback only. Needs: apt-get install hyperfine gnome-keyring dbus-x11 python3.
# Usage: [BASELINE_BIN=…] scripts/bench.sh [RUNS, default 300]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-300}
for tool in hyperfine dbus-run-session gnome-keyring-daemon python3; do
    command -v "$tool" >/dev/null || {
        echo "scripts/bench.sh needs $tool (apt-get install hyperfine gnome-keyring dbus-x11 python3)" >&2
        exit 1
    }
done
bin=$(scripts/release-build.sh --example seed --example read_one_file)
ex=$(dirname "$bin")/examples
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
head -c 2000 /dev/urandom | base64 > "$work/small.txt"
# Invalidates the kernel keyring cache's keys of profile `default` (KEYCTL_INVALIDATE = 21).
cat > "$work/uncache.py" <<'EOF'
import ctypes, platform
keyctl = {"x86_64": 250, "aarch64": 219}[platform.machine()]
libc = ctypes.CDLL(None, use_errno=True)
for line in open("/proc/keys"):
    f = line.split(None, 8)
    if len(f) == 9 and f[7] == "user" and f[8].startswith("kimi-vault:v1:default:") \
            and ":gen:" not in f[8]:
        libc.syscall(keyctl, 21, int(f[0], 16))
EOF

export BIN=$bin EX=$ex WORK=$work RUNS=$runs BASELINE_BIN=${BASELINE_BIN:-}
mkdir -p "$work/home/.local/share/keyrings"
dbus-run-session -- bash -c '
    set -euo pipefail
    export HOME=$WORK/home
    unset GNOME_KEYRING_CONTROL
    printf "bench-password" | gnome-keyring-daemon --unlock --components=secrets >/dev/null
    # Seeded through the library (no network): file, and keyring.
    "$EX/seed" "$WORK/vault" file >/dev/null
    "$EX/seed" "$WORK/vault-kr" keyring >/dev/null
    baseline=()
    if [ -n "$BASELINE_BIN" ]; then
        baseline=(-n token-keyring-baseline "$BASELINE_BIN --vault-home $WORK/vault-kr --backend keyring token")
    fi
    hyperfine -N --warmup 20 --min-runs "$RUNS" --export-json "$WORK/run.json" \
        -n cat "cat $WORK/small.txt" \
        -n static-reader "$EX/read_one_file $WORK/small.txt" \
        -n token-file "$BIN --vault-home $WORK/vault --backend file token" \
        -n token-auto "$BIN --vault-home $WORK/vault --backend auto token" \
        -n token-keyring "$BIN --vault-home $WORK/vault-kr --backend keyring token" \
        "${baseline[@]}"
    # Each run with the cached key invalidated first.
    hyperfine -N --warmup 3 --min-runs $(( (RUNS + 2) / 3 )) --export-json "$WORK/miss.json" \
        --prepare "python3 $WORK/uncache.py" \
        -n token-keyring-miss "$BIN --vault-home $WORK/vault-kr --backend keyring token"
'
python3 - "$work/run.json" "$work/miss.json" <<'EOF'
import json, sys
r = {x["command"]: x for f in sys.argv[1:] for x in json.load(open(f))["results"]}
def med(n): return r[n]["median"] * 1000
print()
print("| command | median | mean ± σ | ratio |")
print("|---|---|---|---|")
for name, anchor in [("cat", None), ("static-reader", "cat"), ("token-file", "cat"),
                     ("token-auto", "token-file"), ("token-keyring", "token-file"),
                     ("token-keyring-baseline", "token-file"),
                     ("token-keyring-miss", "token-file")]:
    if name not in r:
        continue
    x = r[name]
    ratio = f"{med(name) / med(anchor):.2f}× {anchor}" if anchor else ""
    print(f"| {name} | {med(name):.3f} ms | {x['mean']*1000:.3f} ± {x['stddev']*1000:.3f} ms | {ratio} |")
EOF
