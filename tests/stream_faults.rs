//! Streams from providers that misbehave after content, through the whole stack (issue 17 items
//! A, B, 1, 2 and 3): each test scripts an upstream's frames and reads what the caller gets.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use http::{Request, Response};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use serde_json::Value;
use tower::{ServiceBuilder, ServiceExt};
use tower_ai_gateway::catalog::{Catalog, Credentials, Endpoint, Model, Provider, Usd};
use tower_ai_gateway::keep_alive::KeepAliveLayer;
use tower_ai_gateway::usage_meter::GenerationStore;
use tower_ai_gateway::GatewayLayer;

const MODEL: &str = "acme/chat";
const SECRET: &str = "sk-acme-0123456789abcdef";

type Frames = BoxStream<'static, Result<Frame<Bytes>, Infallible>>;

/// What the scripted upstream answers to one call.
struct Script {
    frames: Vec<&'static str>,
    /// After the frames: stay open and silent instead of ending.
    stall: bool,
    /// Send the usage chunk only when the request asks for it (as OpenAI does).
    usage_only_when_asked: bool,
}

impl Script {
    fn new(frames: &[&'static str]) -> Self {
        Script {
            frames: frames.to_vec(),
            stall: false,
            usage_only_when_asked: false,
        }
    }
}

#[derive(Clone, Default)]
struct Upstream {
    scripts: Arc<Mutex<VecDeque<Script>>>,
    bodies: Arc<Mutex<Vec<Value>>>,
}

const USAGE: &str = "data: {\"id\":\"up\",\"object\":\"chat.completion.chunk\",\"model\":\"tr1\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"total_tokens\":10}}\n\n";
const HI: &str = "data: {\"id\":\"up\",\"object\":\"chat.completion.chunk\",\"model\":\"tr1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n";
const STOP: &str = "data: {\"id\":\"up\",\"object\":\"chat.completion.chunk\",\"model\":\"tr1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";
const DONE: &str = "data: [DONE]\n\n";

impl Upstream {
    fn new(scripts: Vec<Script>) -> Self {
        Upstream {
            scripts: Arc::new(Mutex::new(scripts.into())),
            bodies: Arc::default(),
        }
    }

    fn answer(&self, req: Request<Full<Bytes>>) -> Response<StreamBody<Frames>> {
        let body = req.into_body();
        let bytes = futures_util::FutureExt::now_or_never(body.collect())
            .expect("a full body is ready")
            .expect("infallible")
            .to_bytes();
        let json: Value = serde_json::from_slice(&bytes).expect("upstream body is JSON");
        let asked = json["stream_options"]["include_usage"] == true;
        self.bodies.lock().unwrap().push(json);
        let script = self.scripts.lock().unwrap().pop_front().expect("a script");
        let frames: Vec<Result<Frame<Bytes>, Infallible>> = script
            .frames
            .iter()
            .filter(|f| !(script.usage_only_when_asked && **f == USAGE && !asked))
            .map(|f| Ok(Frame::data(Bytes::from_static(f.as_bytes()))))
            .collect();
        let s = stream::iter(frames);
        let s: Frames = if script.stall {
            s.chain(stream::pending()).boxed()
        } else {
            s.boxed()
        };
        Response::builder()
            .header("content-type", "text/event-stream")
            .body(StreamBody::new(s))
            .unwrap()
    }
}

fn catalog() -> Catalog {
    let mut e = Endpoint::new(MODEL, "acme");
    e.provider_model_id = Some("tr1".into());
    e.pricing.prompt = Usd::from_micros(1);
    e.pricing.completion = Usd::from_micros(2);
    Catalog::builder()
        .model(Model::new(MODEL, "Acme Chat"))
        .provider(
            Provider::new("acme", "Acme")
                .base_url("http://acme.test/v1")
                .credentials(Credentials::key(SECRET)),
        )
        .endpoint(e)
        .build()
        .expect("catalog")
}

/// What the caller got: the raw stream and its `data:` payloads.
struct Got {
    text: String,
    events: Vec<String>,
}

impl Got {
    fn json(&self) -> Vec<Value> {
        self.events
            .iter()
            .filter(|e| *e != "[DONE]")
            .map(|e| serde_json::from_str(e).unwrap_or_else(|_| panic!("not JSON: {e}")))
            .collect()
    }

    fn last(&self) -> Value {
        self.json().pop().expect("an event")
    }
}

async fn run(
    upstream: &Upstream,
    store: &GenerationStore,
    configure: impl FnOnce(GatewayLayer) -> GatewayLayer,
) -> Got {
    let up = upstream.clone();
    let client = tower::service_fn(move |req| {
        let res = up.answer(req);
        async move { Ok::<_, Infallible>(res) }
    });
    let sink = store.clone();
    let gateway = configure(GatewayLayer::new(catalog()).usage_meter(move |u| u.sink(sink)));
    let svc = ServiceBuilder::new().layer(gateway).service(client);
    let body = format!(
        r#"{{"model":"{MODEL}","stream":true,"messages":[{{"role":"user","content":"hello"}}]}}"#
    );
    let res = svc
        .oneshot(
            Request::post("/")
                .body(Full::new(Bytes::from(body)))
                .unwrap(),
        )
        .await
        .expect("response");
    assert_eq!(res.status(), 200);
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    let text = String::from_utf8(bytes.to_vec()).expect("UTF-8");
    let events = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(str::to_string)
        .collect();
    Got { text, events }
}

/// The gateway's in-band error chunk, checked for its shape and its ids.
fn assert_gateway_error(got: &Got, store: &GenerationStore) {
    let last = got.last();
    assert_eq!(last["choices"][0]["finish_reason"], "error", "{}", got.text);
    assert_eq!(last["error"]["code"], 502);
    assert!(!got.text.contains("[DONE]"));
    // Item 3: the generation's id and the requested model, like every other chunk.
    let gen = store.records().pop().expect("a generation");
    assert_eq!(last["id"], *gen.id, "{}", got.text);
    assert_eq!(last["model"], MODEL);
    assert!(gen.error, "recorded as an error");
}

#[tokio::test(start_paused = true)]
async fn a_provider_error_text_never_reaches_the_caller() {
    let leak = r#"data: {"id":"up","object":"chat.completion.chunk","error":{"code":"server_error","message":"backend died, key sk-acme-0123456789abcdef"}}

"#;
    let store = GenerationStore::new(10);
    let up = Upstream::new(vec![Script::new(&[HI, leak])]);
    let got = run(&up, &store, |g| g).await;
    assert!(!got.text.contains("sk-acme"), "{}", got.text);
    assert!(!got.text.contains("backend died"), "{}", got.text);
    assert_eq!(got.json()[0]["choices"][0]["delta"]["content"], "Hi");
    let last = got.last();
    assert_eq!(last["error"]["metadata"]["provider_code"], "server_error");
    assert_gateway_error(&got, &store);
}

#[tokio::test(start_paused = true)]
async fn a_provider_error_split_across_frames_is_dropped_whole() {
    // The content event and the error event arrive cut at arbitrary places.
    let store = GenerationStore::new(10);
    let up = Upstream::new(vec![Script::new(&[
        "data: {\"id\":\"up\",\"model\":\"tr1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: {\"error\":{\"message\":\"key sk-ac",
        "me-0123456789abcdef\"}}\n\n",
    ])]);
    let got = run(&up, &store, |g| g).await;
    assert!(!got.text.contains("sk-ac"), "{}", got.text);
    assert_gateway_error(&got, &store);
}

#[tokio::test(start_paused = true)]
async fn b_stream_usage_is_asked_for_and_metered_exactly() {
    let store = GenerationStore::new(10);
    let mut script = Script::new(&[HI, STOP, USAGE, DONE]);
    script.usage_only_when_asked = true;
    let up = Upstream::new(vec![script]);
    let got = run(&up, &store, |g| g).await;
    let sent = up.bodies.lock().unwrap()[0].clone();
    assert_eq!(sent["stream_options"]["include_usage"], true, "{sent}");
    // The caller gets the usage chunk with the cost, and the record is exact, not estimated.
    let usage = got
        .json()
        .into_iter()
        .find(|e| e["usage"].is_object())
        .expect("a usage chunk");
    assert_eq!(usage["usage"]["prompt_tokens"], 7);
    let gen = store.records().pop().expect("a generation");
    assert!(!gen.usage_missing, "metered from the provider's usage");
    assert_eq!(gen.tokens.prompt, 7);
    assert_eq!(gen.tokens.completion, 3);
    assert_eq!(gen.cost, Usd::from_micros(7 + 6));
    assert!(got.text.ends_with("data: [DONE]\n\n"));
}

#[tokio::test(start_paused = true)]
async fn item1_a_stall_after_content_ends_with_the_error_chunk() {
    let store = GenerationStore::new(10);
    let mut script = Script::new(&[HI]);
    script.stall = true;
    let up = Upstream::new(vec![script]);
    let started = tokio::time::Instant::now();
    let got = run(&up, &store, |g| {
        g.fallback(|f| f.stream_idle_timeout(Duration::from_secs(5)))
    })
    .await;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
    assert_gateway_error(&got, &store);
    let gen = store.records().pop().unwrap();
    assert_eq!(
        gen.tokens.completion, 1,
        "the tokens seen are settled (estimated)"
    );
}

#[tokio::test(start_paused = true)]
async fn item1_the_default_idle_timeout_is_at_most_60_s() {
    let store = GenerationStore::new(10);
    let mut script = Script::new(&[HI]);
    script.stall = true;
    let up = Upstream::new(vec![script]);
    let started = tokio::time::Instant::now();
    let got = run(&up, &store, |g| g).await;
    assert!(
        started.elapsed() <= Duration::from_secs(61),
        "{:?}",
        started.elapsed()
    );
    assert_gateway_error(&got, &store);
}

#[tokio::test(start_paused = true)]
async fn item1_the_attempt_timeout_bounds_the_wait_for_the_first_token() {
    let store = GenerationStore::new(10);
    let mut script = Script::new(&[": OPENROUTER PROCESSING\n\n"]);
    script.stall = true;
    let up = Upstream::new(vec![script]);
    let up2 = up.clone();
    let client = tower::service_fn(move |req| {
        let res = up2.answer(req);
        async move { Ok::<_, Infallible>(res) }
    });
    // The fallback's own bound, without the KeepAlive head that would answer `200` after 1 s
    // (tests/keep_alive.rs covers that).
    let gateway = GatewayLayer::new(catalog())
        .keep_alive(KeepAliveLayer::disabled())
        .fallback(|f| f.attempt_timeout(Duration::from_secs(10)));
    let svc = ServiceBuilder::new().layer(gateway).service(client);
    let body = format!(
        r#"{{"model":"{MODEL}","stream":true,"messages":[{{"role":"user","content":"hi"}}]}}"#
    );
    let started = tokio::time::Instant::now();
    let res = svc
        .oneshot(
            Request::post("/")
                .body(Full::new(Bytes::from(body)))
                .unwrap(),
        )
        .await
        .expect("response");
    let waited = started.elapsed();
    assert!(
        res.status().is_server_error() || res.status() == 408,
        "{}",
        res.status()
    );
    assert!(
        waited <= Duration::from_secs(11),
        "{waited:?}: 60 s first-token default not bounded"
    );
    drop(store);
}

#[tokio::test(start_paused = true)]
async fn item2_a_malformed_event_after_content_is_not_passed_on() {
    let store = GenerationStore::new(10);
    let up = Upstream::new(vec![Script::new(&[
        HI,
        "data: {\"id\": \"gen-x\", \"choi\n\n",
        HI,
        DONE,
    ])]);
    let got = run(&up, &store, |g| g).await;
    // Every event the caller gets decodes; the stream ends with the gateway's error.
    let _ = got.json();
    assert!(!got.text.contains("choi\n"), "{}", got.text);
    assert_eq!(got.json().len(), 2, "{}", got.text);
    assert_gateway_error(&got, &store);
}

#[tokio::test(start_paused = true)]
async fn item2_events_split_anywhere_still_arrive_whole_and_in_order() {
    // The same good stream, cut into 7-byte frames: the caller gets the same events.
    let whole: String = [HI, HI, STOP, USAGE, DONE].concat();
    let pieces: Vec<&'static str> = {
        let leaked: &'static str = Box::leak(whole.clone().into_boxed_str());
        let mut v = Vec::new();
        let mut at = 0;
        while at < leaked.len() {
            let end = (at + 7).min(leaked.len());
            v.push(&leaked[at..end]);
            at = end;
        }
        v
    };
    let store = GenerationStore::new(10);
    let up = Upstream::new(vec![Script::new(&pieces)]);
    let got = run(&up, &store, |g| g).await;
    let contents: Vec<Value> = got
        .json()
        .iter()
        .map(|e| e["choices"][0]["delta"]["content"].clone())
        .collect();
    assert_eq!(contents[..2], [Value::from("Hi"), Value::from("Hi")]);
    assert!(got.text.ends_with("data: [DONE]\n\n"), "{}", got.text);
    let gen = store.records().pop().unwrap();
    assert!(!gen.error);
    assert_eq!(gen.tokens.prompt, 7);
}

#[tokio::test(start_paused = true)]
async fn item3_the_error_chunk_carries_the_generation_id_and_requested_model() {
    // An upstream whose serializer puts spaces after `:` (Python's json.dumps): the gateway's own
    // compact error chunk does not match the byte patterns learned from its chunks.
    let spaced = "data: {\"id\": \"up\", \"object\": \"chat.completion.chunk\", \"model\": \"tr1\", \"choices\": [{\"index\": 0, \"delta\": {\"content\": \"Hi\"}}]}\n\n";
    let store = GenerationStore::new(10);
    let up = Upstream::new(vec![Script::new(&[spaced, spaced])]); // ends without [DONE]
    let got = run(&up, &store, |g| g).await;
    assert_eq!(got.json()[0]["model"], MODEL);
    assert_gateway_error(&got, &store);
}

#[tokio::test(start_paused = true)]
async fn nothing_after_done_is_passed_on() {
    // Found by fuzzing: a provider that goes on after `[DONE]` (here with a garbled event).
    let store = GenerationStore::new(10);
    let up = Upstream::new(vec![Script::new(&[
        HI,
        STOP,
        USAGE,
        "data: [DONE]\n\ndata: {\"zz",
        "zz\":[]}\n\ndata: {\"error\"\n\n",
    ])]);
    let got = run(&up, &store, |g| g).await;
    assert!(got.text.ends_with("data: [DONE]\n\n"), "{}", got.text);
    assert!(!got.text.contains("zz"), "{}", got.text);
    assert!(!store.records().pop().unwrap().error);
}

#[tokio::test(start_paused = true)]
async fn a_form_feed_before_the_json_is_an_invalid_event() {
    // Found by fuzzing: `trim_ascii` strips a form feed, which is no JSON whitespace; such an
    // event was taken for valid JSON and passed on as it came, not JSON to the caller.
    let store = GenerationStore::new(10);
    let bad = "data:\u{c}{\"id\":\"up\",\"object\":\"chat.completion.chunk\",\"model\":\"tr1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n";
    let up = Upstream::new(vec![Script::new(&[HI, bad, STOP, USAGE, DONE])]);
    let got = run(&up, &store, |g| g).await;
    assert!(!got.text.contains('\u{c}'), "{}", got.text);
    assert_gateway_error(&got, &store);
}

/// The `data` of every event of `text`, read as an SSE client reads it: lines end at CRLF, LF or a
/// lone CR; an event's data is its `data:` lines joined by `\n`; events without data are skipped.
fn client_events(text: &str) -> Vec<String> {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    text.split("\n\n")
        .map(|e| {
            e.split('\n')
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|d| !d.is_empty())
        .collect()
}

/// Every event a client reads in `got` is `[DONE]` or JSON.
fn assert_client_reads_json(got: &Got) -> Vec<Value> {
    client_events(&got.text)
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| {
            serde_json::from_str(e)
                .unwrap_or_else(|_| panic!("a client reads {e:?} in {:?}", got.text))
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn usage_split_over_two_data_lines_stays_data_when_edited() {
    // Found by AFL++ on `sse_streams`: an event whose JSON spans two `data:` lines is JSON to the
    // caller (its lines joined by `\n`); the meter's edit (adding `cost`) wrote it back behind one
    // `data:`, and the second line was then no data field to the caller.
    let store = GenerationStore::new(10);
    let split = "data: {\"id\":\"up\",\"choices\":[],\ndata: \"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"total_tokens\":10}}\n\n";
    let up = Upstream::new(vec![Script::new(&[HI, STOP, split, DONE])]);
    let got = run(&up, &store, |g| g).await;
    let events = assert_client_reads_json(&got);
    let usage = events.last().expect("the usage chunk");
    assert_eq!(usage["usage"]["prompt_tokens"], 7, "{}", got.text);
    assert!(usage["usage"]["cost"].is_number(), "{}", got.text);
    assert!(got.text.ends_with("data: [DONE]\n\n"), "{}", got.text);
    let rec = store.records().pop().expect("a generation");
    assert_eq!((rec.tokens.prompt, rec.tokens.completion), (7, 3));
    assert!(!rec.usage_missing && !rec.error);
}

#[tokio::test(start_paused = true)]
async fn a_lone_cr_inside_an_event_ends_a_line_as_the_caller_reads_it() {
    // Found by AFL++ on `sse_streams`: to an SSE client a lone CR ends a line, so this event's data
    // is `{"id":"up","choices":[]`, not JSON. The gateway took the CR for JSON whitespace and passed
    // the event on; now it reads it as the caller would, and ends the stream with its error.
    let store = GenerationStore::new(10);
    let bad = "data: {\"id\":\"up\",\"choices\":[]\r,\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"total_tokens\":10}}\n\n";
    let up = Upstream::new(vec![Script::new(&[HI, bad, DONE])]);
    let got = run(&up, &store, |g| g).await;
    assert_client_reads_json(&got);
    assert!(!got.text.contains('\r'), "{:?}", got.text);
    assert_gateway_error(&got, &store);
}

#[tokio::test(start_paused = true)]
async fn a_stream_with_lone_cr_line_ends_is_read_and_metered() {
    // The SSE rules allow a lone CR as every line end; such a stream is content, usage and [DONE].
    let store = GenerationStore::new(10);
    let cr =
        |s: &'static str| -> &'static str { Box::leak(s.replace('\n', "\r").into_boxed_str()) };
    let up = Upstream::new(vec![Script::new(&[cr(HI), cr(STOP), cr(USAGE), cr(DONE)])]);
    let got = run(&up, &store, |g| g).await;
    let events = assert_client_reads_json(&got);
    assert_eq!(events[0]["choices"][0]["delta"]["content"], "Hi");
    assert_eq!(client_events(&got.text).last().unwrap(), "[DONE]");
    let rec = store.records().pop().expect("a generation");
    assert_eq!((rec.tokens.prompt, rec.tokens.completion), (7, 3));
    assert!(!rec.usage_missing && !rec.error);
}

#[tokio::test(start_paused = true)]
async fn a_crlf_cut_between_frames_is_one_line_end() {
    // `\r` ending one frame and `\n` starting the next are one line end, not a blank line: the
    // event below has two data lines and is one JSON document.
    let store = GenerationStore::new(10);
    let up = Upstream::new(vec![Script::new(&[
        HI,
        "data: {\"id\":\"up\",\"choices\":[],\r",
        "\ndata: \"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"total_tokens\":10}}\r\n\r\n",
        DONE,
    ])]);
    let got = run(&up, &store, |g| g).await;
    let events = assert_client_reads_json(&got);
    assert_eq!(events.last().unwrap()["usage"]["prompt_tokens"], 7);
    let rec = store.records().pop().expect("a generation");
    assert_eq!(rec.tokens.prompt, 7);
    assert!(!rec.usage_missing && !rec.error);
}
