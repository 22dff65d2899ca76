#!/usr/bin/env bash
# Instructions the example gateway executes per proxied request, over loopback, counted by
# callgrind: the whole process (hyper server and client, axum, tokio, the six layers), user space
# only. Unlike CPU time, the count does not depend on what else the machine does.
#
#   scripts/gateway-icount.sh [N] [stream]     # N requests (default 300), non-streamed or streamed
#   GATEWAY=/tmp/gateway-old scripts/gateway-icount.sh   # another build of the gateway, to compare
#   PROXY=bare scripts/gateway-icount.sh       # the floor: examples/bare_proxy.rs, no gateway at all
#   PROXY=bare BARE_PROXY=/tmp/bare-old scripts/gateway-icount.sh   # another build of the floor
#   PORT=18190 UPSTREAM_PORT=18191 scripts/gateway-icount.sh   # other ports (two runs at once)
#   MOCK_CHUNKS=200 scripts/gateway-icount.sh 100 stream   # longer streams (default 20 content chunks):
#                                              # the difference of two lengths is the cost per chunk
#
# Starts examples/mock_upstream (port 18091 or UPSTREAM_PORT) and the gateway under valgrind
# (examples/proxy-bench.toml, port 18090 or PORT), sends 50 requests to warm up, zeroes the counters,
# sends N requests with curl over one kept-alive connection (~1 KB chat requests, as
# scripts/proxy-bench.sh sends), dumps the counters and prints instructions per request. The
# profile stays in /tmp/gateway-icount.<pid>.out.1 for `callgrind_annotate`. As in
# scripts/proxy-bench.sh, the proxy is pinned to one core (`taskset -c 0`, when there is taskset):
# on one core the gateway and the bare proxy run tokio's current_thread runtime.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

n=${1:-300}
stream=false
[ "${2:-}" = stream ] && stream=true
command -v valgrind >/dev/null || { echo "valgrind is needed: apt-get install -y valgrind" >&2; exit 1; }
PROXY=${PROXY:-gateway}
case "$PROXY" in gateway | bare) ;; *) echo "PROXY is gateway or bare" >&2; exit 2 ;; esac
cargo build --release --example gateway --example bare_proxy --example mock_upstream >&2
bin=target/release/examples
port=${PORT:-18090}
upstream_port=${UPSTREAM_PORT:-18091}
config=examples/proxy-bench.toml
if [ "$upstream_port" != 18091 ]; then
    config=$(mktemp --suffix=.toml)
    sed "s/127.0.0.1:18091/127.0.0.1:$upstream_port/" examples/proxy-bench.toml >"$config"
fi

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ "$config" = examples/proxy-bench.toml ] || rm -f "$config"
}
trap cleanup EXIT

"$bin/mock_upstream" "$upstream_port" 2>/dev/null &
PIDS+=($!)
if [ "$PROXY" = bare ]; then
    proxy=("${BARE_PROXY:-$bin/bare_proxy}" "127.0.0.1:$port" "http://127.0.0.1:$upstream_port")
else
    proxy=("${GATEWAY:-$bin/gateway}" --config "$config" --listen "127.0.0.1:$port")
fi
pin=()
command -v taskset >/dev/null 2>&1 && pin=(taskset -c 0)
RUST_LOG=warn "${pin[@]}" valgrind --tool=callgrind --callgrind-out-file=/tmp/gateway-icount.%p.out \
    "${proxy[@]}" >/dev/null 2>&1 &
gw=$!
PIDS+=("$gw")
for i in $(seq 1 200); do
    curl -s -o /dev/null "http://127.0.0.1:$port/api/v1" && break  # any answer: it listens
    [ "$i" -lt 200 ] || { echo "error: the gateway does not answer" >&2; exit 1; }
    sleep 0.2
done

content=$(printf 'x%.0s' $(seq 1 900))
body="{\"model\":\"bench/mock-model\",\"stream\":$stream,\"messages\":[{\"role\":\"user\",\"content\":\"$content\"}]}"
requests() {
    local cfg
    cfg=$(mktemp)
    for _ in $(seq 1 "$1"); do
        printf 'url = "http://127.0.0.1:%s/api/v1/chat/completions"\noutput = "/dev/null"\n' "$port" >>"$cfg"
    done
    curl -s -K "$cfg" -H 'content-type: application/json' -d "$body" -w '%{http_code}\n' | sort | uniq -c |
        awk '$2 != 200 { bad = 1 } END { exit bad }' || { echo "error: a request failed" >&2; exit 1; }
    rm -f "$cfg"
}
requests 50
callgrind_control -z "$gw" >/dev/null 2>&1
requests "$n"
callgrind_control -d "$gw" >/dev/null 2>&1
sleep 1
out=/tmp/gateway-icount.$gw.out.1
ir=$(sed -n 's/^summary: //p' "$out")
echo "$PROXY, $( [ "$stream" = true ] && echo "streamed ($(( ${MOCK_CHUNKS:-20} + 2 )) frames)" || echo non-streamed ): $((ir / n)) instructions per request ($n requests; profile: $out)"
