#!/usr/bin/env bash
# Whole-process figures for `kimi-vault proxy`, loopback only: a load generator (wrk, from
# Debian: apt-get install wrk) against a fast local upstream (examples/bench_upstream.rs, a tiny
# hyper server) directly and through the proxy, at 1 and 64 connections; then 256 connections
# left idle and then streaming at once; the proxy's peak RSS; and how long an SSE event takes
# from the upstream's send to the client, directly and through the proxy. The anchor, in the
# same run: nginx from Debian (apt-get install nginx) as a reverse proxy on the same upstream
# (keep-alive upstream connections, access log off), measured the same way: throughput at 64
# connections, CPU per proxied request (user + system time of the proxy's processes over the
# 64-connection run, divided by the requests wrk completed), added p50 latency at 1 connection.
# The release binary is scripts/release-build.sh's; KIMI_VAULT_BENCH_BIN=/path/to/kimi-vault
# measures another build instead (the one before a change, for figures side by side; the
# examples are still this tree's); KIMI_VAULT_BENCH_NO_BUILD=1 takes what the last build left.
# The machine's load (`uptime`) is printed before and after: on a shared machine, compare only
# runs made back to back.
# Usage: scripts/bench-proxy.sh [SECONDS per wrk run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 1; }
command -v nginx >/dev/null || { echo "needs nginx (apt-get install nginx)" >&2; exit 1; }
if [ -n "${KIMI_VAULT_BENCH_NO_BUILD:-}" ]; then # what the last build left (repeated runs)
    host=$(rustc -vV | sed -n 's/^host: //p')
    built=$(cargo metadata --format-version 1 --no-deps | sed -E 's/.*"target_directory":"([^"]+)".*/\1/')/$host/release/kimi-vault
else
    built=$(scripts/release-build.sh --example seed --example bench_upstream --example bench_client \
        --example bench_upstream_clients)
fi
ex=$(dirname "$built")/examples
bin=${KIMI_VAULT_BENCH_BIN:-$built}
echo "measuring $bin; load: $(uptime)"
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

# nginx, the anchor: the same job (a /v1/ prefix onto the base, an Authorization header set,
# keep-alive upstream connections), one worker per core.
nginx_port=$((up_port + 1))
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    upstream kimi { server 127.0.0.1:$up_port; keepalive 128; }
    server {
        listen 127.0.0.1:$nginx_port;
        location /v1/ {
            proxy_pass http://kimi/coding/v1/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Authorization "Bearer anchor";
            proxy_buffering off;
        }
    }
}
EOF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' 2>>"$work/nginx/stderr" & nginx_pid=$!
pids+=("$nginx_pid")
for _ in $(seq 100); do [ -s "$work/nginx/nginx.pid" ] && break; sleep 0.05; done
nginx_url=http://127.0.0.1:$nginx_port

# CPU clock ticks (user + system) used so far by a process and its child processes.
cpu_of() { # pid
    local total=0 p
    for p in "$1" $(pgrep -P "$1" || true); do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}
rss() { awk -v f="$1" '$1==f":" {print $2}' "/proc/$proxy_pid/status"; }
echo "proxy at $url (pid $proxy_pid), upstream at $direct; idle RSS $(rss VmRSS) kB"

# wrk's latency lines ("50%  123.45us") in microseconds.
to_us() { awk '{ v=$2; if (v ~ /us$/) { sub(/us$/,"",v); print v } else if (v ~ /ms$/) { sub(/ms$/,"",v); print v*1000 } else if (v ~ /s$/) { sub(/s$/,"",v); print v*1000000 } }'; }
ticks=$(getconf CLK_TCK)
run() { # name connections url [header]; the CPU of process $cpu_pid (and children) when set
    local out threads=$(( $2 > 1 ? 2 : 1 )) before=0 after=0
    [ -n "${cpu_pid:-}" ] && before=$(cpu_of "$cpu_pid")
    if [ $# -ge 4 ]; then out=$(wrk -t"$threads" -c"$2" -d"${secs}s" --latency -H "$4" "$3")
    else out=$(wrk -t"$threads" -c"$2" -d"${secs}s" --latency "$3"); fi
    [ -n "${cpu_pid:-}" ] && after=$(cpu_of "$cpu_pid")
    local p50 p99 rps n us=0
    p50=$(grep -E '^ +50%' <<<"$out" | to_us)
    p99=$(grep -E '^ +99%' <<<"$out" | to_us)
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    [ -n "${cpu_pid:-}" ] && us=$(awk -v t="$((after - before))" -v hz="$ticks" -v n="$n" 'BEGIN { printf "%.1f", 1e6 * t / hz / n }')
    echo "$1 c=$2 p50_us=$p50 p99_us=$p99 rps=$rps cpu_us_per_request=$us"
    eval "${1}_${2}_p50=$p50 ${1}_${2}_p99=$p99 ${1}_${2}_rps=$rps ${1}_${2}_cpu=$us"
}
for c in 1 64; do
    cpu_pid='' run direct "$c" "$direct/ping"
    cpu_pid=$proxy_pid run proxy "$c" "$url/v1/ping" "x-api-key: $key"
    cpu_pid=$nginx_pid run nginx "$c" "$nginx_url/v1/ping"
done
# An upstream that takes 20 ms per answer (a real model API takes far longer): what the proxy
# costs when the CPU is not all spent on the proxy, the load generator and a zero-work upstream.
run slowdirect 64 "$direct/ping?delay=20"
run slowproxy 64 "$url/v1/ping?delay=20" "x-api-key: $key"
echo
echo "== summary (wrk ${secs}s per run)"
awk -v d="$direct_64_rps" -v p="$proxy_64_rps" -v n="$nginx_64_rps" -v pc="$proxy_64_cpu" -v nc="$nginx_64_cpu" \
    -v d50="$direct_1_p50" -v p50="$proxy_1_p50" -v n50="$nginx_1_p50" 'BEGIN {
    printf "| measure | direct | kimi-vault proxy | nginx (anchor) | proxy / nginx |\n|---|---|---|---|---|\n"
    printf "| throughput, 64 connections | %.0f req/s | %.0f req/s (%.0f %% of direct) | %.0f req/s (%.0f %% of direct) | %.2f× |\n", d, p, 100*p/d, n, 100*n/d, p/n
    printf "| CPU per proxied request | | %.1f µs | %.1f µs | %.2f× |\n", pc, nc, pc/nc
    printf "| added p50 latency, 1 connection | %.0f µs | +%.0f µs | +%.0f µs | |\n", d50, p50-d50, n50-d50
}'
for c in 1 64; do
    awk -v c="$c" -v d50="$(eval echo \$direct_${c}_p50)" -v p50="$(eval echo \$proxy_${c}_p50)" \
        -v d99="$(eval echo \$direct_${c}_p99)" -v p99="$(eval echo \$proxy_${c}_p99)" \
        -v drps="$(eval echo \$direct_${c}_rps)" -v prps="$(eval echo \$proxy_${c}_rps)" \
        'BEGIN { printf "c=%-3s added latency p50 %.0f us, p99 %.0f us; throughput %.0f req/s through the proxy vs %.0f direct (%.0f %%)\n", c, p50-d50, p99-d99, prps, drps, 100*prps/drps }'
done
awk -v d="$slowdirect_64_rps" -v p="$slowproxy_64_rps" -v d50="$slowdirect_64_p50" -v p50="$slowproxy_64_p50" \
    'BEGIN { printf "c=64 with a 20 ms upstream: %.0f req/s through the proxy vs %.0f direct (%.0f %%), added latency p50 %.0f us\n", p, d, 100*p/d, p50-d50 }'
echo "== the upstream client alone: reqwest vs hyper-util's legacy client (the proxy's), 64 at a time"
"$ex/bench_upstream_clients" "$direct/ping" 40000
echo "== 256 connections idle for 2 s, then streaming 20 events 100 ms apart at once"
"$ex/bench_client" streams "${url#http://}" "/v1/sse?n=20&gap=100" "$key" 256
echo "peak RSS of the proxy: $(rss VmHWM) kB"
echo "== SSE event latency, upstream send -> client arrival (200 streams of 5 events)"
echo -n "direct:        "; "$ex/bench_client" sse-latency "127.0.0.1:$up_port" "/coding/v1/sse?n=5&gap=20" x 200
echo -n "through proxy: "; "$ex/bench_client" sse-latency "${url#http://}" "/v1/sse?n=5&gap=20" "$key" 200
echo "load: $(uptime)"
