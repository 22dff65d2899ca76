#!/usr/bin/env bash
# Proxy-mode benchmark: the example gateway in front of a mock upstream, over loopback, against the
# same mock called directly in the same run.
#
#   scripts/proxy-bench.sh                         # 10 s per scenario, two 30 s memory runs (~2.5 min)
#   DURATION=3 RSS_DURATION=5 scripts/proxy-bench.sh   # a quick look
#   RATES=1000,5000 CONNECTIONS=50 scripts/proxy-bench.sh
#   PROXY=bare scripts/proxy-bench.sh              # the floor: examples/bare_proxy.rs, not the gateway
#   GATEWAY=/tmp/gateway-old scripts/proxy-bench.sh   # another build of the gateway, to compare
#   PROXY=bare BARE_PROXY=/tmp/bare-old scripts/proxy-bench.sh   # another build of the floor
#   MOCK_CHUNKS=200 scripts/proxy-bench.sh        # streams of 200 content chunks (default 20)
#
# Builds the gateway, examples/mock_upstream.rs and examples/proxy_load/ in release mode, starts the
# mock (port 18091) and the gateway (examples/proxy-bench.toml, port 18090), runs every scenario and
# prints a markdown table; the processes it started are stopped on exit. With two or more cores the
# gateway is pinned to core 0 and the mock and the load generator to core 1 (`taskset`, util-linux).
# Linux only: CPU time and memory are read from /proc. With PROXY=bare, the minimal hyper proxy of
# examples/bare_proxy.rs takes the gateway's place (same port, same core, same client): what it adds
# is what the network path costs on the machine, the floor under any gateway's figures.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

DURATION=${DURATION:-10}
RSS_DURATION=${RSS_DURATION:-30}
RSS_RUNS=${RSS_RUNS:-2}
RATES=${RATES:-1000}
CONNECTIONS=${CONNECTIONS:-50}
GW=127.0.0.1:18090
MOCK=127.0.0.1:18091

PROXY=${PROXY:-gateway}
case "$PROXY" in gateway | bare) ;; *) echo "PROXY is gateway or bare" >&2; exit 2 ;; esac
cargo build --release --example gateway --example bare_proxy \
    --example mock_upstream --example proxy_load >&2
BIN=target/release/examples

GW_CORE=() REST_CORE=()
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
    GW_CORE=(taskset -c 0) REST_CORE=(taskset -c 1)
else
    echo "warning: no taskset or fewer than 2 cores: processes are not pinned" >&2
fi

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

"${REST_CORE[@]}" "$BIN/mock_upstream" "${MOCK##*:}" 2>/dev/null &
PIDS+=($!)
if [ "$PROXY" = bare ]; then
    "${GW_CORE[@]}" "${BARE_PROXY:-$BIN/bare_proxy}" "$GW" "http://$MOCK" >/dev/null &
else
    RUST_LOG=warn "${GW_CORE[@]}" "${GATEWAY:-$BIN/gateway}" --config examples/proxy-bench.toml --listen "$GW" >/dev/null &
fi
GW_PID=$!
PIDS+=("$GW_PID")

# Wait until both answer (the gateway through the mock).
for url in "http://$MOCK/v1/chat/completions" "http://$GW/api/v1/chat/completions"; do
    for i in $(seq 1 100); do
        curl -sf -o /dev/null -X POST "$url" -H 'content-type: application/json' \
            -d '{"model":"bench/mock-model","messages":[{"role":"user","content":"hi"}]}' && break
        [ "$i" -lt 100 ] || { echo "error: $url does not answer" >&2; exit 1; }
        sleep 0.1
    done
done

# Both must stream: 20 content chunks (or MOCK_CHUNKS), the usage chunk and [DONE].
for url in "http://$MOCK/v1/chat/completions" "http://$GW/api/v1/chat/completions"; do
    frames=$(curl -sN -X POST "$url" -H 'content-type: application/json' \
        -d '{"model":"bench/mock-model","stream":true,"messages":[{"role":"user","content":"hi"}]}' |
        grep -c '^data: ' || true)
    want=$(( ${MOCK_CHUNKS:-20} + 2 ))
    [ "$frames" -ge "$want" ] || { echo "error: $url streamed $frames data lines, not $want" >&2; exit 1; }
done

echo "proxy: $PROXY" >&2
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" >&2
"${REST_CORE[@]}" "$BIN/proxy_load" \
    --gateway "http://$GW/api/v1/chat/completions" \
    --upstream "http://$MOCK/v1/chat/completions" \
    --name "$([ "$PROXY" = bare ] && echo "bare proxy" || echo gateway)" --gateway-pid "$GW_PID" \
    --duration "$DURATION" --rss-duration "$RSS_DURATION" --rss-runs "$RSS_RUNS" \
    --rates "$RATES" --connections "$CONNECTIONS"
