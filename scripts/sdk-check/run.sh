#!/usr/bin/env bash
# Checks that the official SDKs and Claude Code work unchanged against the example gateway.
#
#   scripts/sdk-check/run.sh            # install the clients into a temp dir, run every check
#   SDK_DIR=/tmp/sdk scripts/sdk-check/run.sh   # reuse (or create) installs in SDK_DIR
#   GATEWAY_BIN=path/to/gateway scripts/sdk-check/run.sh   # a prebuilt gateway, no cargo build
#
# Needs python3 (venv), node/npm, cargo, and the PyPI and npm registries for the installs. Starts
# `cargo run --release --example gateway -- --zero-latency` on a free loopback port, runs
# check_python.py (openai, anthropic, openrouter), check_node.mjs (openai, @anthropic-ai/sdk,
# @openrouter/sdk), check_responses.{py,mjs} (the openai SDKs' Responses API), Claude Code in print mode and
# Codex CLI (`codex exec`; a second gateway with --sim-tools for a task that runs a tool), prints one PASS/FAIL line per check and a
# summary, stops the gateway, and exits non-zero if anything failed. Not part of .ci/run (it
# installs packages and takes minutes).
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
SDK_DIR="${SDK_DIR:-$(mktemp -d /tmp/sdk-check.XXXXXX)}"
PORT="${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"
GATEWAY="http://127.0.0.1:$PORT"
export GATEWAY

echo "== installing clients into $SDK_DIR"
if [ ! -x "$SDK_DIR/venv/bin/python" ]; then
    python3 -m venv "$SDK_DIR/venv"
    "$SDK_DIR/venv/bin/pip" install -q openai anthropic openrouter || exit 2
fi
if [ ! -d "$SDK_DIR/node/node_modules/@anthropic-ai/claude-code" ]; then
    mkdir -p "$SDK_DIR/node"
    (cd "$SDK_DIR/node" && npm init -y >/dev/null &&
        npm install --silent openai @anthropic-ai/sdk @openrouter/sdk @anthropic-ai/claude-code) || exit 2
fi
if [ ! -d "$SDK_DIR/node/node_modules/@openai/codex" ]; then
    (cd "$SDK_DIR/node" && npm install --silent @openai/codex) || exit 2
fi
"$SDK_DIR/venv/bin/pip" list 2>/dev/null | grep -iE '^(openai|anthropic|openrouter) '
(cd "$SDK_DIR/node" && npm ls --depth=0 2>/dev/null | tail -n +2)

echo "== building and starting the gateway on $GATEWAY"
bin="${GATEWAY_BIN:-}"
if [ -z "$bin" ]; then
    (cd "$repo" && cargo build --release --example gateway -q) || exit 2
    bin="${CARGO_TARGET_DIR:-$repo/target}/release/examples/gateway"
fi
"$bin" --listen "127.0.0.1:$PORT" --zero-latency >"$SDK_DIR/gateway.log" 2>&1 &
gw_pid=$!
trap 'kill "$gw_pid" 2>/dev/null' EXIT
for _ in $(seq 50); do
    curl -sf "$GATEWAY/" >/dev/null && break
    sleep 0.1
done

out="$SDK_DIR/results.txt"
: >"$out"

echo "== python SDKs"
"$SDK_DIR/venv/bin/python" -W ignore "$here/check_python.py" | tee -a "$out"

echo "== python openai Responses API"
"$SDK_DIR/venv/bin/python" -W ignore "$here/check_responses.py" | tee -a "$out"

echo "== node SDKs"
ln -sfn "$SDK_DIR/node/node_modules" "$SDK_DIR/node_modules"
cp "$here/check_node.mjs" "$SDK_DIR/check_node.mjs"
node "$SDK_DIR/check_node.mjs" | tee -a "$out"
cp "$here/check_responses.mjs" "$SDK_DIR/check_responses.mjs"
node "$SDK_DIR/check_responses.mjs" | tee -a "$out"

echo "== Claude Code"
claude="$SDK_DIR/node/node_modules/.bin/claude"
cc_home="$SDK_DIR/claude-home"
mkdir -p "$cc_home"
# cc NAME BASE MODEL EXPECT OUTPUT_FORMAT [ENV=VALUE...]: EXPECT is `ok` or an API status.
cc() {
    local name=$1 base=$2 model=$3 expect=$4 format=$5
    shift 5
    local args=(-p "say hello" --output-format "$format")
    [ "$format" = stream-json ] && args+=(--verbose)
    local res
    res=$(cd "$cc_home" && env HOME="$cc_home" ANTHROPIC_BASE_URL="$base" ANTHROPIC_AUTH_TOKEN=anything \
        ANTHROPIC_API_KEY= ANTHROPIC_MODEL="$model" CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 \
        DISABLE_TELEMETRY=1 DISABLE_AUTOUPDATER=1 DISABLE_ERROR_REPORTING=1 "$@" \
        timeout 120 "$claude" "${args[@]}" 2>&1)
    local verdict
    verdict=$(printf '%s\n' "$res" | python3 "$here/cc_verdict.py" "$expect")
    if [ "$verdict" = ok ]; then
        echo "PASS claude-code.$name" | tee -a "$out"
    else
        echo "FAIL claude-code.$name: $verdict" | tee -a "$out"
    fi
}
cc "json" "$GATEWAY" deepseek/deepseek-chat ok json
cc "stream-json" "$GATEWAY" deepseek/deepseek-chat ok stream-json
cc "json(/api base)" "$GATEWAY/api" openai/gpt-4o-mini ok json
cc "stream-json(/api base)" "$GATEWAY/api" openai/gpt-4o-mini ok stream-json
cc "json(small-fast+haiku models)" "$GATEWAY" qwen/qwen3-coder ok json \
    ANTHROPIC_SMALL_FAST_MODEL=openai/gpt-4o-mini ANTHROPIC_DEFAULT_HAIKU_MODEL=openai/gpt-4o-mini
cc "json(anthropic-wire provider)" "$GATEWAY" anthropic/claude-sonnet-4.5 ok json
cc "json(no ANTHROPIC_MODEL: Claude's default id)" "$GATEWAY" "" ok json
cc "json(x-api-key)" "$GATEWAY" deepseek/deepseek-chat ok json ANTHROPIC_AUTH_TOKEN= ANTHROPIC_API_KEY=sk-anything
cc "err.unknown_model(404)" "$GATEWAY" nobody/no-such-model 404 json
cc "err.budget(402, demo key)" "$GATEWAY" anthropic/claude-sonnet-4.5 402 json ANTHROPIC_AUTH_TOKEN=sk-demo-small-budget

echo "== Codex CLI (Responses API, wire_api = responses)"
codex="$SDK_DIR/node/node_modules/.bin/codex"
codex_home="$SDK_DIR/codex-home"
mkdir -p "$codex_home" "$SDK_DIR/codex-work"
# codex_config MODEL GATEWAY_URL: points Codex at the gateway's Responses API.
codex_config() {
    cat >"$codex_home/config.toml" <<TOML
model = "$1"
model_provider = "gateway"

[model_providers.gateway]
name = "tower-ai-gateway"
base_url = "$2/api/v1"
env_key = "GATEWAY_KEY"
wire_api = "responses"
TOML
}
# cx NAME MODEL [exec args...]: PASS when `codex exec` exits 0 having printed an answer.
cx() {
    local name=$1 model=$2
    shift 2
    codex_config "$model" "$GATEWAY"
    local res rc
    res=$(cd "$SDK_DIR/codex-work" && CODEX_HOME="$codex_home" GATEWAY_KEY=anything \
        timeout 120 "$codex" exec --skip-git-repo-check "$@" "say hello" </dev/null 2>&1)
    rc=$?
    if [ $rc -eq 0 ] && printf '%s\n' "$res" | grep -qE '^tokens used|"type":"turn.completed"'; then
        echo "PASS codex.$name" | tee -a "$out"
    else
        echo "FAIL codex.$name: rc=$rc $(printf '%s' "$res" | tail -3 | tr '\n' ' ' | cut -c1-300)" | tee -a "$out"
    fi
}
cx "exec(deepseek)" deepseek/deepseek-chat
cx "exec(anthropic-wire provider)" anthropic/claude-sonnet-4.5
cx "exec(json events)" openai/gpt-4o-mini --json

echo "== Codex CLI running a tool (a second gateway, with --sim-tools)"
# The simulated providers of this gateway answer requests that offer tools with a call to the
# first one (Codex's `exec_command`, arguments {"cmd":"echo hello"}); after the tool's output
# they answer with text and the task ends.
TOOLS_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
TOOLS_GATEWAY="http://127.0.0.1:$TOOLS_PORT"
"$bin" --listen "127.0.0.1:$TOOLS_PORT" --zero-latency --sim-tools >"$SDK_DIR/gateway-tools.log" 2>&1 &
tools_pid=$!
trap 'kill "$gw_pid" "$tools_pid" 2>/dev/null' EXIT
for _ in $(seq 50); do
    curl -sf "$TOOLS_GATEWAY/" >/dev/null && break
    sleep 0.1
done
# cx_tool NAME MODEL: PASS when the task completes and its --json events show the command ran.
cx_tool() {
    local name=$1 model=$2
    codex_config "$model" "$TOOLS_GATEWAY"
    local res rc
    res=$(cd "$SDK_DIR/codex-work" && CODEX_HOME="$codex_home" GATEWAY_KEY=anything \
        timeout 120 "$codex" exec --skip-git-repo-check --json --dangerously-bypass-approvals-and-sandbox \
        'run `echo hello` and tell me what it printed' </dev/null 2>&1)
    rc=$?
    printf '%s\n' "$res" >"$SDK_DIR/codex-tool-${model//\//_}.log"
    if [ $rc -eq 0 ] && printf '%s\n' "$res" | grep -q '"type":"turn.completed"' &&
        printf '%s\n' "$res" | grep '"type":"item.completed"' | grep '"type":"command_execution"' |
        grep -q '"aggregated_output":"hello\\n"'; then
        echo "PASS codex.$name" | tee -a "$out"
    else
        echo "FAIL codex.$name: rc=$rc $(printf '%s' "$res" | tail -3 | tr '\n' ' ' | cut -c1-300)" | tee -a "$out"
    fi
}
cx_tool "exec+tool(deepseek)" deepseek/deepseek-chat
cx_tool "exec+tool(qwen3-coder)" qwen/qwen3-coder

pass=$(grep -c '^PASS' "$out")
fail=$(grep -c '^FAIL' "$out")
echo "== summary"
grep '^FAIL' "$out"
echo "sdk-check: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
