use serde_json::{json, Value};

use super::*;

#[test]
fn system_blocks_and_inline_system_messages() {
    let req = json!({
        "model": "m", "max_tokens": 100,
        "system": [{"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}},
                   {"type": "text", "text": "b"}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "x"},
                                         {"type": "text", "text": "y", "cache_control": {"type": "ephemeral"}}]},
            {"role": "system", "content": "mid"},
        ],
        "context_management": {"edits": []}, "output_config": {"effort": "high"},
        "thinking": {"type": "adaptive"},
        "metadata": {"user_id": "u1"}, "stop_sequences": ["END"], "temperature": 0.2, "top_k": 5,
        "stream": true, "session_id": "s", "provider": {"order": ["a"]},
    });
    let chat = messages_to_chat(&req).unwrap();
    assert_eq!(
        chat["messages"],
        json!([{"role": "system", "content": "a\n\nb"}, {"role": "user", "content": "xy"},
               {"role": "system", "content": "mid"}])
    );
    assert_eq!(chat["reasoning"], json!({"effort": "high"}));
    assert_eq!(chat["user"], "u1");
    assert_eq!(chat["stop"], json!(["END"]));
    assert_eq!(chat["temperature"], 0.2);
    assert_eq!(chat["top_k"], 5);
    assert_eq!(chat["max_tokens"], 100);
    assert_eq!(chat["stream_options"], json!({"include_usage": true}));
    assert_eq!(chat["session_id"], "s");
    assert_eq!(chat["provider"], json!({"order": ["a"]}));
    assert!(chat.get("context_management").is_none());
    assert!(!chat.to_string().contains("cache_control"));
}

#[test]
fn item11_messages_without_max_tokens_are_400() {
    for max in [json!(null), json!(0), json!(-1), json!("100"), json!(1.5)] {
        let mut req = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        if !max.is_null() {
            req["max_tokens"] = max.clone();
        }
        let e = messages_to_chat(&req).unwrap_err();
        assert_eq!(e.status(), 400, "{max}");
        assert!(e.to_string().contains("max_tokens"), "{max}: {e}");
    }
    let ok =
        json!({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(messages_to_chat(&ok).unwrap()["max_tokens"], 1);
}

#[test]
fn thinking_modes() {
    let with = |t: Value| {
        messages_to_chat(&json!({"model": "m", "max_tokens": 9, "messages": [], "thinking": t}))
            .unwrap()
    };
    assert_eq!(
        with(json!({"type": "enabled", "budget_tokens": 2048}))["reasoning"],
        json!({"max_tokens": 2048})
    );
    assert_eq!(
        with(json!({"type": "adaptive"}))["reasoning"],
        json!({"effort": "medium"})
    );
    assert!(with(json!({"type": "disabled"})).get("reasoning").is_none());
}

#[test]
fn tools_and_tool_choice() {
    let base = json!({"model": "m", "max_tokens": 9, "messages": [],
        "tools": [{"name": "Bash", "description": "run", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}},
                  {"type": "web_search_20250305", "name": "web_search"}]});
    for (choice, want) in [
        (json!({"type": "auto"}), json!("auto")),
        (json!({"type": "any"}), json!("required")),
        (json!({"type": "none"}), json!("none")),
        (
            json!({"type": "tool", "name": "Bash"}),
            json!({"type": "function", "function": {"name": "Bash"}}),
        ),
    ] {
        let mut req = base.clone();
        req["tool_choice"] = choice;
        let chat = messages_to_chat(&req).unwrap();
        assert_eq!(chat["tool_choice"], want);
        assert_eq!(chat["tools"].as_array().unwrap().len(), 1);
        assert_eq!(
            chat["tools"][0]["function"]["parameters"]["properties"]["command"]["type"],
            "string"
        );
        assert_eq!(chat["tools"][0]["function"]["name"], "Bash");
    }
}

#[test]
fn multi_turn_tool_conversation() {
    let req = json!({"model": "m", "max_tokens": 9, "messages": [
        {"role": "user", "content": "list files"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "I should run ls", "signature": "gw-fnv1a-0"},
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "README.md\nmain.py", "is_error": false},
            {"type": "text", "text": "what now?"}]},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_2", "name": "Read", "input": {"path": "x"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": true,
             "content": [{"type": "text", "text": "no such file"},
                         {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAA"}}]}]},
    ]});
    let chat = messages_to_chat(&req).unwrap();
    let m = chat["messages"].as_array().unwrap();
    assert_eq!(m[0], json!({"role": "user", "content": "list files"}));
    assert_eq!(m[1]["role"], "assistant");
    assert_eq!(m[1]["content"], "Let me look.");
    assert_eq!(m[1]["reasoning"], "I should run ls");
    assert_eq!(m[1]["tool_calls"][0]["id"], "toolu_1");
    let args: Value = serde_json::from_str(
        m[1]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(args, json!({"command": "ls"}));
    assert_eq!(
        m[2],
        json!({"role": "tool", "tool_call_id": "toolu_1", "content": "README.md\nmain.py"})
    );
    assert_eq!(m[3], json!({"role": "user", "content": "what now?"}));
    assert_eq!(m[4]["content"], Value::Null);
    assert_eq!(
        m[5],
        json!({"role": "tool", "tool_call_id": "toolu_2", "content": "[tool error] no such file"})
    );
    assert_eq!(
        m[6]["content"][0]["image_url"]["url"],
        "data:image/png;base64,AAA"
    );
    assert_eq!(m.len(), 7);

    // The answer with a tool call, back in Anthropic form.
    let completion = json!({"id": "gen-1", "model": "m", "provider": "acme",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant",
            "content": "Running.", "reasoning": "think",
            "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "Bash", "arguments": "{\"command\":\"pwd\"}"}},
                           {"id": "call_10", "type": "function", "function": {"name": "Bash", "arguments": "{oops"}}]}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 7, "cost": 0.001,
                  "prompt_tokens_details": {"cached_tokens": 40}}});
    let msg = chat_to_message(&completion);
    assert_eq!(msg["id"], "gen-1");
    assert_eq!(msg["stop_reason"], "tool_use");
    assert_eq!(msg["provider"], "acme");
    assert_eq!(
        msg["content"][0],
        json!({"type": "thinking", "thinking": "think", "signature": thinking_signature("think")})
    );
    assert_eq!(
        msg["content"][1],
        json!({"type": "text", "text": "Running."})
    );
    assert_eq!(
        msg["content"][2],
        json!({"type": "tool_use", "id": "call_9", "name": "Bash", "input": {"command": "pwd"}})
    );
    assert_eq!(
        msg["content"][3]["input"],
        json!({"_raw_arguments": "{oops"})
    );
    assert_eq!(msg["usage"]["input_tokens"], 60);
    assert_eq!(msg["usage"]["cache_read_input_tokens"], 40);
    assert_eq!(msg["usage"]["output_tokens"], 7);
    assert_eq!(msg["usage"]["cost"], 0.001);
    assert!(msg["stop_sequence"].is_null());

    // Round trip: the assistant message goes back as the same tool calls.
    let next = messages_to_chat(&json!({"model": "m", "max_tokens": 9,
            "messages": [{"role": "assistant", "content": msg["content"]}]}))
    .unwrap();
    assert_eq!(
        next["messages"][0]["tool_calls"][0]["function"]["arguments"],
        "{\"command\":\"pwd\"}"
    );
    assert_eq!(next["messages"][0]["reasoning"], "think");
}

#[test]
fn stop_reasons() {
    for (f, s) in [
        (Some("stop"), "end_turn"),
        (Some("length"), "max_tokens"),
        (Some("tool_calls"), "tool_use"),
        (Some("content_filter"), "refusal"),
        (None, "end_turn"),
    ] {
        assert_eq!(stop_reason(f), s);
    }
}

#[test]
fn fallbacks() {
    let with = |extra: Value| {
        let mut r = json!({"model": "m", "max_tokens": 9, "messages": []});
        for (k, v) in extra.as_object().unwrap() {
            r[k] = v.clone();
        }
        messages_to_chat(&r)
    };
    assert_eq!(
        with(json!({"fallbacks": [{"model": "a"}, {"model": "b"}]})).unwrap()["models"],
        json!(["a", "b"])
    );
    assert!(with(json!({"fallbacks": [{"model": "a"}], "models": ["b"]})).is_err());
    assert!(with(
        json!({"fallbacks": [{"model": "a"}, {"model": "b"}, {"model": "c"}, {"model": "d"}]})
    )
    .is_err());
    assert!(with(json!({"fallbacks": [{"model": "a", "provider": {}}]})).is_err());
    assert_eq!(
        with(json!({"models": ["x"]})).unwrap()["models"],
        json!(["x"])
    );
    assert!(messages_to_chat(&json!({"messages": []})).is_err());
}

#[test]
fn error_mapping() {
    for (t, a) in [
        ("authentication", "authentication_error"),
        ("permission_denied", "permission_error"),
        ("payment_required", "billing_error"),
        ("not_found", "not_found_error"),
        ("rate_limit_exceeded", "rate_limit_error"),
        ("provider_overloaded", "overloaded_error"),
        ("timeout", "timeout_error"),
        ("invalid_request", "invalid_request_error"),
        ("content_policy_violation", "invalid_request_error"),
        ("provider_unavailable", "api_error"),
        ("server", "api_error"),
        ("unmapped", "api_error"),
    ] {
        assert_eq!(anthropic_error_type(t), a);
        let body =
            json!({"error": {"code": 400, "message": "boom", "metadata": {"error_type": t}}});
        let v = error_to_anthropic(400, &body);
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], a);
        assert_eq!(v["error"]["error_type"], t);
        assert_eq!(v["error"]["message"], "boom");
        assert!(v["request_id"].is_null());
    }
    let v = error_to_anthropic(
        429,
        &json!({"error": {"code": 429, "message": "slow down"}}),
    );
    assert_eq!(v["error"]["type"], "rate_limit_error");
    let e = crate::GatewayError::new(crate::ErrorType::PaymentRequired, "no credits");
    let v = error_to_anthropic(e.status().as_u16(), &e.to_json());
    assert_eq!(v["error"]["type"], "billing_error");
    assert_eq!(
        anthropic_status(http::StatusCode::PAYMENT_REQUIRED, &v),
        402
    );
}

#[test]
fn unknown_model_becomes_a_404_not_found_error() {
    use crate::error::{Availability, AvailabilityCode};
    let e = crate::GatewayError::unavailable(
        "`a/b` is not a valid model ID",
        Availability::new(AvailabilityCode::ModelNotFound, vec!["a/b".into()]),
    );
    assert_eq!(e.status(), 400);
    let v = error_to_anthropic(e.status().as_u16(), &e.to_json());
    assert_eq!(v["error"]["type"], "not_found_error", "{v}");
    assert_eq!(v["error"]["error_type"], "not_found", "{v}");
    assert_eq!(v["error"]["message"], "`a/b` is not a valid model ID");
    assert_eq!(anthropic_status(e.status(), &v), 404);
    // Other 400s stay 400s.
    let v = error_to_anthropic(400, &json!({"error": {"code": 400, "message": "bad"}}));
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(anthropic_status(http::StatusCode::BAD_REQUEST, &v), 400);
}

#[test]
fn count_tokens_is_bytes_over_four() {
    let req = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let n = req["messages"].to_string().len() as u64;
    assert_eq!(count_tokens(&req), n.div_ceil(4));
    assert_eq!(
        count_tokens_json(&req),
        json!({"input_tokens": n.div_ceil(4)})
    );
}

/// A recorded-style OpenAI stream: role chunk, reasoning, text, two tool calls with arguments
/// split across chunks, the finish chunk, the usage chunk, `[DONE]`.
const STREAM: &str = concat!(
    ": OPENROUTER PROCESSING\n\n",
    "data: {\"id\":\"gen-42\",\"object\":\"chat.completion.chunk\",\"model\":\"acme/chat\",\"provider\":\"acme\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
    "data: {\"id\":\"gen-42\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning\":\"Let me \"}}]}\n\n",
    "data: {\"id\":\"gen-42\",\"choices\":[{\"index\":0,\"delta\":{\"reasoning\":\"think.\"}}]}\n\n",
    "data: {\"id\":\"gen-42\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Héllo, \"}}]}\r\n\r\n",
    "data: {\"id\":\"gen-42\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"wörld!\"}}]}\n\n",
    "data: {\"id\":\"gen-42\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"Bash\",\"arguments\":\"\"}}]}}]}\n\n",
    "data: {\"id\":\"gen-42\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"comm\"}}]}}]}\n\n",
    "data: {\"id\":\"gen-42\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"and\\\": \\\"ls\\\"}\"}}]}}]}\n\n",
    "data: {\"id\":\"gen-42\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_2\",\"type\":\"function\",\"function\":{\"name\":\"Read\",\"arguments\":\"{\\\"path\\\":\"}}]}}]}\n\n",
    "data: {\"id\":\"gen-42\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"\\\"a.txt\\\"}\"}}]}}]}\n\n",
    "data: {\"id\":\"gen-42\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
    "data: {\"id\":\"gen-42\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":30,\"total_tokens\":42,\"cost\":0.5}}\n\n",
    "data: [DONE]\n\n",
);

fn parse_events(out: &[u8]) -> Vec<(String, Value)> {
    let text = std::str::from_utf8(out).unwrap();
    assert!(text.ends_with("\n\n"));
    text.split("\n\n")
        // Comments (keep-alives) are passed on and carry no event.
        .filter(|b| !b.is_empty() && !b.starts_with(':'))
        .map(|block| {
            let mut lines = block.lines();
            let name = lines
                .next()
                .unwrap()
                .strip_prefix("event: ")
                .unwrap()
                .to_owned();
            let data: Value =
                serde_json::from_str(lines.next().unwrap().strip_prefix("data: ").unwrap())
                    .unwrap();
            assert_eq!(data["type"], name.as_str());
            assert!(lines.next().is_none());
            (name, data)
        })
        .collect()
}

/// Text, thinking and the arguments of each tool_use block, by block.
fn assemble(events: &[(String, Value)]) -> (String, String, Vec<(String, String)>, Value) {
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(&names[..2], ["message_start", "ping"]);
    assert_eq!(&names[names.len() - 2..], ["message_delta", "message_stop"]);
    let (mut text, mut thinking, mut tools) = (String::new(), String::new(), Vec::new());
    let mut signature = None;
    for (name, d) in events {
        match name.as_str() {
            "content_block_start" if d["content_block"]["type"] == "tool_use" => tools.push((
                d["content_block"]["id"].as_str().unwrap().to_owned(),
                String::new(),
            )),
            "content_block_delta" => match d["delta"]["type"].as_str().unwrap() {
                "text_delta" => text.push_str(d["delta"]["text"].as_str().unwrap()),
                "thinking_delta" => thinking.push_str(d["delta"]["thinking"].as_str().unwrap()),
                "signature_delta" => signature = Some(d["delta"]["signature"].clone()),
                "input_json_delta" => tools
                    .last_mut()
                    .unwrap()
                    .1
                    .push_str(d["delta"]["partial_json"].as_str().unwrap()),
                other => panic!("{other}"),
            },
            _ => {}
        }
    }
    if !thinking.is_empty() {
        assert_eq!(signature.unwrap(), thinking_signature(&thinking));
    }
    (text, thinking, tools, events[events.len() - 2].1.clone())
}

#[test]
fn sse_translation_in_one_piece() {
    let mut t = SseTranslator::new("fallback");
    let mut out = t.feed(STREAM.as_bytes()).to_vec();
    out.extend_from_slice(&t.finish());
    let events = parse_events(&out);
    let start = &events[0].1["message"];
    assert_eq!(start["id"], "gen-42");
    assert_eq!(start["model"], "acme/chat");
    assert_eq!(start["provider"], "acme");
    let kinds: Vec<String> = events
        .iter()
        .filter(|(n, _)| n == "content_block_start")
        .map(|(_, d)| d["content_block"]["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["thinking", "text", "tool_use", "tool_use"]);
    let (text, thinking, tools, delta) = assemble(&events);
    assert_eq!(text, "Héllo, wörld!");
    assert_eq!(thinking, "Let me think.");
    assert_eq!(
        tools,
        [
            ("call_1".to_owned(), "{\"command\": \"ls\"}".to_owned()),
            ("call_2".to_owned(), "{\"path\":\"a.txt\"}".to_owned())
        ]
    );
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(delta["usage"]["output_tokens"], 30);
    assert_eq!(delta["usage"]["input_tokens"], 12);
    assert_eq!(delta["usage"]["cost"], 0.5);
    // Block indexes run 0.. and every start has its stop.
    let starts = events
        .iter()
        .filter(|(n, _)| n == "content_block_start")
        .count();
    let stops: Vec<u64> = events
        .iter()
        .filter(|(n, _)| n == "content_block_stop")
        .map(|(_, d)| d["index"].as_u64().unwrap())
        .collect();
    assert_eq!(stops, (0..starts as u64).collect::<Vec<_>>());
}

#[test]
fn sse_translation_at_every_split() {
    let mut whole = SseTranslator::new("m");
    let mut expected = whole.feed(STREAM.as_bytes()).to_vec();
    expected.extend_from_slice(&whole.finish());
    let bytes = STREAM.as_bytes();
    for cut in 0..=bytes.len() {
        let mut t = SseTranslator::new("m");
        let mut out = t.feed(&bytes[..cut]).to_vec();
        out.extend_from_slice(&t.feed(&bytes[cut..]));
        out.extend_from_slice(&t.finish());
        assert_eq!(out, expected, "split at {cut}");
        let (text, _, tools, _) = assemble(&parse_events(&out));
        assert_eq!(text, "Héllo, wörld!");
        assert_eq!(tools.len(), 2);
    }
}

#[test]
fn sse_without_finish_reason_or_done() {
    let mut t = SseTranslator::new("m");
    let mut out = t.feed(b"data: {\"id\":\"gen-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\ndata: {\"id\":\"gen-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"!\"}}]}").to_vec();
    out.extend_from_slice(&t.finish());
    let events = parse_events(&out);
    let (text, _, _, delta) = assemble(&events);
    assert_eq!(text, "hi!");
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(
        events
            .iter()
            .filter(|(n, _)| n == "content_block_stop")
            .count(),
        1
    );
    assert_eq!(events[0].1["message"]["model"], "m");
}

#[test]
fn sse_in_band_error() {
    let mut t = SseTranslator::new("m");
    let mut out = t.feed(b"data: {\"id\":\"gen-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\ndata: {\"error\":{\"code\":502,\"message\":\"upstream died\"},\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"error\"}]}\n\ndata: [DONE]\n\n").to_vec();
    out.extend_from_slice(&t.finish());
    let events = parse_events(&out);
    let (name, last) = events.last().unwrap();
    assert_eq!(name, "error");
    assert_eq!(last["error"]["type"], "api_error");
    assert_eq!(last["error"]["message"], "upstream died");
    assert!(!events.iter().any(|(n, _)| n == "message_stop"));
}

#[test]
fn sse_empty_stream_still_well_formed() {
    let mut t = SseTranslator::new("m");
    let out = t.finish();
    let events = parse_events(&out);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["message_start", "ping", "message_delta", "message_stop"]
    );
}

/// A body yielding the given frames, one per poll.
struct Frames(std::collections::VecDeque<bytes::Bytes>);

impl http_body::Body for Frames {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        std::task::Poll::Ready(self.0.pop_front().map(|b| Ok(http_body::Frame::data(b))))
    }
}

#[test]
fn sse_body_wrapper_at_every_two_frame_split() {
    use http_body_util::BodyExt;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let bytes = bytes::Bytes::from_static(STREAM.as_bytes());
    let mut first = None;
    for cut in 0..=bytes.len() {
        let frames = Frames(
            [bytes.slice(..cut), bytes.slice(cut..)]
                .into_iter()
                .collect(),
        );
        let body = MessagesSseBody::new(frames, SseTranslator::new("m"));
        let out = rt.block_on(body.collect()).unwrap().to_bytes();
        let (text, thinking, tools, delta) = assemble(&parse_events(&out));
        assert_eq!(text, "Héllo, wörld!", "split at {cut}");
        assert_eq!(thinking, "Let me think.");
        assert_eq!(tools[0].1, "{\"command\": \"ls\"}");
        assert_eq!(tools[1].1, "{\"path\":\"a.txt\"}");
        assert_eq!(delta["delta"]["stop_reason"], "tool_use");
        match &first {
            None => first = Some(out),
            Some(f) => assert_eq!(&out, f),
        }
    }
}

/// MessagesLayer's path (tools copied raw) gives the same chat body as `messages_to_chat` on the
/// whole request, for every captured client request and the odd cases.
#[test]
fn raw_tools_path_equals_the_value_path() {
    use super::request::{chat_body, split_tools};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clients");
    let mut bodies: Vec<Vec<u8>> = Vec::new();
    for client in ["claude-code", "anthropic-sdk"] {
        for scenario in std::fs::read_dir(root.join(client)).unwrap() {
            for f in std::fs::read_dir(scenario.unwrap().path()).unwrap() {
                let p = f.unwrap().path();
                if p.extension().is_some_and(|e| e == "json") {
                    let capture: Value =
                        serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
                    if capture["body"].is_object() {
                        bodies.push(serde_json::to_vec(&capture["body"]).unwrap());
                    }
                }
            }
        }
    }
    assert!(bodies.len() >= 10, "{}", bodies.len());
    let base = r#""model":"m","max_tokens":9,"messages":[{"role":"user","content":"hi"}]"#;
    for tools in [
        r#"[]"#,
        r#"[{"name":"a","input_schema":{"type":"object"}}]"#,
        r#"[{"name":"a","description":null,"input_schema":{"type":"object","properties":{"x":{"type":"string"}}},"cache_control":{"type":"ephemeral"}}]"#,
        r#"[{"type":"web_search_20250305","name":"web_search","max_uses":3}]"#,
        r#"[{"type":"custom","name":"c"},{"type":"bash_20250124","name":"bash"},{"name":"n\u00e9","description":"d\"q"}]"#,
        r#"[1,"x",null,{"type":7}]"#,
        r#"{"name":"not an array"}"#,
        r#"null"#,
    ] {
        bodies.push(format!("{{{base},\"tools\":{tools}}}").into_bytes());
        bodies.push(format!("{{\"tools\" : {tools} ,{base}}}").into_bytes());
    }
    bodies.push(format!("{{{base}}}").into_bytes());
    for body in &bodies {
        let (rest, tools) = split_tools(body).unwrap();
        let slow = messages_to_chat(&serde_json::from_slice(body).unwrap());
        let Ok(slow) = slow else {
            // Captured `count_tokens` bodies have no `max_tokens`: the same 400 both ways.
            let fast = messages_to_chat(&rest).unwrap_err();
            assert_eq!(fast.to_string(), slow.unwrap_err().to_string());
            continue;
        };
        let fast = chat_body(&messages_to_chat(&rest).unwrap(), tools.as_deref());
        let fast: Value = serde_json::from_slice(&fast)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&fast)));
        assert_eq!(fast, slow, "{}", String::from_utf8_lossy(body));
    }
    // Not an object, or not JSON: the same outcome as before.
    for bad in [&b"[1,2]"[..], b"\"s\"", b"3", b"null"] {
        let (rest, tools) = split_tools(bad).unwrap();
        assert!(tools.is_none());
        assert!(messages_to_chat(&rest).is_err());
    }
    assert!(split_tools(b"{\"tools\":[").is_err());
    assert!(split_tools(b"{} x").is_err());
}

/// The chat chunk carrying one tool-call fragment: the first of a call names it.
fn tool_fragment(call: usize, name: Option<&str>, args: &str) -> String {
    let mut c = json!({"index": call, "function": {"arguments": args}});
    if let Some(name) = name {
        c["id"] = json!(format!("call_{call}"));
        c["type"] = json!("function");
        c["function"]["name"] = json!(name);
    }
    let chunk = json!({"id": "c", "choices": [{"index": 0, "delta": {"tool_calls": [c]}}]});
    format!("data: {chunk}\n\n")
}

proptest::proptest! {
    /// Issue 17 item 5: parallel tool calls whose fragments interleave by `index` come out as one
    /// well-formed block per call (blocks strictly one after another), each with its own id, name
    /// and arguments.
    #[test]
    fn interleaved_parallel_tool_calls_keep_their_arguments(
        calls in proptest::collection::vec(
            ("[a-z]{1,6}", proptest::collection::vec("[a-z0-9 {}:,]{0,5}", 1..5)),
            1..4,
        ),
        picks in proptest::collection::vec(0usize..4, 0..40),
        text_first in proptest::bool::ANY,
    ) {
        let mut stream = String::new();
        if text_first {
            stream.push_str("data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"}}]}\n\n");
        }
        // The order of the fragments: the picks first, then what is left, call by call.
        let mut left: Vec<usize> = calls.iter().map(|c| c.1.len()).collect();
        let mut order = Vec::new();
        for p in picks {
            let i = p % calls.len();
            if left[i] > 0 {
                left[i] -= 1;
                order.push(i);
            }
        }
        for (i, n) in left.iter().enumerate() {
            order.extend(std::iter::repeat_n(i, *n));
        }
        let mut next = vec![0usize; calls.len()];
        for i in order {
            let (name, frags) = &calls[i];
            let first = (next[i] == 0).then_some(name.as_str());
            stream.push_str(&tool_fragment(i, first, &frags[next[i]]));
            next[i] += 1;
        }
        stream.push_str("data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n");

        let mut t = SseTranslator::new("m");
        let mut out = t.feed(stream.as_bytes()).to_vec();
        out.extend_from_slice(&t.finish());
        let events = parse_events(&out);

        // Blocks strictly in sequence: start i, its deltas, stop i, then i + 1.
        let mut open: Option<u64> = None;
        let mut index = 0u64;
        let mut tools: Vec<(String, String, String)> = Vec::new();
        for (name, d) in &events {
            match name.as_str() {
                "content_block_start" => {
                    proptest::prop_assert!(open.is_none());
                    proptest::prop_assert_eq!(d["index"].as_u64(), Some(index));
                    open = Some(index);
                    if d["content_block"]["type"] == "tool_use" {
                        tools.push((
                            d["content_block"]["id"].as_str().unwrap().to_owned(),
                            d["content_block"]["name"].as_str().unwrap().to_owned(),
                            String::new(),
                        ));
                    }
                }
                "content_block_delta" => {
                    proptest::prop_assert_eq!(d["index"].as_u64(), open);
                    if d["delta"]["type"] == "input_json_delta" {
                        let t = tools.last_mut().unwrap();
                        t.2.push_str(d["delta"]["partial_json"].as_str().unwrap());
                    }
                }
                "content_block_stop" => {
                    proptest::prop_assert_eq!(d["index"].as_u64(), open);
                    open = None;
                    index += 1;
                }
                _ => {}
            }
        }
        proptest::prop_assert!(open.is_none());
        proptest::prop_assert_eq!(tools.len(), calls.len());
        for (i, (name, frags)) in calls.iter().enumerate() {
            let id = format!("call_{i}");
            let got = tools.iter().find(|t| t.0 == id).expect("each call has its block");
            proptest::prop_assert_eq!(&got.1, name);
            proptest::prop_assert_eq!(&got.2, &frags.concat());
        }
    }
}
