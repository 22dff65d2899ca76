//! Issue 17 item 4, "no sign of life before the first token": a slow stream gets its head and SSE
//! comments before its first content, pre-content failover still works behind them, and an error
//! that comes after the head is sent in-band. Time is tokio's paused clock.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body::Body;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tower::{ServiceBuilder, ServiceExt};
use tower_ai_gateway::catalog::{Catalog, Credentials, Endpoint, Model, Provider, Usd};
use tower_ai_gateway::keep_alive::{KeepAliveLayer, KEEP_ALIVE_COMMENT};
use tower_ai_gateway::sim::{SimLatency, SimOutcome, SimProfile, SimulatedProvider};
use tower_ai_gateway::usage_meter::GenerationStore;
use tower_ai_gateway::GatewayLayer;

const MODEL: &str = "acme/chat";

fn catalog() -> Catalog {
    let mut b = Catalog::builder().model(Model::new(MODEL, "Acme Chat"));
    for (i, slug) in ["alpha", "beta"].into_iter().enumerate() {
        b = b.provider(
            Provider::new(slug, slug.to_uppercase())
                .base_url(format!("http://{slug}.sim/v1"))
                .credentials(Credentials::key(format!("sk-{slug}-secret-0123456789"))),
        );
        let mut e = Endpoint::new(MODEL, slug);
        e.pricing.prompt = Usd::from_micros(1 + i as i64);
        e.pricing.completion = Usd::from_micros(2 + i as i64);
        b = b.endpoint(e);
    }
    b.build().expect("catalog")
}

fn request(stream: bool) -> Request<Full<Bytes>> {
    let body = serde_json::json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": "Hi"}],
        "stream": stream,
        "provider": {"order": ["alpha", "beta"], "sort": null},
    });
    Request::post("/api/v1/chat/completions")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn slow(ttft: Duration) -> SimProfile {
    SimProfile::instant().with_ttft(SimLatency::fixed(ttft))
}

/// Reads the body frame by frame, noting when each came (seconds since `start`, paused clock).
async fn frames<B>(body: B, start: tokio::time::Instant) -> Vec<(f64, Bytes)>
where
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let mut body = std::pin::pin!(body);
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("no body error").into_data() {
            out.push((start.elapsed().as_secs_f64(), data));
        }
    }
    out
}

fn is_comment(b: &Bytes) -> bool {
    &b[..] == KEEP_ALIVE_COMMENT
}

#[tokio::test(start_paused = true)]
async fn item_4_slow_stream_gets_its_head_and_comments_before_the_first_token() {
    let sim = SimulatedProvider::builder(7)
        .default_profile(slow(Duration::from_millis(7_500)))
        .build();
    let store = GenerationStore::new(8);
    let gateway = GatewayLayer::new(catalog()).usage_meter(|m| m.sink(store.clone()));
    let svc = ServiceBuilder::new().layer(gateway).service(sim);
    let start = tokio::time::Instant::now();
    let res = svc.oneshot(request(true)).await.unwrap();
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(1),
        "the head goes out after the delay"
    );
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let id = res.headers()["x-generation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let frames = frames(res.into_body(), start).await;
    let comments: Vec<f64> = frames
        .iter()
        .filter(|(_, b)| is_comment(b))
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(
        comments,
        [1.0, 4.0, 7.0],
        "a comment at once, then every 3 s"
    );
    let content = &frames[comments.len()..];
    assert!(content.iter().all(|(t, b)| *t >= 7.5 && !is_comment(b)));
    let text: String = content
        .iter()
        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        .collect();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert!(
        text.contains(&format!("\"id\":\"{id}\"")),
        "the chunks carry the head's id"
    );
    let record = store
        .get(&id)
        .expect("the meter recorded the generation under the head's id");
    assert!(record.cost > Usd::from_micros(0) && !record.error);
}

#[tokio::test(start_paused = true)]
async fn item_4_failover_before_content_still_works_behind_the_comments() {
    let sim = SimulatedProvider::builder(7)
        .host(
            "alpha.sim",
            SimProfile::instant().with_script([SimOutcome::Stall]),
        )
        .host("beta.sim", slow(Duration::from_millis(2_000)))
        .build();
    let store = GenerationStore::new(8);
    // Alpha never answers: its attempt times out after the head and a comment went out.
    let gateway = GatewayLayer::new(catalog())
        .usage_meter(|m| m.sink(store.clone()))
        .fallback(|f| f.attempt_timeout(Duration::from_secs(2)));
    let svc = ServiceBuilder::new().layer(gateway).service(sim);
    let start = tokio::time::Instant::now();
    let res = svc.oneshot(request(true)).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    let id = res.headers()["x-generation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let frames = frames(res.into_body(), start).await;
    assert!(is_comment(&frames[0].1));
    let text: String = frames
        .iter()
        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        .collect();
    assert!(
        text.contains("\"content\""),
        "beta's content follows: {text}"
    );
    assert!(!text.contains("\"error\""), "{text}");
    let record = store.get(&id).expect("recorded");
    assert_eq!(&*record.provider_name, "BETA");
    assert_eq!(record.attempts, 2);
}

#[tokio::test(start_paused = true)]
async fn item_4_an_error_after_the_head_is_sent_in_band() {
    let sim = SimulatedProvider::builder(7)
        .default_profile(SimProfile::instant().with_failure(SimOutcome::Stall, 1.0))
        .build();
    let gateway =
        GatewayLayer::new(catalog()).fallback(|f| f.attempt_timeout(Duration::from_secs(2)));
    let svc = ServiceBuilder::new().layer(gateway).service(sim);
    let start = tokio::time::Instant::now();
    let res = svc.oneshot(request(true)).await.unwrap();
    assert_eq!(res.status(), 200, "the head went out before the failure");
    let id = res.headers()["x-generation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let frames = frames(res.into_body(), start).await;
    assert!(is_comment(&frames[0].1));
    let last = &frames.last().unwrap().1;
    let json: Value = serde_json::from_slice(
        last.strip_prefix(b"data: ")
            .unwrap()
            .strip_suffix(b"\n\n")
            .unwrap(),
    )
    .unwrap();
    assert_eq!(json["object"], "chat.completion.chunk");
    // The chunk reads as the stream's own: its generation id, the model asked for, and when.
    assert_eq!(json["id"], id.as_str());
    assert_eq!(json["model"], MODEL);
    assert!(
        json["created"].as_i64().is_some_and(|c| c > 1_600_000_000),
        "{json}"
    );
    assert_eq!(json["choices"][0]["finish_reason"], "error");
    let code = json["error"]["code"].as_u64().unwrap();
    assert!([502, 503, 504].contains(&code), "{json}");
    assert!(json["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert!(
        !String::from_utf8_lossy(last).contains("secret"),
        "no provider key"
    );
}

#[tokio::test(start_paused = true)]
async fn item_4_fast_streams_and_non_streamed_requests_are_untouched() {
    let sim = SimulatedProvider::builder(7)
        .default_profile(slow(Duration::from_millis(300)))
        .build();
    let svc = ServiceBuilder::new()
        .layer(GatewayLayer::new(catalog()))
        .service(sim.clone());
    let start = tokio::time::Instant::now();
    let res = svc.clone().oneshot(request(true)).await.unwrap();
    assert!(frames(res.into_body(), start)
        .await
        .iter()
        .all(|(_, b)| !is_comment(b)));

    // Not streamed, slower than the delay: the answer waits for its end, as before.
    let sim = SimulatedProvider::builder(7)
        .default_profile(slow(Duration::from_secs(5)))
        .build();
    let svc = ServiceBuilder::new()
        .layer(GatewayLayer::new(catalog()))
        .service(sim);
    let res = svc.oneshot(request(false)).await.unwrap();
    assert_eq!(res.headers()["content-type"], "application/json");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let json: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["object"], "chat.completion");
}

#[tokio::test(start_paused = true)]
async fn item_4_disabled_waits_for_the_first_content() {
    let sim = SimulatedProvider::builder(7)
        .default_profile(slow(Duration::from_millis(2_500)))
        .build();
    let gateway = GatewayLayer::new(catalog()).keep_alive(KeepAliveLayer::disabled());
    let svc = ServiceBuilder::new().layer(gateway).service(sim);
    let start = tokio::time::Instant::now();
    let res = svc.oneshot(request(true)).await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(2_500));
    assert!(frames(res.into_body(), start)
        .await
        .iter()
        .all(|(_, b)| !is_comment(b)));
}

#[tokio::test(start_paused = true)]
async fn item_4_responses_callers_get_the_comments_too() {
    use tower_ai_gateway::responses::ResponsesLayer;

    let sim = SimulatedProvider::builder(7)
        .default_profile(slow(Duration::from_millis(4_500)))
        .build();
    let svc = ServiceBuilder::new()
        .layer(ResponsesLayer::new())
        .layer(GatewayLayer::new(catalog()))
        .service(sim);
    let body = serde_json::json!({"model": MODEL, "input": "Hi", "stream": true});
    let req = Request::post("/api/v1/responses")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let start = tokio::time::Instant::now();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert_eq!(res.status(), 200);
    let frames = frames(res.into_body(), start).await;
    let comments: Vec<f64> = frames
        .iter()
        .filter(|(_, b)| is_comment(b))
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(comments, [1.0, 4.0]);
    let text: String = frames
        .iter()
        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        .collect();
    assert!(text.contains("event: response.completed"), "{text}");
}
