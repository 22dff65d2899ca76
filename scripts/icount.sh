#!/usr/bin/env bash
# Instructions per request of the benches/icount.rs scenarios, counted by callgrind.
#
#   scripts/icount.sh [N] [SCENARIO...]
#
# For each scenario: Ir(N) and Ir(0) from `valgrind --tool=callgrind`, and (Ir(N) − Ir(0)) / N,
# so the setup cancels out. Instruction counts are repeatable for one binary whatever else the
# machine does. Default N = 2000; default scenarios: all of them, plus the added cost of the
# stack and of the metering over their bare baselines.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

n=${1:-2000}
shift || true
scenarios=("$@")
if [ ${#scenarios[@]} -eq 0 ]; then
    scenarios=(usage_sse/bare usage_sse/metered usage_sse/observe usage_json/bare usage_json/metered
        routing/bare routing/parse routing/demo stack/bare stack/routing stack/routing+fallback stack/all6
        stack/bare+headers stack/all6+headers)
fi

command -v valgrind >/dev/null || { echo "valgrind is needed: apt-get install -y valgrind" >&2; exit 1; }
bin=$(cargo bench --no-run --bench icount --all-features 2>&1 | sed -n 's/.*Executable.*(\(.*icount-[0-9a-f]*\)).*/\1/p' | tail -1)
[ -x "$bin" ] || { echo "could not build the icount bench" >&2; exit 1; }

ir() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1 |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}

declare -A per
printf '%-26s %14s\n' scenario "Ir/request"
for s in "${scenarios[@]}"; do
    a=$(ir "$s" 0)
    b=$(ir "$s" "$n")
    per[$s]=$(((b - a) / n))
    printf '%-26s %14d\n' "$s" "${per[$s]}"
done

added() {
    if [ -n "${per[$1]:-}" ] && [ -n "${per[$2]:-}" ]; then
        printf '%-26s %14d   (%s − %s)\n' "$3" $((per[$1] - per[$2])) "$1" "$2"
    fi
}
echo
added stack/all6 stack/bare "added by the six layers"
added stack/all6+headers stack/bare+headers "the same, provider headers"
added usage_json/metered usage_json/bare "usage_json added"
added usage_sse/metered usage_sse/bare "usage_sse added (1,002 events)"
added routing/parse routing/bare "routing/parse added"
