"""Checks the openai Python SDK's Responses API calls against a running gateway.

Usage: GATEWAY=http://127.0.0.1:18400 python check_responses.py
Prints one `PASS name` or `FAIL name: reason` line per check; exits 1 if any failed.
Non-OpenAI models on purpose: the gateway translates Responses to chat completions (and, for
anthropic/claude-sonnet-4.5, on to the Anthropic Messages wire).
"""

import os
import sys
import traceback

import openai

GATEWAY = os.environ.get("GATEWAY", "http://127.0.0.1:18400").rstrip("/")
MODEL = "deepseek/deepseek-chat"
CLAUDE = "anthropic/claude-sonnet-4.5"
TOOLS = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]
TOOL_TURN = [
    {"role": "user", "content": "Weather in Paris?"},
    {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
    {"type": "function_call_output", "call_id": "call_1", "output": "18C, sunny"},
]

oa = openai.OpenAI(base_url=f"{GATEWAY}/api/v1", api_key="anything", max_retries=0)
results = []


def check(name):
    def wrap(fn):
        try:
            fn()
            results.append((name, None))
            print(f"PASS {name}", flush=True)
        except Exception as e:  # noqa: BLE001 - every failure is a FAIL line
            detail = f"{type(e).__name__}: {e}".replace("\n", " ")[:400]
            results.append((name, detail))
            print(f"FAIL {name}: {detail}", flush=True)
            if os.environ.get("VERBOSE"):
                traceback.print_exc()
        return fn

    return wrap


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


@check("openai.responses.create")
def _():
    r = oa.responses.create(model=MODEL, instructions="Be brief.", input="Hello")
    expect(r.id.startswith("gen-"), f"id {r.id}")
    expect(r.status == "completed", f"status {r.status}")
    expect(r.output_text, "no output_text")
    expect(r.usage and r.usage.input_tokens > 0 and r.usage.output_tokens > 0, f"usage {r.usage}")
    expect(r.model == MODEL, f"model {r.model}")


@check("openai.responses.create(max_output_tokens: incomplete)")
def _():
    r = oa.responses.create(model=MODEL, input="Hello", max_output_tokens=1)
    expect(r.status == "incomplete", f"status {r.status}")
    expect(r.incomplete_details.reason == "max_output_tokens", f"details {r.incomplete_details}")
    expect(r.usage.output_tokens <= 1, f"usage {r.usage}")


@check("openai.responses.create(stream)")
def _():
    s = oa.responses.create(model=MODEL, input="Hello", stream=True)
    kinds, text, final = [], "", None
    for ev in s:
        kinds.append(ev.type)
        if ev.type == "response.output_text.delta":
            text += ev.delta
        if ev.type == "response.completed":
            final = ev.response
    expect(kinds[:2] == ["response.created", "response.in_progress"], f"starts {kinds[:3]}")
    expect(kinds[-1] == "response.completed", f"ends {kinds[-1]}")
    expect(text and final.output_text == text, "deltas disagree with the final text")
    expect(final.usage.output_tokens > 0, f"usage {final.usage}")


@check("openai.responses.stream(helper, final response)")
def _():
    with oa.responses.stream(model=MODEL, input="Hello") as s:
        for _ev in s:
            pass
        r = s.get_final_response()
    expect(r.output_text, "no output_text")
    expect(r.usage.total_tokens > 0, f"usage {r.usage}")


@check("openai.responses.tools(function_call round trip)")
def _():
    r = oa.responses.create(model=MODEL, input=TOOL_TURN, tools=TOOLS, tool_choice="auto")
    expect(r.status == "completed" and r.output, f"{r.status} {r.output}")
    expect(r.tools and r.tools[0].name == "get_weather", f"tools echoed {r.tools}")


@check("openai.responses.tools(stream, anthropic-wire provider)")
def _():
    s = oa.responses.create(model=CLAUDE, input=TOOL_TURN, tools=TOOLS, stream=True)
    final = None
    for ev in s:
        if ev.type == "response.completed":
            final = ev.response
    expect(final and final.output_text, "no completed response with text")


@check("openai.responses.err.previous_response_id(400)")
def _():
    try:
        oa.responses.create(model=MODEL, input="Hi", previous_response_id="resp_1")
    except openai.BadRequestError as e:
        expect("previous_response_id" in str(e), f"message {e}")
        return
    raise AssertionError("no BadRequestError")


@check("openai.responses.err.unknown_model(400)")
def _():
    try:
        oa.responses.create(model="nobody/no-such-model", input="Hi")
    except openai.BadRequestError as e:
        expect("nobody/no-such-model" in str(e), f"message {e}")
        return
    raise AssertionError("no BadRequestError")


failed = [n for n, d in results if d]
print(f"python responses: {len(results) - len(failed)} passed, {len(failed)} failed")
sys.exit(1 if failed else 0)
