//! The parsed request view: every field form, errors that name the field, byte-exact splicing.

use proptest::prelude::*;
use serde_json::{json, Value};
use tower_ai_gateway::catalog::{Parameter, Quantization, Usd};
use tower_ai_gateway::health::Percentile;
use tower_ai_gateway::route::{DataCollection, Partition, RequestView, RouteField, SortBy};
use tower_ai_gateway::{ErrorType, GatewayError};

fn parse(v: &Value) -> Result<RequestView<'static>, GatewayError> {
    let bytes = serde_json::to_vec(v).unwrap();
    RequestView::parse(&bytes).map(RequestView::into_owned)
}

fn field_of(e: &GatewayError) -> String {
    e.metadata()
        .get("field")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

#[test]
fn reads_every_routing_field() {
    let body = json!({
        "model": "deepseek/deepseek-chat",
        "models": ["deepseek/deepseek-chat", "openai/gpt-4o-mini"],
        "route": "fallback",
        "messages": [{"role":"system","content":"You are terse."},{"role":"user","content":"Say hi"}],
        "max_tokens": 64,
        "max_completion_tokens": 32,
        "stream": true,
        "session_id": "s-1",
        "prompt_cache_key": "pck",
        "service_tier": "priority",
        "temperature": 0.2,
        "top_p": null,
        "tools": [{"type":"function","function":{"name":"f","parameters":{}}}],
        "response_format": {"type":"json_schema","json_schema":{"name":"x","schema":{}}},
        "provider": {
            "order": ["deepinfra", "together"], "allow_fallbacks": false, "require_parameters": true,
            "data_collection": "deny", "zdr": true, "enforce_distillable_text": false,
            "only": ["deepinfra/turbo"], "ignore": ["groq"], "quantizations": ["fp4", "fp8"],
            "sort": {"by": "throughput", "partition": "none"},
            "preferred_min_throughput": {"p50": 50, "p90": 20.5},
            "preferred_max_latency": 2,
            "max_price": {"prompt": "1", "completion": 2, "request": "0.01", "image": 0, "audio": null},
            "options": {"openai": {"store": false}}
        }
    });
    let v = parse(&body).unwrap();
    assert_eq!(v.model.as_deref(), Some("deepseek/deepseek-chat"));
    assert_eq!(
        v.requested_models(),
        ["deepseek/deepseek-chat", "openai/gpt-4o-mini"]
    );
    assert_eq!(v.route, Some(RouteField::Fallback));
    assert!(v.stream);
    assert_eq!(v.max_tokens, Some(64));
    assert_eq!(v.max_output(), Some(32));
    assert_eq!(v.session_id.as_deref(), Some("s-1"));
    assert_eq!(v.prompt_cache_key.as_deref(), Some("pck"));
    assert_eq!(v.service_tier.as_deref(), Some("priority"));
    assert!(v.params.contains(Parameter::Temperature));
    assert!(!v.params.contains(Parameter::TopP), "null means unset");
    assert!(v.params.contains(Parameter::Tools));
    assert!(v.params.contains(Parameter::ResponseFormat));
    assert!(v.params.contains(Parameter::StructuredOutputs));
    assert!(v.params.contains(Parameter::MaxTokens));
    assert_eq!(v.message_count, 2);
    assert!(v.prompt_estimate() >= 2);

    let p = &v.provider;
    assert_eq!(p.order.as_ref().unwrap(), &["deepinfra", "together"]);
    assert_eq!(p.allow_fallbacks, Some(false));
    assert_eq!(p.require_parameters, Some(true));
    assert_eq!(p.data_collection, Some(DataCollection::Deny));
    assert_eq!(p.zdr, Some(true));
    assert_eq!(p.enforce_distillable_text, Some(false));
    assert_eq!(p.only.as_ref().unwrap(), &["deepinfra/turbo"]);
    assert_eq!(p.ignore.as_ref().unwrap(), &["groq"]);
    assert_eq!(
        p.quantizations.as_ref().unwrap(),
        &[Quantization::Fp4, Quantization::Fp8]
    );
    let sort = p.sort.unwrap();
    assert_eq!(
        (sort.by, sort.partition),
        (SortBy::Throughput, Some(Partition::None))
    );
    let t = p.preferred_min_throughput.as_deref().unwrap();
    assert_eq!(
        t.iter().collect::<Vec<_>>(),
        [(Percentile::P50, 50.0), (Percentile::P90, 20.5)]
    );
    assert_eq!(p.preferred_max_latency.as_deref().unwrap().p50, Some(2.0));
    let mp = p.max_price.as_deref().unwrap();
    assert_eq!(mp.prompt, Some(Usd::from_int(1)));
    assert_eq!(mp.completion, Some(Usd::from_int(2)));
    assert_eq!(mp.request, Some(Usd::parse("0.01").unwrap()));
    assert_eq!(mp.image, Some(Usd::ZERO));
    assert_eq!(mp.audio, None);
    assert!(v.options_span.is_some());
}

#[test]
fn nulls_are_unset_and_sort_string_form() {
    let v = parse(
        &json!({"model":"a/b","provider":{"order":null,"sort":"latency","zdr":null,
        "max_price":{},"preferred_max_latency":null}, "stream": null, "max_tokens": null,
        "prompt": "hi"}),
    )
    .unwrap();
    assert!(v.provider.order.is_none());
    assert_eq!(v.provider.sort.unwrap().by, SortBy::Latency);
    assert_eq!(v.provider.sort.unwrap().partition, None);
    assert!(v.provider.max_price.unwrap().is_empty());
    assert!(!v.stream);
    assert!(v.max_tokens.is_none());
    let v = parse(&json!({"model":"a/b","provider":null,"route":"sort","prompt":"hi"})).unwrap();
    assert_eq!(v.route, Some(RouteField::Sort));
}

#[test]
fn errors_name_the_field() {
    let cases = [
        (json!({"model": 5}), "model"),
        (json!({"model": ""}), "model"),
        (
            json!({"messages": [{"role": "user", "content": "hi"}]}),
            "model",
        ),
        (json!({"model":"a/b","models": "x"}), "models"),
        (json!({"model":"a/b","stream": "yes"}), "stream"),
        (json!({"model":"a/b","max_tokens": -1}), "max_tokens"),
        (json!({"model":"a/b","max_tokens": 0}), "max_tokens"),
        (json!({"model":"a/b","max_tokens": 1e300}), "max_tokens"),
        (json!({"model":"a/b","route": "fastest"}), "route"),
        (
            json!({"model":"a/b","provider": {"sort": "fastest"}}),
            "provider",
        ),
        (
            json!({"model":"a/b","provider": {"sort": {"by":"price","partition":"all"}}}),
            "provider",
        ),
        (
            json!({"model":"a/b","provider": {"quantizations": ["fp5"]}}),
            "provider",
        ),
        (
            json!({"model":"a/b","provider": {"max_price": {"prompt": -1}}}),
            "provider",
        ),
        (
            json!({"model":"a/b","provider": {"max_price": {"prompt": "cheap"}}}),
            "provider",
        ),
        (
            json!({"model":"a/b","provider": {"preferred_max_latency": -2}}),
            "provider",
        ),
        (
            json!({"model":"a/b","provider": {"preferred_min_throughput": {"p42": 1}}}),
            "provider",
        ),
        (
            json!({"model":"a/b","provider": {"order": "openai"}}),
            "provider",
        ),
        (
            json!({"model":"a/b","provider": {"allow_fallbacks": "no"}}),
            "provider",
        ),
        (
            json!({"model":"a/b","provider": {"data_collection": "never"}}),
            "provider",
        ),
        (
            json!({"model":"a/b","session_id": "x".repeat(257)}),
            "session_id",
        ),
        (json!({"model":"a/b","messages": "hi"}), "messages"),
        (json!([1, 2]), ""),
    ];
    for (body, field) in cases {
        let e = parse(&body).expect_err(&body.to_string());
        assert_eq!(e.status(), 400, "{body}");
        assert_eq!(e.error_type(), ErrorType::InvalidRequest);
        assert_eq!(field_of(&e), field, "{body} → {}", e.message());
        if !field.is_empty() {
            assert!(e.message().contains(field), "{}", e.message());
        }
    }
    // Nested provider fields are named in full in the message.
    let e = parse(&json!({"model":"a/b","provider": {"sort": {"by":"price","partition":"all"}}}))
        .unwrap_err();
    assert!(
        e.message().contains("provider.sort.partition"),
        "{}",
        e.message()
    );
    assert!(e.message().contains("model"), "{}", e.message());
}

#[test]
fn malformed_bytes_never_panic() {
    for body in [
        &b""[..],
        b"{",
        b"{\"model\":\"a/b\"",
        b"{\"model\":\"a/b\"} trailing",
        b"\xff\xfe{}",
        b"{\"model\":\"a/\xffb\"}",
        b"null",
    ] {
        let e = RequestView::parse(body).unwrap_err();
        assert_eq!(e.status(), 400);
    }
    // 100k levels of nesting in a skipped field: no stack overflow, and a 400 (issue 17 item 7:
    // providers reject it, so the gateway does, before routing).
    let mut deep = b"{\"model\":\"a/b\",\"x\":".to_vec();
    deep.extend(std::iter::repeat_n(b'[', 100_000));
    deep.extend(std::iter::repeat_n(b']', 100_000));
    deep.push(b'}');
    let e = RequestView::parse(&deep).unwrap_err();
    assert_eq!(e.status(), 400);
    assert!(e.message().contains("nested deeper"), "{}", e.message());
    // …and in a field that is parsed: serde_json's recursion limit (128) answers 400.
    for field in [&b"provider"[..], b"messages", b"tools", b"max_price"] {
        let mut deep = b"{\"model\":\"a/b\",\"provider\":{\"options\":{},\"".to_vec();
        deep.extend_from_slice(field);
        deep.extend_from_slice(b"\":");
        deep.extend(std::iter::repeat_n(b'[', 100_000));
        deep.extend(std::iter::repeat_n(b']', 100_000));
        deep.extend_from_slice(b"}}");
        let _ = RequestView::parse(&deep);
    }
    let mut deep = b"{\"model\":\"a/b\",\"provider\":{\"order\":".to_vec();
    deep.extend(std::iter::repeat_n(b'[', 1000));
    deep.extend(std::iter::repeat_n(b']', 1000));
    deep.extend_from_slice(b"}}");
    let e = RequestView::parse(&deep).unwrap_err();
    assert_eq!(e.status(), 400);
}

#[test]
fn splice_changes_only_the_model() {
    let body = br#"  {"messages":[{"role":"user","content":"caf\u00e9 \"q\""}], "model" : "openai/gpt-4o-mini" ,"stream":true}"#;
    let v = RequestView::parse(body).unwrap();
    let r = v.model_span.clone().unwrap();
    assert_eq!(&body[r.clone()], br#""openai/gpt-4o-mini""#);
    let out = v.splice_model(body, "gpt-4o-mini-2024-07-18\"x");
    assert_eq!(&out[..r.start], &body[..r.start]);
    assert_eq!(&out[out.len() - (body.len() - r.end)..], &body[r.end..]);
    let back = RequestView::parse(&out).unwrap();
    assert_eq!(back.model.as_deref(), Some("gpt-4o-mini-2024-07-18\"x"));
    let a: Value = serde_json::from_slice(body).unwrap();
    let mut b: Value = serde_json::from_slice(&out).unwrap();
    b["model"] = a["model"].clone();
    assert_eq!(a, b);
}

#[test]
fn splice_inserts_a_missing_model() {
    let body = br#"{"models":["a/b","c/d"],"messages":[{"role":"user","content":"hi"}]}"#;
    let v = RequestView::parse(body).unwrap();
    let out = v.splice_model(body, "b");
    assert_eq!(
        out,
        br#"{"model":"b","models":["a/b","c/d"],"messages":[{"role":"user","content":"hi"}]}"#
    );
}

#[test]
fn gateway_members_are_located() {
    let body = br#"{"model":"a/b","provider":{"sort":"price"},"messages":[{"role":"user","content":"hi"}],"models":["x/y"],"usage":{"include":true}}"#;
    let v = RequestView::parse(body).unwrap();
    let spans: Vec<&[u8]> = v.gateway_members.iter().map(|r| &body[r.clone()]).collect();
    assert_eq!(
        spans,
        [
            &br#"{"sort":"price"}"#[..],
            br#"["x/y"]"#,
            br#"{"include":true}"#
        ]
    );
}

#[test]
fn every_captured_chat_request_parses() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/clients");
    let mut n = 0;
    for client in std::fs::read_dir(dir).unwrap() {
        let client = client.unwrap().path();
        if !client.is_dir() {
            continue;
        }
        for scenario in std::fs::read_dir(&client).unwrap() {
            for f in std::fs::read_dir(scenario.unwrap().path()).unwrap() {
                let f = f.unwrap().path();
                let cap: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
                if cap["path"]
                    .as_str()
                    .unwrap_or("")
                    .ends_with("chat/completions")
                {
                    let body = serde_json::to_vec(&cap["body"]).unwrap();
                    let v = RequestView::parse(&body).unwrap_or_else(|e| panic!("{f:?}: {e}"));
                    assert!(!v.requested_models().is_empty());
                    n += 1;
                }
            }
        }
    }
    assert!(n >= 7, "only {n} captured chat requests found");
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-z0-9/:._ -]{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("price"),
            Just("none"),
            Just("model"),
            Just("deny"),
            Just("fp4"),
            Just("openai")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("by".to_string()),
                    Just("partition".to_string()),
                    Just("p50".to_string()),
                    Just("prompt".to_string()),
                    "[a-z]{1,6}"
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const FIELDS: &[&str] = &[
    "model",
    "models",
    "route",
    "stream",
    "max_tokens",
    "max_completion_tokens",
    "session_id",
    "prompt_cache_key",
    "messages",
    "tools",
    "temperature",
    "service_tier",
];
const PROVIDER_FIELDS: &[&str] = &[
    "order",
    "allow_fallbacks",
    "require_parameters",
    "data_collection",
    "zdr",
    "enforce_distillable_text",
    "only",
    "ignore",
    "quantizations",
    "sort",
    "preferred_min_throughput",
    "preferred_max_latency",
    "max_price",
    "options",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_routing_fields_never_panic(
        field in prop::sample::select(FIELDS),
        pfield in prop::sample::select(PROVIDER_FIELDS),
        value in arb_json(),
        in_provider in any::<bool>(),
    ) {
        let body = if in_provider {
            json!({"model": "a/b", "provider": {pfield: value}, "prompt": "hi"})
        } else {
            let mut b = json!({"model": "a/b", "prompt": "hi"});
            b[field] = value;
            b
        };
        let bytes = serde_json::to_vec(&body).unwrap();
        match RequestView::parse(&bytes) {
            Ok(_) => {}
            Err(e) => {
                prop_assert_eq!(e.status(), 400);
                let named = if in_provider { "provider" } else { field };
                let f = field_of(&e);
                // A missing model is reported against `model`.
                let ok = f == named || f == "model" || f.starts_with(&format!("{named}["))
                    || f.starts_with(&format!("{named}."));
                prop_assert!(ok, "{} named {:?}: {}", body, f, e.message());
                if in_provider && f == "provider" {
                    prop_assert!(e.message().contains(pfield) || e.message().contains("provider"),
                        "{}", e.message());
                }
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Err(e) = RequestView::parse(&bytes) {
            prop_assert_eq!(e.status(), 400);
        }
    }

    #[test]
    fn splice_is_byte_exact(model in "[a-zA-Z0-9/:._\\-\"\\\\é]{1,30}", prefix in "[ \n]{0,3}") {
        let body = format!(r#"{prefix}{{"messages":[{{"role":"user","content":"hi"}}],"model":"x/y","temperature":1}}"#);
        let v = RequestView::parse(body.as_bytes()).unwrap();
        let r = v.model_span.clone().unwrap();
        let out = v.splice_model(body.as_bytes(), &model);
        prop_assert_eq!(&out[..r.start], &body.as_bytes()[..r.start]);
        prop_assert_eq!(&out[out.len() - (body.len() - r.end)..], &body.as_bytes()[r.end..]);
        let back = RequestView::parse(&out).unwrap();
        prop_assert_eq!(back.model.as_deref(), Some(model.as_str()));
    }
}
