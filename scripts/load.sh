#!/usr/bin/env bash
# Load test: the gateway (all six layers) versus the same zero-latency simulated provider served over
# HTTP with no layers, measured in the same run, at fixed request rates.
#
#   scripts/load.sh [RATES...]        default rates: 250 1000 2000 (requests/s), 10 s each
#
# Needs `oha` (installed from crates.io on first use: `cargo install oha --locked`). Everything runs on
# 127.0.0.1. Prints p50/p99 for both servers, the added latency, and the gateway's peak RSS.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

RATES=("$@")
[ ${#RATES[@]} -gt 0 ] || RATES=(250 1000 2000)
DURATION=${DURATION:-10s}
GW=127.0.0.1:18080
BARE=127.0.0.1:18081

if ! command -v oha >/dev/null 2>&1; then
    echo "installing oha (a one-time cargo install)…" >&2
    cargo install oha --locked >&2
fi

cargo build --release --example gateway >&2
BIN=target/release/examples/gateway
RUST_LOG=warn "$BIN" --listen "$GW" --zero-latency >/dev/null &
GW_PID=$!
RUST_LOG=warn "$BIN" --bare --listen "$BARE" >/dev/null &
BARE_PID=$!
trap 'kill $GW_PID $BARE_PID 2>/dev/null || true' EXIT
for addr in "$GW" "$BARE"; do
    for _ in $(seq 1 50); do
        curl -sf -o /dev/null -X POST "http://$addr/api/v1/chat/completions" \
            -H 'content-type: application/json' \
            -d '{"model":"meta-llama/llama-3.3-70b-instruct","messages":[{"role":"user","content":"hi"}]}' && break
        sleep 0.1
    done
done

BODY='{"model":"meta-llama/llama-3.3-70b-instruct","max_tokens":64,"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Tell me about the history of the printing press in a few sentences, please. Keep it short and factual, and mention Gutenberg, movable type, and the spread across Europe in the fifteenth century."}]}'

percentile() { # $1 = oha JSON, $2 = key (p50, p99)
    python3 -c "import json,sys; d=json.load(open('$1')); print('%.3f' % (d['latencyPercentiles']['$2']*1000))"
}
success() {
    python3 -c "import json,sys; d=json.load(open('$1')); print('%.4f' % d['summary']['successRate'])"
}

printf '%-8s %-10s %10s %10s %10s\n' rate server p50_ms p99_ms success
for rate in "${RATES[@]}"; do
    for target in bare gateway; do
        addr=$BARE; [ "$target" = gateway ] && addr=$GW
        out=$(mktemp)
        oha --no-tui --output-format json -z "$DURATION" -q "$rate" -c 64 -m POST \
            -H 'content-type: application/json' -d "$BODY" \
            "http://$addr/api/v1/chat/completions" >"$out"
        printf '%-8s %-10s %10s %10s %10s\n' "$rate" "$target" "$(percentile "$out" p50)" "$(percentile "$out" p99)" "$(success "$out")"
        eval "${target}_p50_${rate}=$(percentile "$out" p50)"
        eval "${target}_p99_${rate}=$(percentile "$out" p99)"
        rm -f "$out"
    done
    python3 -c "print('%-8s overhead   p50 %+.3f ms   p99 %+.3f ms' % ('$rate', $(eval echo \$gateway_p50_$rate) - $(eval echo \$bare_p50_$rate), $(eval echo \$gateway_p99_$rate) - $(eval echo \$bare_p99_$rate)))"
done
echo "gateway peak RSS: $(awk '/VmHWM/ {printf "%.1f MB", $2/1024}' /proc/$GW_PID/status)"
echo "bare    peak RSS: $(awk '/VmHWM/ {printf "%.1f MB", $2/1024}' /proc/$BARE_PID/status)"
