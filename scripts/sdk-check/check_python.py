"""Checks the official Python SDKs (openai, anthropic, openrouter) against a running gateway.

Usage: GATEWAY=http://127.0.0.1:18400 python check_python.py
Prints one `PASS name` or `FAIL name: reason` line per check; exits 1 if any failed.
"""

import json
import os
import sys
import traceback

import httpx

GATEWAY = os.environ.get("GATEWAY", "http://127.0.0.1:18400").rstrip("/")
DEMO_KEY = "sk-demo-small-budget"
MODEL = "openai/gpt-4o-mini"
CLAUDE = "anthropic/claude-sonnet-4.5"
UNKNOWN = "nobody/no-such-model"

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


def expect_raises(exc_type, fn, status=None, contains=None):
    try:
        fn()
    except exc_type as e:
        got = getattr(e, "status_code", None)
        if status is not None:
            expect(got == status, f"status {got}, expected {status}")
        text = str(e)
        expect(text and len(text) < 2000, f"unreadable message: {text[:200]!r}")
        if contains:
            expect(contains.lower() in text.lower(), f"message {text[:300]!r} lacks {contains!r}")
        return e
    raise AssertionError(f"expected {exc_type.__name__}, nothing raised")


# ---------------------------------------------------------------- openai
import openai  # noqa: E402

oa = openai.OpenAI(base_url=f"{GATEWAY}/api/v1", api_key="anything", max_retries=0)
oa_demo = openai.OpenAI(base_url=f"{GATEWAY}/api/v1", api_key=DEMO_KEY, max_retries=0)
HELLO = [{"role": "user", "content": "Hello"}]


@check("openai.chat.create")
def _():
    r = oa.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=16)
    expect(r.id.startswith("gen-"), f"id {r.id}")
    expect(isinstance(r.choices[0].message.content, str) and r.choices[0].message.content, "no content")
    expect(r.usage and r.usage.total_tokens > 0, "no usage")
    expect(getattr(r, "provider", None), "no provider attribute")
    expect(r.model == MODEL, f"model {r.model}")


@check("openai.chat.stream+include_usage")
def _():
    s = oa.chat.completions.create(
        model=MODEL, messages=HELLO, max_tokens=16, stream=True, stream_options={"include_usage": True}
    )
    text, usage, finish = "", None, None
    for c in s:
        if c.choices:
            text += c.choices[0].delta.content or ""
            finish = c.choices[0].finish_reason or finish
        if c.usage:
            usage = c.usage
    expect(text, "no text streamed")
    expect(finish, "no finish_reason")
    expect(usage and usage.completion_tokens > 0, f"no usage chunk: {usage}")


@check("openai.chat.tools")
def _():
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            },
        }
    ]
    r = oa.chat.completions.create(model=MODEL, messages=HELLO, tools=tools, tool_choice="auto", max_tokens=16)
    expect(r.choices, "no choices")
    # Second turn: an assistant tool call and its result.
    msgs = HELLO + [
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    r = oa.chat.completions.create(model=MODEL, messages=msgs, tools=tools, max_tokens=16)
    expect(r.choices[0].message.content is not None or r.choices[0].message.tool_calls, "empty answer")


@check("openai.chat.response_format")
def _():
    r = oa.chat.completions.create(
        model=MODEL, messages=HELLO, max_tokens=16, response_format={"type": "json_object"}
    )
    expect(r.choices, "no choices")
    r = oa.chat.completions.create(
        model=MODEL,
        messages=HELLO,
        max_tokens=16,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": {"type": "object", "properties": {"a": {"type": "string"}}}},
        },
    )
    expect(r.choices, "no choices")


@check("openai.chat.extra_body(provider,models)")
def _():
    r = oa.chat.completions.create(
        model="meta-llama/llama-3.3-70b-instruct",
        messages=HELLO,
        max_tokens=8,
        extra_body={
            "provider": {"order": ["groq", "together"], "allow_fallbacks": False, "data_collection": "allow"},
            "models": ["meta-llama/llama-3.3-70b-instruct", MODEL],
        },
    )
    expect(getattr(r, "provider", None) in ("Groq", "Together"), f"provider {getattr(r, 'provider', None)}")
    r = oa.chat.completions.create(
        model=CLAUDE,
        messages=HELLO,
        max_tokens=8,
        extra_body={"models": [CLAUDE, MODEL], "provider": {"max_price": {"prompt": "1", "completion": "2"}}},
    )
    expect(r.model == MODEL, f"fallback model not used: {r.model}")


@check("openai.models.list")
def _():
    ids = [m.id for m in oa.models.list()]
    expect(MODEL in ids, f"{MODEL} missing from {ids}")


@check("openai.err.unknown_model(400 BadRequestError, as OpenRouter)")
def _():
    expect_raises(
        openai.BadRequestError,
        lambda: oa.chat.completions.create(model=UNKNOWN, messages=HELLO),
        400,
        UNKNOWN,
    )


@check("openai.err.bad_field(400 BadRequestError)")
def _():
    expect_raises(
        openai.BadRequestError,
        lambda: oa.chat.completions.create(model=MODEL, messages=HELLO, extra_body={"max_tokens": "lots"}),
        400,
        "max_tokens",
    )


@check("openai.err.bad_json(400 BadRequestError)")
def _():
    expect_raises(
        openai.BadRequestError,
        lambda: oa.post(
            "/chat/completions",
            cast_to=httpx.Response,
            content=b'{"model": "openai/gpt-4o-mini", "messages": [',
            options={"headers": {"content-type": "application/json"}},
        ),
        400,
    )


@check("openai.err.budget(402 APIStatusError)")
def _():
    e = expect_raises(
        openai.APIStatusError,
        lambda: oa_demo.chat.completions.create(model=CLAUDE, messages=HELLO, max_tokens=60000),
        402,
    )
    expect("credit" in str(e).lower() or "budget" in str(e).lower() or "limit" in str(e).lower(), str(e))


# ---------------------------------------------------------------- anthropic
import anthropic  # noqa: E402

TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
}

for suffix in ("/api", ""):
    tag = f"anthropic[{suffix or '/'}]"
    an = anthropic.Anthropic(base_url=f"{GATEWAY}{suffix}", api_key="anything", max_retries=0)
    an_demo = anthropic.Anthropic(base_url=f"{GATEWAY}{suffix}", api_key=DEMO_KEY, max_retries=0)

    @check(f"{tag}.messages.create")
    def _():
        m = an.messages.create(model=MODEL, max_tokens=32, messages=[{"role": "user", "content": "Hello"}])
        expect(m.type == "message" and m.role == "assistant", f"{m.type} {m.role}")
        expect(m.content and m.content[0].type == "text" and m.content[0].text, f"content {m.content}")
        expect(m.stop_reason in ("end_turn", "max_tokens"), f"stop_reason {m.stop_reason}")
        expect(m.usage.input_tokens > 0 and m.usage.output_tokens > 0, f"usage {m.usage}")

    @check(f"{tag}.messages.create(claude alias)")
    def _():
        m = an.messages.create(
            model="claude-sonnet-4-5", max_tokens=32, messages=[{"role": "user", "content": "Hello"}]
        )
        expect(m.content and m.content[0].text, f"content {m.content}")

    @check(f"{tag}.messages.stream")
    def _():
        with an.messages.stream(
            model=MODEL, max_tokens=32, messages=[{"role": "user", "content": "Hello"}]
        ) as s:
            text = "".join(s.text_stream)
            final = s.get_final_message()
        expect(text, "no text")
        expect(final.content[0].text == text, "final message differs from streamed text")
        expect(final.usage.output_tokens > 0, f"usage {final.usage}")
        expect(final.stop_reason in ("end_turn", "max_tokens"), f"stop_reason {final.stop_reason}")

    @check(f"{tag}.messages.stream(anthropic-wire upstream)")
    def _():
        with an.messages.stream(
            model=CLAUDE, max_tokens=32, messages=[{"role": "user", "content": "Hello"}]
        ) as s:
            text = "".join(s.text_stream)
            final = s.get_final_message()
        expect(text and final.content, "no text")

    @check(f"{tag}.tools(tool_use->tool_result)")
    def _():
        m = an.messages.create(
            model=MODEL,
            max_tokens=32,
            tools=[TOOL],
            tool_choice={"type": "auto"},
            messages=[{"role": "user", "content": "Weather in Paris?"}],
        )
        expect(m.content, "no content")
        m = an.messages.create(
            model=MODEL,
            max_tokens=32,
            tools=[TOOL],
            messages=[
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "Let me check."},
                        {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_01",
                            "content": "sunny",
                            "cache_control": {"type": "ephemeral"},
                        }
                    ],
                },
            ],
        )
        expect(m.content and m.content[0].type == "text", f"content {m.content}")
        with an.messages.stream(
            model=MODEL, max_tokens=32, tools=[TOOL], messages=[{"role": "user", "content": "Weather?"}]
        ) as s:
            final = s.get_final_message()
        expect(final.content, "no streamed content")

    @check(f"{tag}.thinking")
    def _():
        m = an.messages.create(
            model=MODEL,
            max_tokens=2048,
            thinking={"type": "enabled", "budget_tokens": 1024},
            messages=[{"role": "user", "content": "Hello"}],
        )
        expect(any(b.type == "text" for b in m.content), f"content {m.content}")
        with an.messages.stream(
            model=CLAUDE,
            max_tokens=2048,
            thinking={"type": "enabled", "budget_tokens": 1024},
            messages=[
                {"role": "user", "content": "Hello"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "sig-from-elsewhere"},
                        {"type": "text", "text": "Hi"},
                    ],
                },
                {"role": "user", "content": "Again"},
            ],
        ) as s:
            final = s.get_final_message()
        expect(final.content, "no content")

    @check(f"{tag}.system_blocks+cache_control")
    def _():
        m = an.messages.create(
            model=MODEL,
            max_tokens=32,
            system=[
                {"type": "text", "text": "x-anthropic-billing-header: cc_version=1;"},
                {"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}},
            ],
            metadata={"user_id": json.dumps({"device_id": "d", "session_id": "s"})},
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "Hello", "cache_control": {"type": "ephemeral"}}],
                },
                {"role": "system", "content": "mid-conversation system"},
            ],
            extra_body={
                "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
                "output_config": {"effort": "high"},
                "temperature": 0.2,
            },
            extra_headers={"anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14"},
        )
        expect(m.content and m.content[0].text, f"content {m.content}")

    @check(f"{tag}.messages.count_tokens")
    def _():
        r = an.messages.count_tokens(
            model=MODEL,
            system="You are terse.",
            tools=[TOOL],
            messages=[{"role": "user", "content": "Hello there"}],
        )
        expect(r.input_tokens > 0, f"input_tokens {r.input_tokens}")

    @check(f"{tag}.models.list")
    def _():
        ids = [m.id for m in an.models.list()]
        expect(MODEL in ids, f"{MODEL} missing from {ids}")

    @check(f"{tag}.err.unknown_model(404 NotFoundError)")
    def _():
        e = expect_raises(
            anthropic.NotFoundError,
            lambda: an.messages.create(model=UNKNOWN, max_tokens=8, messages=[{"role": "user", "content": "x"}]),
            404,
            UNKNOWN,
        )
        expect(isinstance(e.body, dict) and e.body.get("type") == "error", f"body {e.body}")

    @check(f"{tag}.err.unknown_model.stream(404 NotFoundError)")
    def _():
        def go():
            with an.messages.stream(model=UNKNOWN, max_tokens=8, messages=[{"role": "user", "content": "x"}]) as s:
                s.get_final_message()

        expect_raises(anthropic.NotFoundError, go, 404, UNKNOWN)

    @check(f"{tag}.err.bad_field(400 BadRequestError)")
    def _():
        expect_raises(
            anthropic.BadRequestError,
            lambda: an.messages.create(
                model=MODEL, max_tokens=8, messages=[{"role": "user", "content": "x"}], extra_body={"max_tokens": "lots"}
            ),
            400,
            "max_tokens",
        )

    @check(f"{tag}.err.bad_json(400 BadRequestError)")
    def _():
        expect_raises(
            anthropic.BadRequestError,
            lambda: an.post(
                "/v1/messages",
                cast_to=httpx.Response,
                content=b'{"model": ',
                options={"headers": {"content-type": "application/json"}},
            ),
            400,
        )

    @check(f"{tag}.err.budget(402 APIStatusError)")
    def _():
        e = expect_raises(
            anthropic.APIStatusError,
            lambda: an_demo.messages.create(
                model=CLAUDE, max_tokens=20000, messages=[{"role": "user", "content": "x"}]
            ),
            402,
        )
        expect(isinstance(e.body, dict) and e.body.get("type") == "error", f"body {e.body}")


# ---------------------------------------------------------------- openrouter
try:
    from openrouter import OpenRouter, errors as orerrors
except ImportError as e:  # pragma: no cover
    print(f"FAIL openrouter.import: {e}")
    OpenRouter = None

if OpenRouter is not None:
    orc = OpenRouter(api_key="anything", server_url=f"{GATEWAY}/api/v1", retry_config=None)
    orc_demo = OpenRouter(api_key=DEMO_KEY, server_url=f"{GATEWAY}/api/v1")

    @check("openrouter.chat.send")
    def _():
        r = orc.chat.send(
            model=MODEL,
            messages=[{"role": "user", "content": "Hello"}],
            max_tokens=16,
            stream=False,
            provider={"sort": "price", "max_price": {"prompt": "1", "completion": "2"}, "data_collection": "allow"},
            models=[MODEL, "deepseek/deepseek-chat"],
        )
        expect(r.choices[0].message.content, f"content {r.choices}")
        expect(r.usage and r.usage.total_tokens > 0, f"usage {r.usage}")

    @check("openrouter.chat.send(stream)")
    def _():
        text, usage = "", None
        with orc.chat.send(
            model=MODEL,
            messages=[{"role": "user", "content": "Hello"}],
            max_tokens=16,
            stream=True,
            stream_options={"include_usage": True},
        ) as s:
            for c in s:
                if getattr(c, "error", None):
                    raise AssertionError(f"error chunk {c.error}")
                if c.choices:
                    text += c.choices[0].delta.content or ""
                if c.usage:
                    usage = c.usage
        expect(text, "no text")
        expect(usage, "no usage")

    @check("openrouter.models.list")
    def _():
        r = orc.models.list()
        ids = [m.id for m in r.result.data]
        expect(MODEL in ids, f"{MODEL} missing from {ids}")

    @check("openrouter.err.unknown_model(400 BadRequestResponseError, as OpenRouter)")
    def _():
        expect_raises(
            orerrors.BadRequestResponseError,
            lambda: orc.chat.send(model=UNKNOWN, messages=[{"role": "user", "content": "x"}], stream=False),
            None,
            UNKNOWN,
        )

    @check("openrouter.err.budget(402 PaymentRequiredResponseError)")
    def _():
        expect_raises(
            orerrors.PaymentRequiredResponseError,
            lambda: orc_demo.chat.send(
                model=CLAUDE, messages=[{"role": "user", "content": "x"}], max_tokens=60000, stream=False
            ),
        )

    @check("openrouter.err.bad_field(400 BadRequestResponseError)")
    def _():
        expect_raises(
            orerrors.BadRequestResponseError,
            lambda: orc.chat.send(
                model=MODEL, messages=[{"role": "user", "content": "x"}], stream=False, temperature=-5.0,
                max_tokens=-3,
            ),
        )


failed = [n for n, d in results if d]
print(f"python: {len(results) - len(failed)} passed, {len(failed)} failed")
sys.exit(1 if failed else 0)
