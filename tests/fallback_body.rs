//! ProviderFallback sends the body it receives: a layer between UsageMeter and ProviderFallback
//! that edits the body is seen upstream. Non-streamed answers are one frame of exact size.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tower::{Layer, ServiceBuilder, ServiceExt};
use tower_ai_gateway::catalog::{Catalog, Credentials, Endpoint, Model, Provider};
use tower_ai_gateway::fallback::ProviderFallbackLayer;
use tower_ai_gateway::model_routing::ModelRoutingLayer;
use tower_ai_gateway::route::Route;
use tower_ai_gateway::usage_meter::UsageMeterLayer;

const MODEL: &str = "acme/chat";
const ANSWER: &str = r#"{"id":"gen-1","object":"chat.completion","model":"acme/chat","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;

fn catalog() -> Catalog {
    Catalog::builder()
        .model(Model::new(MODEL, "Acme Chat"))
        .provider(
            Provider::new("acme", "Acme")
                .base_url("http://acme.test/v1")
                .credentials(Credentials::key("sk-acme")),
        )
        .endpoint(Endpoint::new(MODEL, "acme"))
        .build()
        .expect("catalog")
}

/// Sends `{"model":…,"messages":[…"hello"…]}` through ModelRouting → UsageMeter → `edit` →
/// ProviderFallback → a client that records the upstream bodies.
async fn send(edit: fn(&str) -> String) -> (Response<impl Body<Data = Bytes>>, Vec<Value>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let client = tower::service_fn(move |req: Request<Full<Bytes>>| {
        let record = record.clone();
        async move {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            record
                .lock()
                .unwrap()
                .push(serde_json::from_slice::<Value>(&body).unwrap());
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
                ANSWER.as_bytes(),
            ))))
        }
    });
    let svc = ServiceBuilder::new()
        .layer(ModelRoutingLayer::new(catalog()))
        .layer(UsageMeterLayer::new())
        .map_request(move |req: Request<Full<Bytes>>| {
            let (parts, _) = req.into_parts();
            let route = parts.extensions.get::<Route>().expect("a route");
            let text = edit(std::str::from_utf8(route.body()).unwrap());
            Request::from_parts(parts, Full::new(Bytes::from(text)))
        })
        .layer(ProviderFallbackLayer::new())
        .service(client);
    let body = format!(r#"{{"model":"{MODEL}","messages":[{{"role":"user","content":"hello"}}]}}"#);
    let req = Request::post("/v1/chat/completions")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    (res, seen)
}

#[tokio::test]
async fn a_layer_between_usage_meter_and_fallback_edits_the_body_upstream() {
    let (res, seen) = send(|b| b.replace("hello", "hello, edited")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["messages"][0]["content"], "hello, edited");
    assert_eq!(seen[0]["model"], MODEL);

    // Untouched, the route's bytes are sent (with the upstream model spliced in).
    let (_, seen) = send(str::to_string).await;
    assert_eq!(seen[0]["messages"][0]["content"], "hello");
}

#[tokio::test]
async fn an_edited_body_that_no_longer_parses_is_a_400() {
    let (res, seen) = send(|_| "not json".to_string()).await;
    assert_eq!(res.status(), 400);
    assert!(seen.is_empty());
}

#[tokio::test]
async fn a_non_streamed_answer_is_one_frame_of_exact_size() {
    let client = tower::service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
            ANSWER.as_bytes(),
        ))))
    });
    let fallback = ProviderFallbackLayer::new().layer(client);
    // ProviderFallback's own response, looked at right under ModelRouting.
    let probe = tower::service_fn(move |req: Request<Full<Bytes>>| {
        let fallback = fallback.clone();
        async move {
            let res = fallback.oneshot(req).await?;
            let mut body = res.into_body();
            let exact = body.size_hint().exact().expect("an exact size_hint");
            let frame = body.frame().await.unwrap().unwrap();
            let data = frame.into_data().unwrap();
            assert_eq!(data.len() as u64, exact);
            assert!(body.is_end_stream());
            assert!(body.frame().await.is_none());
            Ok::<_, tower_ai_gateway::BoxError>(Response::new(Full::new(data)))
        }
    });
    let svc = ModelRoutingLayer::new(catalog()).layer(probe);
    let body = format!(r#"{{"model":"{MODEL}","messages":[{{"role":"user","content":"hello"}}]}}"#);
    let req = Request::post("/v1/chat/completions")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let answer = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(answer, ANSWER.as_bytes());
}
