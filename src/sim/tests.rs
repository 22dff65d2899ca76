use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body as _;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use tokio::time::Instant;
use tower::ServiceExt;

use super::rng::SimRng;
use super::*;

const HOST: &str = "p.sim";
const MODEL: &str = "vendor/model-x";

fn chat(stream: bool, max_tokens: Option<u64>) -> Value {
    let mut v = json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": "0123456789abcdef0123"}],
        "stream": stream,
    });
    if let Some(m) = max_tokens {
        v["max_tokens"] = json!(m);
    }
    v
}

fn req_to(uri: &str, body: &Value) -> Request<Full<Bytes>> {
    Request::post(uri)
        .header("authorization", "Bearer sk-test")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("valid request")
}

fn req(body: &Value) -> Request<Full<Bytes>> {
    req_to("http://p.sim/v1/chat/completions", body)
}

fn sim_with(seed: u64, profile: SimProfile) -> SimulatedProvider {
    SimulatedProvider::builder(seed).host(HOST, profile).build()
}

fn handle(sim: &SimulatedProvider) -> ProfileHandle {
    sim.handle(HOST).expect("profile registered")
}

async fn send(sim: &SimulatedProvider, body: &Value) -> Result<Response<SimBody>, SimError> {
    sim.clone().oneshot(req(body)).await
}

/// Reads every frame with its arrival offset; stops at the end or at an error.
async fn frames(body: &mut SimBody, t0: Instant) -> (Vec<(Duration, Bytes)>, Option<SimError>) {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Ok(d) = f.into_data() {
                    out.push((t0.elapsed(), d));
                }
            }
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

/// A parsed SSE transcript.
#[derive(Debug, Default)]
struct Sse {
    chunks: Vec<Value>,
    invalid: usize,
    keep_alives: usize,
    done: bool,
    content: String,
    finish: Option<String>,
    usage: Option<Value>,
}

fn parse_sse(frames: &[(Duration, Bytes)]) -> Sse {
    let mut text = String::new();
    for (_, b) in frames {
        text.push_str(std::str::from_utf8(b).expect("utf-8"));
    }
    let mut sse = Sse::default();
    for event in text.split("\n\n").filter(|e| !e.is_empty()) {
        for line in event.lines() {
            if line.starts_with(':') {
                sse.keep_alives += 1;
                continue;
            }
            let data = line.strip_prefix("data: ").expect("data line");
            assert!(!sse.done, "nothing after [DONE]");
            if data == "[DONE]" {
                sse.done = true;
                continue;
            }
            let Ok(v) = serde_json::from_str::<Value>(data) else {
                sse.invalid += 1;
                continue;
            };
            assert_eq!(v["object"], "chat.completion.chunk");
            assert_eq!(v["model"], MODEL);
            assert!(v["id"].as_str().expect("id").starts_with("chatcmpl-"));
            if let Some(c) = v["choices"][0]["delta"]["content"].as_str() {
                sse.content.push_str(c);
            }
            if let Some(f) = v["choices"][0]["finish_reason"].as_str() {
                sse.finish = Some(f.to_owned());
            }
            if !v["usage"].is_null() {
                assert_eq!(v["choices"], json!([]));
                sse.usage = Some(v["usage"].clone());
            }
            sse.chunks.push(v);
        }
    }
    sse
}

async fn json_answer(sim: &SimulatedProvider, body: &Value) -> Value {
    let res = send(sim, body).await.expect("answer");
    assert_eq!(res.status(), 200);
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    serde_json::from_slice(&bytes).expect("json")
}

async fn sse_answer(sim: &SimulatedProvider, body: &Value) -> (Sse, Vec<(Duration, Bytes)>) {
    let t0 = Instant::now();
    let res = send(sim, body).await.expect("answer");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut body = res.into_body();
    let (frames, err) = frames(&mut body, t0).await;
    assert!(err.is_none());
    assert!(body.is_end_stream());
    (parse_sse(&frames), frames)
}

#[tokio::test(start_paused = true)]
async fn json_shape() {
    let sim = sim_with(1, SimProfile::instant());
    let v = json_answer(&sim, &chat(false, None)).await;
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], MODEL);
    assert!(v["id"].as_str().expect("id").starts_with("chatcmpl-"));
    assert!(v["created"].is_u64());
    let choice = &v["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["finish_reason"], "stop");
    let content = choice["message"]["content"].as_str().expect("content");
    let words = content.split(' ').count() as u64;
    let usage = &v["usage"];
    // 20 content bytes -> 5 prompt tokens.
    assert_eq!(usage["prompt_tokens"], 5);
    assert_eq!(usage["completion_tokens"], words);
    assert_eq!(usage["total_tokens"], 5 + words);
    assert!((16..=64).contains(&words));
    assert_eq!(handle(&sim).stats().completed, 1);
}

#[tokio::test(start_paused = true)]
async fn sse_shape() {
    let sim = sim_with(1, SimProfile::instant());
    let (sse, _) = sse_answer(&sim, &chat(true, None)).await;
    assert!(sse.done);
    assert_eq!(sse.invalid, 0);
    let first = &sse.chunks[0]["choices"][0];
    assert_eq!(first["delta"], json!({"role": "assistant", "content": ""}));
    assert!(first["finish_reason"].is_null());
    let n = sse.chunks.len();
    assert_eq!(sse.chunks[n - 2]["choices"][0]["finish_reason"], "stop");
    assert_eq!(sse.chunks[n - 1]["choices"], json!([]));
    let usage = sse.usage.expect("usage");
    assert_eq!(
        usage["completion_tokens"],
        sse.content.split(' ').count() as u64
    );
    let stats = handle(&sim).stats();
    assert_eq!(
        (stats.requests, stats.completed, stats.in_flight),
        (1, 1, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn stream_and_json_agree() {
    for profile in [SimProfile::instant(), SimProfile::default()] {
        for cap in [None, Some(7)] {
            let json = json_answer(&sim_with(9, profile.clone()), &chat(false, cap)).await;
            let (sse, _) = sse_answer(&sim_with(9, profile.clone()), &chat(true, cap)).await;
            assert_eq!(
                json["choices"][0]["message"]["content"],
                sse.content.as_str()
            );
            assert_eq!(json["usage"], sse.usage.expect("usage"));
            assert_eq!(
                json["choices"][0]["finish_reason"],
                sse.finish.as_deref().expect("finish")
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn max_tokens_caps() {
    let profile = SimProfile::instant().with_output_tokens(SimOutputLength::fixed(20));
    let sim = sim_with(3, profile);
    let v = json_answer(&sim, &chat(false, Some(4))).await;
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 4);
    let v = json_answer(&sim, &chat(false, Some(20))).await;
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["completion_tokens"], 20);
    let mut body = chat(false, Some(50));
    body["max_completion_tokens"] = json!(2);
    let v = json_answer(&sim, &body).await;
    assert_eq!(v["usage"]["completion_tokens"], 2);
    let (sse, _) = sse_answer(&sim, &chat(true, Some(0))).await;
    assert_eq!(sse.content, "");
    assert_eq!(sse.finish.as_deref(), Some("length"));
}

async fn error_body(res: Response<SimBody>) -> Value {
    assert_eq!(res.headers()["content-type"], "application/json");
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    let v: Value = serde_json::from_slice(&bytes).expect("json");
    assert!(v["error"]["message"].is_string());
    assert!(v["error"]["type"].is_string());
    v
}

#[tokio::test(start_paused = true)]
async fn status_failures() {
    let profile = SimProfile::default()
        .with_retry_after(Duration::from_millis(2500))
        .with_retry_after_ms(true)
        .with_script([
            SimOutcome::Status(503),
            SimOutcome::Status(429),
            SimOutcome::Status(500),
            SimOutcome::Status(502),
            SimOutcome::Status(529),
            SimOutcome::Status(400),
            SimOutcome::Status(1000),
        ]);
    let sim = sim_with(1, profile);
    let t0 = Instant::now();
    for (code, ty) in [
        (503, "server_error"),
        (429, "rate_limit_error"),
        (500, "server_error"),
        (502, "server_error"),
        (529, "overloaded_error"),
        (400, "invalid_request_error"),
        (500, "server_error"),
    ] {
        let res = send(&sim, &chat(true, None)).await.expect("answer");
        assert_eq!(res.status(), code);
        if code == 429 {
            assert_eq!(res.headers()["retry-after"], "3");
            assert_eq!(res.headers()["retry-after-ms"], "2500");
        } else {
            assert!(res.headers().get("retry-after").is_none());
        }
        assert_eq!(error_body(res).await["error"]["type"], ty);
    }
    assert_eq!(t0.elapsed(), Duration::ZERO, "errors answer at once");
    assert_eq!(handle(&sim).script_len(), 0);
    let stats = handle(&sim).stats();
    assert_eq!((stats.requests, stats.completed), (7, 7));
}

#[tokio::test(start_paused = true)]
async fn connect_error_and_stall() {
    let sim = sim_with(
        1,
        SimProfile::instant().with_script([SimOutcome::ConnectError, SimOutcome::Stall]),
    );
    let err = send(&sim, &chat(false, None))
        .await
        .expect_err("connect error");
    assert!(err.is_connect());
    assert!(!err.is_aborted());
    let t0 = Instant::now();
    let stalled =
        tokio::time::timeout(Duration::from_secs(3600), send(&sim, &chat(false, None))).await;
    assert!(stalled.is_err());
    assert_eq!(t0.elapsed(), Duration::from_secs(3600));
    let stats = handle(&sim).stats();
    assert_eq!(
        (
            stats.requests,
            stats.completed,
            stats.cancelled,
            stats.in_flight
        ),
        (2, 1, 1, 0)
    );
}

#[tokio::test(start_paused = true)]
async fn stall_body_stream() {
    let profile = SimProfile::instant()
        .with_output_tokens(SimOutputLength::fixed(10))
        .with_fail_after_tokens(1)
        .with_min_event_interval(Duration::from_millis(5))
        .with_script([SimOutcome::StallBody]);
    let sim = sim_with(1, profile);
    let res = send(&sim, &chat(true, None)).await.expect("head");
    let mut body = res.into_body();
    let role = body.frame().await.expect("frame").expect("ok");
    assert!(std::str::from_utf8(role.data_ref().expect("data"))
        .expect("utf8")
        .contains("\"role\""));
    let first = body.frame().await.expect("frame").expect("ok");
    assert!(first.data_ref().is_some());
    let next = tokio::time::timeout(Duration::from_secs(600), body.frame()).await;
    assert!(next.is_err(), "the stream stalls");
    assert_eq!(handle(&sim).stats().in_flight, 1);
    drop(body);
    let stats = handle(&sim).stats();
    assert_eq!((stats.in_flight, stats.cancelled), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn timeout_delays_head() {
    let profile = SimProfile::instant()
        .with_timeout_delay(Duration::from_secs(90))
        .with_script([SimOutcome::Timeout, SimOutcome::Timeout]);
    let sim = sim_with(1, profile);
    let t0 = Instant::now();
    let v = json_answer(&sim, &chat(false, None)).await;
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(t0.elapsed(), Duration::from_secs(90));
    let (sse, _) = sse_answer(&sim, &chat(true, None)).await;
    assert!(sse.done);
    assert_eq!(t0.elapsed(), Duration::from_secs(180));
}

#[tokio::test(start_paused = true)]
async fn malformed_json() {
    let profile = SimProfile::instant().with_script([
        SimOutcome::MalformedJson,
        SimOutcome::MalformedJson,
        SimOutcome::Ok,
    ]);
    let sim = sim_with(1, profile);
    let res = send(&sim, &chat(false, None)).await.expect("answer");
    assert_eq!(res.status(), 200);
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    assert!(serde_json::from_slice::<Value>(&bytes).is_err());

    let (sse, _) = sse_answer(&sim, &chat(true, None)).await;
    assert_eq!(sse.invalid, 1);
    assert!(sse.done);
    // Apart from the bad line the stream is the normal one.
    let sim2 = sim_with(1, SimProfile::instant());
    json_answer(&sim2, &chat(false, None)).await;
    let (normal, _) = sse_answer(&sim2, &chat(true, None)).await;
    assert_eq!(sse.content, normal.content);
    assert_eq!(sse.usage, normal.usage);
}

#[tokio::test(start_paused = true)]
async fn truncated() {
    let profile = SimProfile::default()
        .with_output_tokens(SimOutputLength::fixed(10))
        .with_script([SimOutcome::Truncated, SimOutcome::Truncated]);
    let sim = sim_with(1, profile);
    let (sse, frames) = sse_answer(&sim, &chat(true, None)).await;
    assert!(!sse.done);
    assert!(sse.finish.is_none());
    assert!(sse.usage.is_none());
    assert_eq!(sse.content.split(' ').count(), 5);
    assert!(!frames.is_empty());
    let res = send(&sim, &chat(false, None)).await.expect("answer");
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    assert!(serde_json::from_slice::<Value>(&bytes).is_err());
    let stats = handle(&sim).stats();
    assert_eq!((stats.completed, stats.cancelled), (2, 0));
}

#[tokio::test(start_paused = true)]
async fn mid_stream_error() {
    let profile = SimProfile::instant()
        .with_output_tokens(SimOutputLength::fixed(12))
        .with_fail_after_tokens(3)
        .with_script([SimOutcome::MidStreamError, SimOutcome::MidStreamError]);
    let sim = sim_with(1, profile);
    let (sse, _) = sse_answer(&sim, &chat(true, None)).await;
    assert!(!sse.done);
    assert_eq!(sse.content.split(' ').count(), 3);
    let last = sse.chunks.last().expect("chunks");
    assert_eq!(last["error"]["code"], 502);
    assert!(last["error"]["message"].is_string());
    assert_eq!(last["choices"][0]["finish_reason"], "error");
    assert_eq!(last["choices"][0]["delta"]["content"], "");

    let v = json_answer(&sim, &chat(false, None)).await;
    assert_eq!(v["choices"][0]["finish_reason"], "error");
    assert_eq!(v["choices"][0]["error"]["code"], 502);
    assert_eq!(v["usage"]["completion_tokens"], 3);
}

#[tokio::test(start_paused = true)]
async fn body_error() {
    let profile = SimProfile::instant()
        .with_output_tokens(SimOutputLength::fixed(12))
        .with_script([SimOutcome::BodyError, SimOutcome::BodyError]);
    let sim = sim_with(1, profile);
    let res = send(&sim, &chat(true, None)).await.expect("head");
    let mut body = res.into_body();
    let (frames, err) = frames(&mut body, Instant::now()).await;
    assert!(err.expect("error frame").is_aborted());
    let sse = parse_sse(&frames);
    assert_eq!(sse.content.split(' ').count(), 6);
    assert!(body.frame().await.is_none());

    let res = send(&sim, &chat(false, None)).await.expect("head");
    assert_eq!(res.status(), 200);
    let err = res.into_body().collect().await.expect_err("error frame");
    assert!(err.is_aborted());
    let stats = handle(&sim).stats();
    assert_eq!((stats.completed, stats.cancelled), (2, 0));
}

#[tokio::test(start_paused = true)]
async fn failure_rates() {
    let profile = SimProfile::instant()
        .with_failure(SimOutcome::Status(503), 0.2)
        .with_failure(SimOutcome::Status(429), 0.1);
    let sim = sim_with(11, profile);
    let (mut s503, mut s429) = (0, 0);
    for _ in 0..2000 {
        let res = send(&sim, &chat(false, None)).await.expect("answer");
        match res.status().as_u16() {
            503 => s503 += 1,
            429 => s429 += 1,
            _ => {}
        }
    }
    assert!((330..=470).contains(&s503), "{s503}");
    assert!((150..=250).contains(&s429), "{s429}");
}

async fn transcript(seed: u64) -> (Vec<Value>, Vec<(Duration, Bytes)>) {
    let profile = SimProfile::default()
        .with_failure(SimOutcome::Status(503), 0.3)
        .with_keep_alive(Duration::from_millis(300));
    let sim = sim_with(seed, profile);
    let mut answers = Vec::new();
    let mut timed = Vec::new();
    for i in 0..6 {
        let res = send(&sim, &chat(i % 2 == 0, None)).await.expect("answer");
        let status = res.status().as_u16();
        let t0 = Instant::now();
        let (f, _) = frames(&mut res.into_body(), t0).await;
        answers.push(json!(status));
        timed.extend(f);
    }
    (answers, timed)
}

#[tokio::test(start_paused = true)]
async fn determinism() {
    let a = transcript(5).await;
    let b = transcript(5).await;
    assert_eq!(a, b);
    let c = transcript(6).await;
    assert_ne!(a.1, c.1);
}

#[test]
fn ttft_distribution_matches_percentiles() {
    let lat = SimLatency::lognormal(Duration::from_millis(400), Duration::from_millis(2000));
    assert_eq!(lat.p50(), Duration::from_millis(400));
    let p99 = lat.p99().as_secs_f64();
    assert!((p99 - 2.0).abs() < 1e-6, "{p99}");
    let mut rng = SimRng::new(2024);
    let mut xs: Vec<f64> = (0..10_000)
        .map(|_| lat.sample(&mut rng).as_secs_f64())
        .collect();
    xs.sort_by(f64::total_cmp);
    let p50 = xs[5_000];
    let p99 = xs[9_900];
    assert!((p50 / 0.4 - 1.0).abs() < 0.05, "p50 {p50}");
    assert!((p99 / 2.0 - 1.0).abs() < 0.15, "p99 {p99}");
    assert!(xs.iter().all(|x| x.is_finite() && *x > 0.0));
}

#[test]
fn from_observed_and_odd_input() {
    let p = SimProfile::from_observed(350.0, 2400.0, 85.0);
    assert_eq!(p.ttft().p50(), Duration::from_millis(350));
    assert!((p.ttft().p99().as_secs_f64() - 2.4).abs() < 1e-6);
    assert_eq!(p.throughput(), Some(85.0));
    let odd = SimProfile::from_observed(f64::NAN, -1.0, f64::INFINITY);
    assert_eq!(odd, SimProfile::default());
    let fixed = SimProfile::from_observed(500.0, 100.0, 10.0);
    assert_eq!(fixed.ttft(), SimLatency::fixed(Duration::from_millis(500)));
    assert_eq!(SimProfile::instant().throughput(), None);
    assert_eq!(SimOutputLength::range(9, 3), SimOutputLength::range(3, 9));
}

#[tokio::test(start_paused = true)]
async fn throughput_pacing() {
    let profile = SimProfile::default()
        .with_ttft(SimLatency::fixed(Duration::from_millis(200)))
        .with_throughput(50.0)
        .with_output_tokens(SimOutputLength::fixed(100));
    let sim = sim_with(1, profile.clone());
    let (sse, frames) = sse_answer(&sim, &chat(true, None)).await;
    assert_eq!(sse.usage.expect("usage")["completion_tokens"], 100);
    // role + 100 single-token events + finish + usage + [DONE]
    assert_eq!(frames.len(), 104);
    assert_eq!(frames[0].0, Duration::from_millis(200));
    let end = frames.last().expect("frames").0;
    // first token at 200 ms, then 99 more at 20 ms each.
    assert_eq!(end, Duration::from_millis(200 + 99 * 20));

    // Non-streamed: the head waits for the whole generation.
    let t0 = Instant::now();
    json_answer(&sim, &chat(false, None)).await;
    assert_eq!(t0.elapsed(), Duration::from_millis(200 + 99 * 20));

    // Fast generation packs several tokens per event.
    let fast = sim_with(1, profile.with_throughput(2000.0));
    let (sse, frames) = sse_answer(&fast, &chat(true, None)).await;
    assert_eq!(sse.content.split(' ').count(), 100);
    assert_eq!(frames.len(), 1 + 10 + 3);
    let end = frames.last().expect("frames").0.as_secs_f64();
    assert!((end - (0.2 + 99.0 / 2000.0)).abs() < 1e-3, "{end}");
}

#[tokio::test(start_paused = true)]
async fn keep_alives_before_first_token() {
    let profile = SimProfile::instant()
        .with_ttft(SimLatency::fixed(Duration::from_millis(3500)))
        .with_keep_alive(Duration::from_secs(1));
    let sim = sim_with(1, profile);
    let (sse, frames) = sse_answer(&sim, &chat(true, None)).await;
    assert_eq!(sse.keep_alives, 3);
    assert_eq!(frames[0].0, Duration::from_secs(1));
    assert_eq!(frames[3].0, Duration::from_millis(3500));
    assert!(sse.done);
}

#[tokio::test(start_paused = true)]
async fn cancellation_is_counted() {
    let profile = SimProfile::default()
        .with_ttft(SimLatency::fixed(Duration::from_millis(100)))
        .with_throughput(10.0)
        .with_output_tokens(SimOutputLength::fixed(50));
    let sim = sim_with(1, profile);
    let h = handle(&sim);

    // Body dropped mid-stream.
    let res = send(&sim, &chat(true, None)).await.expect("head");
    let mut body = res.into_body();
    for _ in 0..3 {
        body.frame().await.expect("frame").expect("ok");
    }
    assert_eq!(h.stats().in_flight, 1);
    drop(body);
    let s = h.stats();
    assert_eq!(
        (s.requests, s.in_flight, s.cancelled, s.completed),
        (1, 0, 1, 0)
    );

    // Future dropped while the non-streamed answer is being generated.
    let fut = sim.clone().oneshot(req(&chat(false, None)));
    let timed_out = tokio::time::timeout(Duration::from_secs(1), fut).await;
    assert!(timed_out.is_err());
    let s = h.stats();
    assert_eq!((s.requests, s.in_flight, s.cancelled), (2, 0, 2));

    // A stream read to the end completes.
    sse_answer(&sim, &chat(true, None)).await;
    let s = h.stats();
    assert_eq!(
        (s.requests, s.in_flight, s.cancelled, s.completed),
        (3, 0, 2, 1)
    );
    assert_eq!(sim.total_stats(), s);
}

#[tokio::test(start_paused = true)]
async fn routing_and_recording() {
    let sim = SimulatedProvider::builder(1)
        .host(
            "http://a.sim/v1",
            SimProfile::instant().with_output_tokens(SimOutputLength::fixed(3)),
        )
        .host_model(
            "a.sim",
            "special",
            SimProfile::instant().with_output_tokens(SimOutputLength::fixed(4)),
        )
        .host(
            "b.sim:8080",
            SimProfile::instant().with_script([SimOutcome::Status(503)]),
        )
        .build();

    let v: Value = {
        let res = sim
            .clone()
            .oneshot(req_to(
                "http://a.sim/v1/chat/completions",
                &chat(false, None),
            ))
            .await
            .expect("answer");
        serde_json::from_slice(&res.into_body().collect().await.expect("body").to_bytes())
            .expect("json")
    };
    assert_eq!(v["usage"]["completion_tokens"], 3);
    let mut special = chat(false, None);
    special["model"] = json!("special");
    let res = sim
        .clone()
        .oneshot(req_to("http://A.sim/v1/chat/completions", &special))
        .await
        .expect("answer");
    let v: Value =
        serde_json::from_slice(&res.into_body().collect().await.expect("body").to_bytes())
            .expect("json");
    assert_eq!(v["usage"]["completion_tokens"], 4);
    assert_eq!(v["model"], "special");

    let res = sim
        .clone()
        .oneshot(req_to(
            "http://b.sim:8080/chat/completions",
            &chat(false, None),
        ))
        .await
        .expect("answer");
    assert_eq!(res.status(), 503);

    // Unknown host: 404 (no default profile).
    let res = sim
        .clone()
        .oneshot(req_to(
            "http://c.sim/v1/chat/completions",
            &chat(false, None),
        ))
        .await
        .expect("answer");
    assert_eq!(res.status(), 404);
    assert_eq!(error_body(res).await["error"]["code"], "not_found");
    // Wrong path and wrong method.
    let res = sim
        .clone()
        .oneshot(req_to("http://a.sim/v1/audio/speech", &chat(false, None)))
        .await
        .expect("answer");
    assert_eq!(res.status(), 404);
    let get = Request::get("http://a.sim/v1/chat/completions")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let res = sim.clone().oneshot(get).await.expect("answer");
    assert_eq!(res.status(), 404);
    // Malformed request JSON: 400.
    let bad = Request::post("http://a.sim/v1/chat/completions")
        .body(Full::new(Bytes::from_static(b"{nope")))
        .expect("request");
    let res = sim.clone().oneshot(bad).await.expect("answer");
    assert_eq!(res.status(), 400);
    assert_eq!(
        error_body(res).await["error"]["type"],
        "invalid_request_error"
    );

    let a = sim.handle("a.sim").expect("a");
    assert_eq!(a.stats().requests, 2, "the 400 was routed to a.sim too");
    let last = a.last_request().expect("recorded");
    assert_eq!(last.body, Bytes::from_static(b"{nope"));
    let special_handle = sim
        .model_handle("http://a.sim/v1", "special")
        .expect("special");
    let last = special_handle.last_request().expect("recorded");
    assert_eq!(last.model().as_deref(), Some("special"));
    assert_eq!(last.bearer(), Some("sk-test"));
    assert_eq!(last.uri.path(), "/v1/chat/completions");
    assert_eq!(
        sim.route("a.sim", Some("special")).expect("route").label(),
        "a.sim special"
    );
    assert_eq!(
        sim.route("b.sim:8080", None).expect("route").label(),
        "b.sim:8080"
    );
    assert!(sim.route("c.sim", None).is_none());
    assert!(sim.default_handle().is_none());
}

#[test]
fn instant_profile_never_touches_timers() {
    // A runtime without a time driver: creating a `Sleep` would panic.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let sim = sim_with(1, SimProfile::instant());
        let v = json_answer(&sim, &chat(false, None)).await;
        assert_eq!(v["object"], "chat.completion");
        let res = send(&sim, &chat(true, None)).await.expect("answer");
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        assert!(bytes.ends_with(b"data: [DONE]\n\n"));
    });
}

#[test]
fn sim_types_are_send_sync() {
    fn assert_send<T: Send>() {}
    fn assert_sync<T: Sync>() {}
    fn assert_unpin<T: Unpin>() {}
    assert_unpin::<SimBody>();
    assert_send::<SimBody>();
    assert_send::<ResponseFuture>();
    assert_send::<SimulatedProvider>();
    assert_sync::<SimulatedProvider>();
    assert_send::<SimError>();
    assert_sync::<SimError>();
}

/// Anthropic-wire answers: the text of the message and its parsed SSE events.
/// Each comes from a fresh provider with `seed`, so both are request number 0 of the profile.
async fn anthropic_answers(seed: u64, max_tokens: u64) -> (Value, Vec<Value>, String) {
    let sim = sim_with(seed, SimProfile::instant());
    let body = json!({
        "model": MODEL,
        "max_tokens": max_tokens,
        "system": "0123",
        "messages": [{"role": "user", "content": "0123456789abcdef"}],
    });
    let res = sim
        .clone()
        .oneshot(req_to("http://p.sim/v1/messages", &body))
        .await
        .expect("answer");
    assert_eq!(res.status(), 200);
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    let json: Value = serde_json::from_slice(&bytes).expect("json");

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let sim = sim_with(seed, SimProfile::instant());
    let res = sim
        .clone()
        .oneshot(req_to("http://p.sim/v1/messages", &streamed))
        .await
        .expect("answer");
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    let text = String::from_utf8(bytes.to_vec()).expect("utf-8");
    let mut events = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut name = None;
        let mut data = None;
        for line in block.lines() {
            if let Some(n) = line.strip_prefix("event: ") {
                name = Some(n.to_string());
            } else if let Some(d) = line.strip_prefix("data: ") {
                data = Some(serde_json::from_str::<Value>(d).expect("event json"));
            }
        }
        let data = data.expect("data line");
        assert_eq!(
            name.as_deref(),
            data["type"].as_str(),
            "event name matches type"
        );
        events.push(data);
    }
    (json, events, text)
}

#[tokio::test(start_paused = true)]
async fn anthropic_wire_json_and_sse() {
    let (json, events, text) = anthropic_answers(7, 4096).await;
    assert_eq!(json["type"], "message");
    assert_eq!(json["role"], "assistant");
    assert_eq!(json["model"], MODEL);
    assert!(json["id"].as_str().expect("id").starts_with("msg_"));
    assert_eq!(json["content"][0]["type"], "text");
    assert_eq!(json["stop_reason"], "end_turn");
    // 4 system bytes + 16 message bytes = 20 bytes = 5 tokens.
    assert_eq!(json["usage"]["input_tokens"], 5);
    let out = json["usage"]["output_tokens"]
        .as_u64()
        .expect("output tokens");
    let content = json["content"][0]["text"].as_str().expect("text");
    assert_eq!(content.split(' ').count() as u64, out);

    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(types.first(), Some(&"message_start"));
    assert_eq!(types.get(1), Some(&"ping"));
    assert_eq!(types.get(2), Some(&"content_block_start"));
    assert_eq!(
        &types[types.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    assert!(!text.contains("[DONE]"));
    assert_eq!(events[0]["message"]["usage"]["input_tokens"], 5);
    let streamed: String = events
        .iter()
        .filter(|e| e["type"] == "content_block_delta")
        .map(|e| {
            assert_eq!(e["delta"]["type"], "text_delta");
            e["delta"]["text"].as_str().expect("text").to_string()
        })
        .collect();
    assert_eq!(streamed, content, "same seeded content as the JSON answer");
    let delta = &events[events.len() - 2];
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], out);
}

#[tokio::test(start_paused = true)]
async fn anthropic_wire_matches_openai_wire_and_caps() {
    // Same seed and request number: the two wires agree on content and token counts.
    let openai = sim_with(11, SimProfile::instant());
    let body = json!({
        "model": MODEL,
        "max_tokens": 3,
        "messages": [{"role": "system", "content": "0123"},
                     {"role": "user", "content": "0123456789abcdef"}],
    });
    let chat_json = json_answer(&openai, &body).await;
    let (json, events, _) = anthropic_answers(11, 3).await;
    assert_eq!(json["stop_reason"], "max_tokens");
    assert_eq!(json["usage"]["output_tokens"], 3);
    assert_eq!(
        json["usage"]["input_tokens"],
        chat_json["usage"]["prompt_tokens"]
    );
    assert_eq!(
        json["content"][0]["text"],
        chat_json["choices"][0]["message"]["content"]
    );
    assert_eq!(
        events[events.len() - 2]["delta"]["stop_reason"],
        "max_tokens"
    );
}

#[tokio::test(start_paused = true)]
async fn anthropic_wire_errors() {
    let sim = sim_with(3, SimProfile::instant());
    handle(&sim).push_script([SimOutcome::Status(529)]);
    let body = json!({"model": MODEL, "max_tokens": 5, "messages": []});
    let res = sim
        .clone()
        .oneshot(req_to("http://p.sim/v1/messages", &body))
        .await
        .expect("answer");
    assert_eq!(res.status(), 529);
    let v = error_body(res).await;
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "overloaded_error");

    handle(&sim).push_script([SimOutcome::MidStreamError]);
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let res = sim
        .clone()
        .oneshot(req_to("http://p.sim/v1/messages", &streamed))
        .await
        .expect("answer");
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("event: error\ndata: {\"type\":\"error\""),
        "{text}"
    );
    assert!(!text.contains("message_stop"));
}
