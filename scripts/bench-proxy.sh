#!/usr/bin/env bash
# Whole-process figures for `kimi-vault proxy`, loopback only: a load generator (wrk, from
# Debian: apt-get install wrk) against a fast local upstream (examples/bench_upstream.rs, a tiny
# hyper server) directly and through the proxy, at 1 and 64 connections; then 256 connections
# left idle and then streaming at once; the proxy's peak RSS; and how long an SSE event takes
# from the upstream's send to the client, directly and through the proxy.
# Usage: scripts/bench-proxy.sh [SECONDS per wrk run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
cargo build --release --quiet --bin kimi-vault --example seed --example bench_upstream --example bench_client
bin=$PWD/target/release/kimi-vault
ex=$PWD/target/release/examples
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

up_port=$((20000 + RANDOM % 20000))
"$ex/bench_upstream" "$up_port" & pids+=($!)
"$ex/seed" "$work/vault" >/dev/null
export KIMI_VAULT_HOME=$work/vault KIMI_VAULT_BACKEND=file
export KIMI_CODE_BASE_URL=http://127.0.0.1:$up_port/coding/v1 KIMI_CODE_OAUTH_HOST=http://127.0.0.1:9
"$bin" proxy --port 0 --json >"$work/ready" 2>"$work/proxy.err" & proxy_pid=$!
pids+=("$proxy_pid")
for _ in $(seq 100); do [ -s "$work/ready" ] && break; sleep 0.05; done
url=$(sed -E 's/.*"url":"([^"]+)".*/\1/' "$work/ready")
key=$(sed -E 's/.*"api_key":"([^"]+)".*/\1/' "$work/ready")
direct=http://127.0.0.1:$up_port/coding/v1
rss() { awk -v f="$1" '$1==f":" {print $2}' "/proc/$proxy_pid/status"; }
echo "proxy at $url (pid $proxy_pid), upstream at $direct; idle RSS $(rss VmRSS) kB"

# wrk's latency lines ("50%  123.45us") in microseconds.
to_us() { awk '{ v=$2; if (v ~ /us$/) { sub(/us$/,"",v); print v } else if (v ~ /ms$/) { sub(/ms$/,"",v); print v*1000 } else if (v ~ /s$/) { sub(/s$/,"",v); print v*1000000 } }'; }
run() { # name connections url [header]
    local out threads=$(( $2 > 1 ? 2 : 1 ))
    if [ $# -ge 4 ]; then out=$(wrk -t"$threads" -c"$2" -d"${secs}s" --latency -H "$4" "$3")
    else out=$(wrk -t"$threads" -c"$2" -d"${secs}s" --latency "$3"); fi
    local p50 p99 rps
    p50=$(grep -E '^ +50%' <<<"$out" | to_us)
    p99=$(grep -E '^ +99%' <<<"$out" | to_us)
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    echo "$1 c=$2 p50_us=$p50 p99_us=$p99 rps=$rps"
    eval "${1}_${2}_p50=$p50 ${1}_${2}_p99=$p99 ${1}_${2}_rps=$rps"
}
for c in 1 64; do
    run direct "$c" "$direct/ping"
    run proxy "$c" "$url/v1/ping" "x-api-key: $key"
done
# An upstream that takes 20 ms per answer (a real model API takes far longer): what the proxy
# costs when the CPU is not all spent on the proxy, the load generator and a zero-work upstream.
run slowdirect 64 "$direct/ping?delay=20"
run slowproxy 64 "$url/v1/ping?delay=20" "x-api-key: $key"
echo
echo "== summary (wrk ${secs}s per run)"
for c in 1 64; do
    awk -v c="$c" -v d50="$(eval echo \$direct_${c}_p50)" -v p50="$(eval echo \$proxy_${c}_p50)" \
        -v d99="$(eval echo \$direct_${c}_p99)" -v p99="$(eval echo \$proxy_${c}_p99)" \
        -v drps="$(eval echo \$direct_${c}_rps)" -v prps="$(eval echo \$proxy_${c}_rps)" \
        'BEGIN { printf "c=%-3s added latency p50 %.0f us, p99 %.0f us; throughput %.0f req/s through the proxy vs %.0f direct (%.0f %%)\n", c, p50-d50, p99-d99, prps, drps, 100*prps/drps }'
done
awk -v d="$slowdirect_64_rps" -v p="$slowproxy_64_rps" -v d50="$slowdirect_64_p50" -v p50="$slowproxy_64_p50" \
    'BEGIN { printf "c=64 with a 20 ms upstream: %.0f req/s through the proxy vs %.0f direct (%.0f %%), added latency p50 %.0f us\n", p, d, 100*p/d, p50-d50 }'
echo "== 256 connections idle for 2 s, then streaming 20 events 100 ms apart at once"
"$ex/bench_client" streams "${url#http://}" "/v1/sse?n=20&gap=100" "$key" 256
echo "peak RSS of the proxy: $(rss VmHWM) kB"
echo "== SSE event latency, upstream send -> client arrival (200 streams of 5 events)"
echo -n "direct:        "; "$ex/bench_client" sse-latency "127.0.0.1:$up_port" "/coding/v1/sse?n=5&gap=20" x 200
echo -n "through proxy: "; "$ex/bench_client" sse-latency "${url#http://}" "/v1/sse?n=5&gap=20" "$key" 200
