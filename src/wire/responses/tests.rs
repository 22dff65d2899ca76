use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::error::ErrorType;

fn chat(req: Value) -> Value {
    responses_to_chat(&req).unwrap()
}

#[test]
fn string_input_and_options() {
    let c = chat(json!({
        "model": "acme/chat-1", "instructions": "Be brief.", "input": "hi",
        "max_output_tokens": 50, "temperature": 0.2, "reasoning": {"effort": "high", "summary": "auto"},
        "text": {"format": {"type": "json_schema", "name": "out", "strict": true,
                            "schema": {"type": "object"}}, "verbosity": "low"},
        "provider": {"only": ["acme"]}, "stream": true, "store": true, "metadata": {"a": "b"},
    }));
    assert_eq!(
        c,
        json!({
            "model": "acme/chat-1",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
            "max_tokens": 50, "temperature": 0.2, "reasoning": {"effort": "high"},
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": "out", "strict": true, "schema": {"type": "object"}}},
            "verbosity": "low", "provider": {"only": ["acme"]},
            "stream": true, "stream_options": {"include_usage": true},
        })
    );
}

#[test]
fn items_become_messages_with_tool_round_trip() {
    let c = chat(json!({"model": "m", "input": [
        {"role": "developer", "content": "rules"},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "look"},
            {"type": "input_image", "image_url": "https://x/y.png"}]},
        {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "think"}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{\"a\":1}"},
        {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "one"},
        {"type": "function_call_output", "call_id": "c2",
         "output": [{"type": "input_text", "text": "two"}]},
        {"type": "message", "role": "assistant",
         "content": [{"type": "output_text", "text": "done", "annotations": []}]},
    ],
    "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": false},
              {"type": "web_search"}],
    "tool_choice": {"type": "function", "name": "f"}}));
    assert_eq!(
        c["messages"],
        json!([
            {"role": "developer", "content": "rules"},
            {"role": "user", "content": [{"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "auto"}}]},
            {"role": "assistant", "content": null, "reasoning": "think", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}},
                {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "one"},
            {"role": "tool", "tool_call_id": "c2", "content": "two"},
            {"role": "assistant", "content": "done"},
        ])
    );
    assert_eq!(
        c["tools"],
        json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}, "strict": false}}])
    );
    assert_eq!(
        c["tool_choice"],
        json!({"type": "function", "function": {"name": "f"}})
    );
}

#[test]
fn stateless_and_bad_input_are_400s() {
    let cases = [
        (
            json!({"model": "m", "input": "hi", "previous_response_id": "resp_1"}),
            "previous_response_id",
        ),
        (
            json!({"model": "m", "input": "hi", "conversation": "conv_1"}),
            "conversation",
        ),
        (json!({"model": "m"}), "input"),
        (json!({"model": "m", "input": 3}), "input"),
        (
            json!({"model": "m", "input": [{"type": "item_reference", "id": "x"}]}),
            "input[0].type",
        ),
        (
            json!({"model": "m", "input": [{"type": "computer_call"}]}),
            "input[0].type",
        ),
        (
            json!({"model": "m", "input": [{"role": "robot", "content": "x"}]}),
            "input[0].role",
        ),
        (
            json!({"model": "m", "input": [{"type": "function_call", "name": "f"}]}),
            "input[0].call_id",
        ),
        (
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]}),
            "input[0].content[0].image_url",
        ),
        (
            json!({"model": "m", "input": "hi", "tool_choice": "sometimes"}),
            "tool_choice",
        ),
        (
            json!({"model": "m", "input": "hi", "text": {"format": {"type": "yaml"}}}),
            "text.format.type",
        ),
        (
            json!({"model": "m", "input": "hi", "instructions": 1}),
            "instructions",
        ),
        (json!([1]), ""),
    ];
    for (req, field) in cases {
        let e = responses_to_chat(&req).unwrap_err();
        assert_eq!(e.error_type(), ErrorType::InvalidRequest, "{req}");
        assert_eq!(e.status(), 400);
        if !field.is_empty() {
            assert_eq!(e.metadata()["field"], field, "{req}");
        }
    }
    let e = responses_to_chat(&json!({"input": "hi", "previous_response_id": "r"})).unwrap_err();
    assert!(
        e.message().contains("stores no responses"),
        "{}",
        e.message()
    );
}

fn completion() -> Value {
    json!({"id": "gen-9", "created": 7, "model": "acme/chat-1", "provider": "acme",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant",
            "content": "Let me check.", "reasoning": "Need weather.",
            "tool_calls": [{"id": "call_1", "type": "function",
                            "function": {"name": "w", "arguments": "{\"c\":\"P\"}"}}]}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                  "prompt_tokens_details": {"cached_tokens": 2},
                  "completion_tokens_details": {"reasoning_tokens": 3}, "cost": 0.5}})
}

#[test]
fn completion_becomes_response() {
    let echo =
        echo_fields(&json!({"instructions": "x", "tools": [{"type": "function", "name": "w"}]}));
    let r = chat_to_response(&completion(), &echo);
    assert_eq!(r["id"], "gen-9");
    assert_eq!(r["object"], "response");
    assert_eq!(r["created_at"], 7);
    assert_eq!(r["status"], "completed");
    assert_eq!(r["instructions"], "x");
    assert_eq!(r["store"], false);
    assert_eq!(r["tool_choice"], "auto");
    assert_eq!(r["provider"], "acme");
    assert_eq!(
        r["output"],
        json!([
            {"type": "reasoning", "id": "rs_gen-9", "summary": [{"type": "summary_text", "text": "Need weather."}]},
            {"type": "message", "id": "msg_gen-9", "status": "completed", "role": "assistant",
             "content": [{"type": "output_text", "text": "Let me check.", "annotations": [], "logprobs": []}]},
            {"type": "function_call", "id": "fc_gen-9_0", "call_id": "call_1", "name": "w",
             "arguments": "{\"c\":\"P\"}", "status": "completed"},
        ])
    );
    assert_eq!(
        r["usage"],
        json!({"input_tokens": 10, "input_tokens_details": {"cached_tokens": 2},
               "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 3},
               "total_tokens": 15, "cost": 0.5})
    );
    let mut cut = completion();
    cut["choices"][0]["finish_reason"] = json!("length");
    let r = chat_to_response(&cut, &echo);
    assert_eq!(r["status"], "incomplete");
    assert_eq!(r["incomplete_details"]["reason"], "max_output_tokens");
}

/// The SSE events of a translated body, checking each `event:` line names its data's `type` and
/// that the sequence numbers count from 0.
fn events(body: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(body).unwrap();
    let mut out: Vec<Value> = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let (name, data) = block.split_once('\n').unwrap();
        let v: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(name.strip_prefix("event: ").unwrap(), v["type"]);
        assert_eq!(v["sequence_number"], out.len());
        out.push(v);
    }
    out
}

/// A chat completion as SSE chunks: reasoning, text and tool-call arguments in small pieces, the
/// usage in a final chunk.
fn chunks_of(c: &Value, piece: usize) -> String {
    let head = |delta: Value, finish: Value| {
        json!({"id": c["id"], "created": c["created"], "model": c["model"], "provider": c["provider"],
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let m = &c["choices"][0]["message"];
    let split = |s: &str| -> Vec<String> {
        let chars: Vec<char> = s.chars().collect();
        chars
            .chunks(piece.max(1))
            .map(|w| w.iter().collect())
            .collect()
    };
    let mut out = vec![head(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    for (key, target) in [("reasoning", "reasoning"), ("content", "content")] {
        for p in split(m[key].as_str().unwrap_or("")) {
            out.push(head(json!({target: p}), Value::Null));
        }
    }
    for (i, call) in m["tool_calls"].as_array().into_iter().flatten().enumerate() {
        out.push(head(
            json!({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""}}]}),
            Value::Null,
        ));
        for p in split(call["function"]["arguments"].as_str().unwrap()) {
            out.push(head(
                json!({"tool_calls": [{"index": i, "function": {"arguments": p}}]}),
                Value::Null,
            ));
        }
    }
    out.push(head(json!({}), c["choices"][0]["finish_reason"].clone()));
    let mut usage = head(json!({}), Value::Null);
    usage["choices"] = json!([]);
    usage["usage"] = c["usage"].clone();
    out.push(usage);
    let mut s: String = out.iter().map(|v| format!("data: {v}\n\n")).collect();
    s.push_str("data: [DONE]\n\n");
    s
}

#[test]
fn stream_event_sequence() {
    let echo = echo_fields(&json!({}));
    let mut t = ResponsesSseTranslator::new("acme/chat-1", echo.clone());
    let mut out = t.feed(chunks_of(&completion(), 4).as_bytes()).to_vec();
    out.extend_from_slice(&t.finish());
    assert!(t.is_finished());
    let ev = events(&out);
    let names: Vec<&str> = ev.iter().map(|e| e["type"].as_str().unwrap()).collect();
    let mut dedup = names.clone();
    dedup.dedup();
    assert_eq!(
        dedup,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(ev[0]["response"]["status"], "in_progress");
    let last = ev.last().unwrap();
    assert_eq!(last["response"], chat_to_response(&completion(), &echo));
}

#[test]
fn stream_failures_end_with_failed() {
    let mut t = ResponsesSseTranslator::new("m", echo_fields(&json!({})));
    let mut out = t
        .feed(b"data: {\"id\":\"gen-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n")
        .to_vec();
    out.extend_from_slice(&t.feed(b"data: {\"error\":{\"code\":502,\"message\":\"boom\"}}\n\n"));
    out.extend_from_slice(&t.finish());
    let ev = events(&out);
    let n = ev.len();
    assert_eq!(ev[n - 2]["type"], "error");
    assert_eq!(ev[n - 2]["message"], "boom");
    assert_eq!(ev[n - 1]["type"], "response.failed");
    assert_eq!(ev[n - 1]["response"]["status"], "failed");
    assert_eq!(ev[n - 1]["response"]["error"]["message"], "boom");
    // A body that fails outright.
    let mut t = ResponsesSseTranslator::new("m", echo_fields(&json!({})));
    let ev = events(&t.fail("upstream stream failed: reset"));
    assert_eq!(
        ev.iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect::<Vec<_>>(),
        [
            "response.created",
            "response.in_progress",
            "error",
            "response.failed"
        ]
    );
    assert!(t.fail("again").is_empty());
}

fn arb_completion() -> impl Strategy<Value = Value> {
    let text = prop::option::of("[a-zA-Z .,!é{}\"\\\\]{1,40}");
    let reasoning = prop::option::of("[a-z ]{1,30}");
    let calls = prop::collection::vec(("[a-z_]{1,8}", "\\{\"[a-z]{1,4}\":[0-9]{1,3}\\}"), 0..3);
    let usage = (0u64..10_000, 0u64..5_000, 0u64..100, 0u64..100);
    (text, reasoning, calls, usage, prop::bool::ANY).prop_map(|(text, reasoning, calls, u, cut)| {
        let tool_calls: Vec<Value> = calls
            .iter()
            .enumerate()
            .map(|(i, (n, a))| {
                json!({
            "id": format!("call_{i}"), "type": "function", "function": {"name": n, "arguments": a}})
            })
            .collect();
        let finish = if !tool_calls.is_empty() {
            "tool_calls"
        } else if cut {
            "length"
        } else {
            "stop"
        };
        let mut message = json!({"role": "assistant", "content": text});
        if let Some(r) = reasoning {
            message["reasoning"] = json!(r);
        }
        if !tool_calls.is_empty() {
            message["tool_calls"] = Value::Array(tool_calls);
        }
        json!({"id": "gen-p", "object": "chat.completion", "created": 3, "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": u.0, "completion_tokens": u.1, "total_tokens": u.0 + u.1,
                      "prompt_tokens_details": {"cached_tokens": u.2},
                      "completion_tokens_details": {"reasoning_tokens": u.3}, "cost": 1.25}})
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, rng_seed: prop::test_runner::RngSeed::Fixed(16), ..ProptestConfig::default() })]

    /// chat → responses → chat keeps the content, reasoning, tool calls, finish reason and usage.
    #[test]
    fn chat_responses_chat_keeps_meaning(c in arb_completion()) {
        let back = response_to_chat(&chat_to_response(&c, &echo_fields(&json!({}))));
        prop_assert_eq!(back, c);
    }

    /// The stream, cut at any byte, ends with the same response object as the JSON translation.
    #[test]
    fn stream_agrees_with_json(c in arb_completion(), piece in 1usize..6, cut in 1usize..64) {
        let echo = echo_fields(&json!({"tools": []}));
        let sse = chunks_of(&c, piece);
        let mut t = ResponsesSseTranslator::new("m", echo.clone());
        let mut out = Vec::new();
        for part in sse.as_bytes().chunks(cut) {
            out.extend_from_slice(&t.feed(part));
        }
        out.extend_from_slice(&t.finish());
        let ev = events(&out);
        let last = ev.last().unwrap();
        prop_assert_eq!(&last["response"], &chat_to_response(&c, &echo));
        let done = if c["choices"][0]["finish_reason"] == "length" { "response.incomplete" } else { "response.completed" };
        prop_assert_eq!(last["type"].as_str(), Some(done));
    }
}
