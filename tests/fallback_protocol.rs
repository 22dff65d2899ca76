//! ProviderFallback at the protocol level: readiness and cancellation, with tower-test's mock and
//! an inner service whose futures and bodies report when they are dropped.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::Full;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_ai_gateway::catalog::{Catalog, Credentials, Endpoint, Model, Provider};
use tower_ai_gateway::fallback::ProviderFallbackLayer;
use tower_ai_gateway::model_routing::ModelRoutingLayer;
use tower_ai_gateway::route::ServedBy;
use tower_test::mock;

const MODEL: &str = "acme/chat";
const ANSWER: &str = r#"{"id":"gen-1","object":"chat.completion","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"hi"}}]}"#;

fn catalog() -> Catalog {
    let mut b = Catalog::builder().model(Model::new(MODEL, "Acme Chat"));
    for slug in ["one", "two"] {
        b = b
            .provider(
                Provider::new(slug, slug.to_uppercase())
                    .base_url(format!("http://{slug}.test/v1"))
                    .credentials(Credentials::key(format!("sk-{slug}"))),
            )
            .endpoint(Endpoint::new(MODEL, slug));
    }
    b.build().expect("catalog")
}

fn request(stream: bool) -> Request<Full<Bytes>> {
    let body = format!(
        r#"{{"model":"{MODEL}","messages":[{{"role":"user","content":"hi"}}],"stream":{stream},"provider":{{"order":["one","two"]}}}}"#
    );
    Request::post("/v1/chat/completions")
        .body(Full::new(Bytes::from(body)))
        .expect("request")
}

type Req = Request<Full<Bytes>>;

#[tokio::test]
async fn poll_ready_is_forwarded() {
    let (inner, mut handle) = mock::pair::<Req, Response<Full<Bytes>>>();
    let mut svc = mock::Spawn::new(ProviderFallbackLayer::new().layer(inner));
    handle.allow(0);
    assert!(svc.poll_ready::<Req>().is_pending());
    handle.allow(1);
    assert!(matches!(svc.poll_ready::<Req>(), Poll::Ready(Ok(()))));
}

/// Sends the request through ModelRouting → ProviderFallback → mock, answers the first attempt
/// with a 503, and returns the task with the inner service not ready again.
async fn first_attempt_fails() -> (
    tokio::task::JoinHandle<Result<Response<impl Body + Send>, tower_ai_gateway::BoxError>>,
    mock::Handle<Req, Response<Full<Bytes>>>,
) {
    let (inner, mut handle) = mock::pair::<Req, Response<Full<Bytes>>>();
    let mut svc = ServiceBuilder::new()
        .layer(ModelRoutingLayer::new(catalog()))
        .layer(ProviderFallbackLayer::new().no_budget())
        .service(inner);
    handle.allow(1);
    ServiceExt::<Req>::ready(&mut svc).await.unwrap();
    let task = tokio::spawn(svc.call(request(false)));
    let (first, send) = handle.next_request().await.expect("first attempt");
    assert_eq!(first.uri(), "http://one.test/v1/chat/completions");
    let unavailable = Response::builder()
        .status(StatusCode::SERVICE_UNAVAILABLE)
        .body(Full::new(Bytes::new()))
        .unwrap();
    send.send_response(unavailable);
    (task, handle)
}

#[tokio::test]
async fn a_later_attempt_waits_for_readiness_again() {
    let (task, mut handle) = first_attempt_fails().await;
    // The inner service is not ready: no second request goes out.
    let early = tokio::time::timeout(Duration::from_millis(100), handle.next_request()).await;
    assert!(
        early.is_err(),
        "the second attempt did not wait for poll_ready"
    );
    handle.allow(1);
    let (second, send) = handle.next_request().await.expect("second attempt");
    assert_eq!(second.uri(), "http://two.test/v1/chat/completions");
    send.send_response(Response::new(Full::new(Bytes::from_static(
        ANSWER.as_bytes(),
    ))));
    let res = task.await.unwrap().unwrap();
    assert_eq!(res.status(), 200);
    let served = res.extensions().get::<ServedBy>().unwrap();
    assert_eq!(&*served.provider_name, "TWO");
    let kinds: Vec<&str> = served.attempts.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds, ["server_error", "ok"]);
}

#[tokio::test]
async fn dropping_while_waiting_for_readiness_sends_nothing() {
    let (task, mut handle) = first_attempt_fails().await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    task.abort();
    assert!(task.await.is_err_and(|e| e.is_cancelled()));
    handle.allow(1);
    let late = tokio::time::timeout(Duration::from_millis(100), handle.next_request()).await;
    // Either nothing arrives, or the channel closed because every mock went away with the future.
    assert!(
        !matches!(late, Ok(Some(_))),
        "a request was sent after the caller went away"
    );
}

// ===== an inner service whose future and body report being dropped =====

#[derive(Clone, Copy)]
enum Hang {
    /// The response future never completes.
    Call,
    /// A `200` whose body never ends.
    Body,
    /// A `200` stream that sends a role-only chunk (no content), then nothing.
    Prime,
    /// A `200` stream that sends a content chunk, then nothing.
    Content,
}

struct Guard(Arc<AtomicBool>);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A body that yields its frames, then stays pending forever.
struct Hanging {
    frames: VecDeque<Bytes>,
    _guard: Guard,
}

impl Body for Hanging {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.frames.pop_front() {
            Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
            None => Poll::Pending,
        }
    }
}

#[derive(Clone)]
struct Hanger {
    hang: Hang,
    dropped: Arc<AtomicBool>,
}

type HangFuture = Pin<Box<dyn Future<Output = Result<Response<Hanging>, Infallible>> + Send>>;

impl Service<Req> for Hanger {
    type Response = Response<Hanging>;
    type Error = Infallible;
    type Future = HangFuture;
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, _req: Req) -> HangFuture {
        let guard = Guard(self.dropped.clone());
        let hang = self.hang;
        Box::pin(async move {
            let frames = match hang {
                Hang::Call => {
                    let _guard = guard;
                    std::future::pending::<()>().await;
                    unreachable!("a pending future never completes")
                }
                Hang::Body => VecDeque::from([Bytes::from_static(b"{\"id\":")]),
                Hang::Prime => VecDeque::from([Bytes::from_static(
                    b"data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
                )]),
                Hang::Content => VecDeque::from([Bytes::from_static(
                    b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n",
                )]),
            };
            Ok(Response::new(Hanging {
                frames,
                _guard: guard,
            }))
        })
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_the_future_at_each_await_point_drops_the_inner_future_or_body() {
    for (hang, stream) in [
        (Hang::Call, false),
        (Hang::Body, false),
        (Hang::Prime, true),
    ] {
        let dropped = Arc::new(AtomicBool::new(false));
        let svc = ServiceBuilder::new()
            .layer(ModelRoutingLayer::new(catalog()))
            .layer(ProviderFallbackLayer::new().no_budget())
            .service(Hanger {
                hang,
                dropped: dropped.clone(),
            });
        let mut fut = Box::pin(svc.oneshot(request(stream)));
        let r = tokio::time::timeout(Duration::from_millis(50), &mut fut).await;
        assert!(r.is_err(), "the response future completed");
        assert!(!dropped.load(Ordering::SeqCst), "dropped too early");
        drop(fut);
        assert!(
            dropped.load(Ordering::SeqCst),
            "the upstream was not cancelled"
        );
    }
}

/// A stream that stalls after content ends with the error chunk, and the upstream body is dropped
/// then (cancelling the upstream request), though the caller still holds the answer's body.
#[tokio::test(start_paused = true)]
async fn a_stream_ended_by_the_gateway_drops_the_upstream_body_at_once() {
    use http_body_util::BodyExt;
    let dropped = Arc::new(AtomicBool::new(false));
    let svc = ServiceBuilder::new()
        .layer(ModelRoutingLayer::new(catalog()))
        .layer(
            ProviderFallbackLayer::new()
                .no_budget()
                .stream_idle_timeout(Duration::from_secs(1)),
        )
        .service(Hanger {
            hang: Hang::Content,
            dropped: dropped.clone(),
        });
    let mut body = svc
        .oneshot(request(true))
        .await
        .expect("answer")
        .into_body();
    let first = body.frame().await.expect("a frame").expect("data");
    assert!(first.data_ref().is_some_and(|d| d.starts_with(b"data: ")));
    assert!(!dropped.load(Ordering::SeqCst), "dropped too early");
    let last = body.frame().await.expect("the error chunk").expect("data");
    let text = String::from_utf8_lossy(last.data_ref().expect("data")).into_owned();
    assert!(text.contains("stalled"), "{text}");
    assert!(
        dropped.load(Ordering::SeqCst),
        "the upstream body outlived the stream"
    );
    assert!(body.frame().await.is_none());
}
