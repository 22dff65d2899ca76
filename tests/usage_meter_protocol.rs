//! UsageMeter's service protocol, driven with tower-test: readiness propagates, a budget is reserved
//! only for a request that is being called, and every await point — the reservation, the inner
//! call, the response body — releases or settles the reservation exactly once when it is dropped.
//! Also the non-streamed body that arrives whole: edited in place, with an exact `size_hint`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Semaphore};
use tower::ServiceBuilder;
use tower_ai_gateway::body::GatewayBody;
use tower_ai_gateway::catalog::{Catalog, Usd};
use tower_ai_gateway::clock::ManualClock;
use tower_ai_gateway::model_routing::{ModelRouting, ModelRoutingLayer};
use tower_ai_gateway::usage_meter::{
    CallerKey, GenerationRecord, InMemoryLedger, KeyUsage, Ledger, LedgerFuture, Period, Refusal,
    Reservation, ResponseBody, UsageMeter, UsageMeterLayer,
};
use tower_test::mock;

const DEMO: &[u8] = include_bytes!("fixtures/catalog/demo-catalog.json");
/// 2026-11-22T02:52:00Z.
const NOW: i64 = 1_795_315_920_000;
const MODEL: &str = "anthropic/claude-sonnet-4.5";

// ===== helpers =====

/// An in-memory ledger that counts settlements and releases, and whose reservations can be held
/// back behind a gate (a remote store that has not answered yet).
#[derive(Clone)]
struct Counting {
    inner: InMemoryLedger,
    gate: Arc<Semaphore>,
    reserves: Arc<AtomicUsize>,
    settles: Arc<AtomicUsize>,
    releases: Arc<AtomicUsize>,
}

impl Counting {
    fn new(open: bool) -> Self {
        let clock = ManualClock::new(NOW);
        Counting {
            inner: InMemoryLedger::new(clock).limit("k", Period::Day, Usd::parse("10").unwrap()),
            gate: Arc::new(Semaphore::new(if open {
                Semaphore::MAX_PERMITS
            } else {
                0
            })),
            reserves: Arc::default(),
            settles: Arc::default(),
            releases: Arc::default(),
        }
    }

    fn open(&self) {
        self.gate.add_permits(Semaphore::MAX_PERMITS);
    }

    fn usage(&self) -> KeyUsage {
        self.inner.usage_now(&CallerKey::new("k"))
    }

    /// (reservations made, settled, released).
    fn counts(&self) -> (usize, usize, usize) {
        (
            self.reserves.load(Ordering::SeqCst),
            self.settles.load(Ordering::SeqCst),
            self.releases.load(Ordering::SeqCst),
        )
    }
}

impl Ledger for Counting {
    fn reserve(
        &self,
        key: &CallerKey,
        amount: Usd,
        unix_millis: i64,
    ) -> LedgerFuture<Result<Reservation, Refusal>> {
        let this = self.clone();
        let key = key.clone();
        Box::pin(async move {
            let _permit = this.gate.acquire().await.expect("gate open");
            let r = this.inner.reserve(&key, amount, unix_millis).await;
            this.reserves.fetch_add(1, Ordering::SeqCst);
            r
        })
    }

    fn settle(&self, reservation: Reservation, actual: Usd) {
        self.settles.fetch_add(1, Ordering::SeqCst);
        self.inner.settle(reservation, actual);
    }

    fn release(&self, reservation: Reservation) {
        self.releases.fetch_add(1, Ordering::SeqCst);
        self.inner.release(reservation);
    }

    fn usage(&self, key: &CallerKey, unix_millis: i64) -> LedgerFuture<KeyUsage> {
        self.inner.usage(key, unix_millis)
    }
}

/// A response body fed through a channel: pending until the test sends a frame, ended when the
/// sender is dropped.
struct Chan(mpsc::UnboundedReceiver<Bytes>);

impl Body for Chan {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.0.poll_recv(cx).map(|f| f.map(|b| Ok(Frame::data(b))))
    }
}

/// A body with an exact `size_hint` that comes in `frames`, after `pending` polls that return
/// `Pending` (each waking the task at once).
struct Exact {
    frames: Vec<Bytes>,
    len: u64,
    pending: usize,
}

impl Exact {
    fn new(body: &str, parts: usize, pending: usize) -> Self {
        let b = Bytes::copy_from_slice(body.as_bytes());
        let step = b.len().div_ceil(parts);
        let frames = (0..b.len())
            .step_by(step)
            .map(|i| b.slice(i..(i + step).min(b.len())))
            .rev()
            .collect();
        Exact {
            frames,
            len: b.len() as u64,
            pending,
        }
    }
}

impl Body for Exact {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.pending > 0 {
            self.pending -= 1;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let f = self.frames.pop();
        if let Some(f) = &f {
            self.len -= f.len() as u64;
        }
        Poll::Ready(f.map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.len)
    }
}

fn request(stream: bool) -> Request<Full<Bytes>> {
    let body = json!({"model": MODEL, "max_tokens": 10, "stream": stream,
                      "messages": [{"role": "user", "content": "hi"}]});
    let mut req = Request::post("/v1/chat/completions")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    req.extensions_mut().insert(CallerKey::new("k"));
    req
}

type Req = Request<Full<Bytes>>;

type Records = Arc<Mutex<Vec<Arc<GenerationRecord>>>>;

fn meter(ledger: &Counting) -> (UsageMeterLayer, Records) {
    let records: Records = Arc::default();
    let r = records.clone();
    let layer = UsageMeterLayer::new()
        .clock(ManualClock::new(NOW))
        .ledger(ledger.clone())
        .sink(move |g: &GenerationRecord| r.lock().unwrap().push(Arc::new(g.clone())));
    (layer, records)
}

/// Polls `f` once.
async fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *f).poll(cx))).await
}

const ANSWER: &str = r#"{"id":"up-1","object":"chat.completion","model":"claude-sonnet-4-5","choices":[{"index":0,"message":{"role":"assistant","content":"Done."},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}"#;

fn json_response<B>(body: B) -> Response<B> {
    Response::builder()
        .header("content-type", "application/json")
        .header("content-length", "999")
        .body(body)
        .unwrap()
}

macro_rules! assert_pending {
    ($e:expr) => {
        assert!($e.is_pending(), "expected pending")
    };
}

macro_rules! assert_ready_ok {
    ($e:expr) => {
        assert!(matches!($e, Poll::Ready(Ok(()))), "expected ready")
    };
}

// ===== readiness =====

#[tokio::test]
async fn readiness_propagates_from_the_inner_service() {
    let (mut svc, mut handle) =
        mock::spawn_layer::<Request<Full<Bytes>>, Response<Full<Bytes>>, _>(UsageMeterLayer::new());
    handle.allow(0);
    assert_pending!(svc.poll_ready::<Req>());
    handle.allow(1);
    assert!(svc.is_woken());
    assert_ready_ok!(svc.poll_ready::<Req>());

    // `UsageMeter::new(inner)` (the defaults) behaves the same.
    let (inner, mut handle) = mock::pair::<Request<Full<Bytes>>, Response<Full<Bytes>>>();
    let mut svc = tower_test::mock::Spawn::new(UsageMeter::new(inner));
    handle.allow(0);
    assert_pending!(svc.poll_ready::<Req>());
    handle.allow(1);
    assert_ready_ok!(svc.poll_ready::<Req>());
}

#[tokio::test]
async fn no_budget_is_reserved_while_the_inner_service_is_not_ready() {
    let ledger = Counting::new(true);
    let (layer, _) = meter(&ledger);
    let stack = ServiceBuilder::new()
        .layer(ModelRoutingLayer::new(Catalog::from_json(DEMO).unwrap()))
        .layer(layer)
        .into_inner();
    let (mut svc, mut handle) =
        mock::spawn_layer::<Request<Full<Bytes>>, Response<Full<Bytes>>, _>(stack);
    handle.allow(0);
    assert_pending!(svc.poll_ready::<Req>());
    assert_pending!(svc.poll_ready::<Req>());
    assert_eq!(ledger.usage().reserved, Usd::ZERO);
    assert_eq!(ledger.counts(), (0, 0, 0));

    handle.allow(1);
    assert_ready_ok!(svc.poll_ready::<Req>());
    let mut fut = Box::pin(svc.call(request(false)));
    assert!(poll_once(&mut fut).await.is_pending());
    // Called: the reservation is made, then the inner service gets the request.
    let (_req, send) = handle.next_request().await.expect("called");
    assert!(ledger.usage().reserved > Usd::ZERO);
    send.send_response(json_response(Full::new(Bytes::from_static(
        ANSWER.as_bytes(),
    ))));
    let res = fut.await.unwrap();
    res.into_body().collect().await.unwrap();
    assert_eq!(ledger.usage().reserved, Usd::ZERO);
    assert_eq!(ledger.counts(), (1, 1, 0));
}

// ===== cancellation at each await point =====

/// The stack ModelRouting → UsageMeter over a tower-test mock, made ready once.
type MockStack = ModelRouting<UsageMeter<mock::Mock<Request<Full<Bytes>>, Response<Chan>>>>;

type MockHandle = mock::Handle<Req, Response<Chan>>;

fn ready_stack(ledger: &Counting) -> (mock::Spawn<MockStack>, MockHandle, Records) {
    let (layer, records) = meter(ledger);
    let stack = ServiceBuilder::new()
        .layer(ModelRoutingLayer::new(Catalog::from_json(DEMO).unwrap()))
        .layer(layer)
        .into_inner();
    let (svc, handle) = mock::spawn_layer::<Request<Full<Bytes>>, Response<Chan>, _>(stack);
    (svc, handle, records)
}

#[tokio::test]
async fn dropped_while_reserving_holds_nothing_and_never_calls() {
    let ledger = Counting::new(false);
    let (mut svc, mut handle, records) = ready_stack(&ledger);
    handle.allow(1);
    assert_ready_ok!(svc.poll_ready::<Req>());
    let mut fut = Box::pin(svc.call(request(false)));
    assert!(poll_once(&mut fut).await.is_pending());
    assert_eq!(ledger.counts(), (0, 0, 0), "the reservation is pending");
    drop(fut);
    ledger.open();
    tokio::task::yield_now().await;
    assert!(poll_once(&mut Box::pin(handle.next_request()))
        .await
        .is_pending());
    assert_eq!(ledger.counts(), (0, 0, 0));
    let u = ledger.usage();
    assert_eq!((u.reserved, u.usage), (Usd::ZERO, Usd::ZERO));
    assert!(records.lock().unwrap().is_empty());
}

#[tokio::test]
async fn dropped_while_the_inner_call_is_pending_releases_once() {
    let ledger = Counting::new(true);
    let (mut svc, mut handle, records) = ready_stack(&ledger);
    handle.allow(1);
    assert_ready_ok!(svc.poll_ready::<Req>());
    let mut fut = Box::pin(svc.call(request(false)));
    assert!(poll_once(&mut fut).await.is_pending());
    let (_req, send) = handle.next_request().await.expect("called");
    assert!(poll_once(&mut fut).await.is_pending());
    assert!(ledger.usage().reserved > Usd::ZERO);
    drop(fut);
    drop(send);
    assert_eq!(ledger.counts(), (1, 0, 1));
    let u = ledger.usage();
    assert_eq!((u.reserved, u.usage), (Usd::ZERO, Usd::ZERO));
    assert!(records.lock().unwrap().is_empty(), "nothing was generated");
}

#[tokio::test]
async fn body_dropped_mid_stream_settles_once() {
    let ledger = Counting::new(true);
    let (mut svc, mut handle, records) = ready_stack(&ledger);
    handle.allow(1);
    assert_ready_ok!(svc.poll_ready::<Req>());
    let fut = svc.call(request(true));
    let respond = async {
        let (_req, send) = handle.next_request().await.expect("called");
        let (tx, rx) = mpsc::unbounded_channel();
        let res = Response::builder()
            .header("content-type", "text/event-stream")
            .body(Chan(rx))
            .unwrap();
        send.send_response(res);
        tx
    };
    let (res, tx) = tokio::join!(fut, respond);
    let mut body = Box::pin(res.unwrap().into_body());
    assert!(poll_once(&mut Box::pin(body.frame())).await.is_pending());
    tx.send(Bytes::from_static(
        b"data: {\"id\":\"up-1\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello there\"},\"finish_reason\":null}]}\n\n",
    ))
    .unwrap();
    let frame = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(frame.starts_with(b"data: {\"id\":\"gen-"), "{frame:?}");
    assert!(ledger.usage().reserved > Usd::ZERO);
    drop(body);
    assert_eq!(ledger.counts(), (1, 1, 0));
    let u = ledger.usage();
    assert_eq!(u.reserved, Usd::ZERO);
    let recs = records.lock().unwrap();
    assert_eq!(recs.len(), 1);
    assert!(recs[0].cancelled && recs[0].usage_missing && recs[0].streamed);
    assert_eq!(u.usage, recs[0].cost);
    assert!(u.usage > Usd::ZERO, "an estimate, never free");
    drop(tx);
}

#[tokio::test]
async fn an_error_response_releases_once() {
    let ledger = Counting::new(true);
    let (mut svc, mut handle, records) = ready_stack(&ledger);
    handle.allow(1);
    assert_ready_ok!(svc.poll_ready::<Req>());
    let fut = svc.call(request(false));
    let respond = async {
        let (_req, send) = handle.next_request().await.expect("called");
        let (tx, rx) = mpsc::unbounded_channel();
        tx.send(Bytes::from_static(br#"{"error":{"code":503}}"#))
            .unwrap();
        drop(tx);
        let mut res = Response::new(Chan(rx));
        *res.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
        send.send_response(res);
    };
    let (res, ()) = tokio::join!(fut, respond);
    let res = res.unwrap();
    assert_eq!(res.status(), 503);
    res.into_body().collect().await.unwrap();
    assert_eq!(ledger.counts(), (1, 0, 1));
    assert_eq!(ledger.usage().reserved, Usd::ZERO);
    assert!(records.lock().unwrap().is_empty());
}

// ===== a non-streamed answer that arrives whole =====

/// Calls ModelRouting → UsageMeter over an upstream answering `body` (made by `make`).
async fn answer<B>(
    ledger: &Counting,
    make: impl Fn() -> B + Clone + Send + 'static,
) -> (Response<GatewayBody<ResponseBody<B>>>, Records)
where
    B: Body<Data = Bytes> + Send + 'static,
{
    let (layer, records) = meter(ledger);
    let svc = ServiceBuilder::new()
        .layer(ModelRoutingLayer::new(Catalog::from_json(DEMO).unwrap()))
        .layer(layer)
        .service(tower::service_fn(move |_req: Request<Full<Bytes>>| {
            let make = make.clone();
            async move { Ok::<_, std::convert::Infallible>(json_response(make())) }
        }));
    let res = tower::ServiceExt::oneshot(svc, request(false))
        .await
        .unwrap();
    (res, records)
}

fn check_edited(bytes: &[u8], records: &Records) {
    let v: Value = serde_json::from_slice(bytes).unwrap();
    let recs = records.lock().unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(v["id"], &*recs[0].id);
    assert_eq!(v["model"], MODEL);
    assert_eq!(v["provider"], &*recs[0].provider_name);
    assert_eq!(v["usage"]["cost"].to_string(), recs[0].cost.to_string());
    assert!(!recs[0].usage_missing && !recs[0].cancelled);
}

#[tokio::test]
async fn a_whole_answer_is_edited_in_place_with_an_exact_length() {
    let ledger = Counting::new(true);
    let (res, records) = answer(&ledger, || Full::new(Bytes::from_static(ANSWER.as_bytes()))).await;
    // The upstream's length is wrong after the edit: the header goes, the body knows the new one.
    assert!(res.headers().get("content-length").is_none());
    let hint = res.body().size_hint().exact().expect("exact size_hint");
    assert!(
        ledger.usage().reserved > Usd::ZERO,
        "settled when the body is read"
    );
    assert!(records.lock().unwrap().is_empty());
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(hint, bytes.len() as u64);
    check_edited(&bytes, &records);
    assert_eq!(ledger.counts(), (1, 1, 0));
    assert_eq!(ledger.usage().reserved, Usd::ZERO);
}

#[tokio::test]
async fn a_whole_answer_dropped_unread_settles_once_as_cancelled() {
    let ledger = Counting::new(true);
    let (res, records) = answer(&ledger, || Full::new(Bytes::from_static(ANSWER.as_bytes()))).await;
    drop(res);
    assert_eq!(ledger.counts(), (1, 1, 0));
    let recs = records.lock().unwrap();
    assert_eq!(recs.len(), 1);
    assert!(recs[0].cancelled);
    assert_eq!(ledger.usage().reserved, Usd::ZERO);
}

#[tokio::test]
async fn answers_in_several_frames_or_late_are_edited_the_same() {
    // (frames, pending polls before the first): a body in several frames, or not ready when the
    // head arrives, is read whole before the response is returned, which then has its exact
    // length too; the generation is settled when the consumer takes the body.
    for (parts, pending) in [(1, 0), (3, 0), (1, 2), (4, 1)] {
        let ledger = Counting::new(true);
        let (res, records) = answer(&ledger, move || Exact::new(ANSWER, parts, pending)).await;
        assert!(res.headers().get("content-length").is_none());
        let hint = res.body().size_hint().exact().expect("exact size_hint");
        assert!(records.lock().unwrap().is_empty());
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            hint,
            bytes.len() as u64,
            "{parts} frames, {pending} pending"
        );
        check_edited(&bytes, &records);
        assert_eq!(
            ledger.counts(),
            (1, 1, 0),
            "{parts} frames, {pending} pending"
        );
    }
}

/// What a [`Scripted`] body does when polled next.
enum Step {
    Data(&'static str),
    Trailers,
    Fail,
    /// Pending for ever (never woken).
    Stall,
}

/// A body with a fixed exact `size_hint` (`hint`, which may be a lie) that plays `steps`.
struct Scripted {
    steps: std::collections::VecDeque<Step>,
    hint: u64,
    polls: Arc<AtomicUsize>,
}

impl Scripted {
    fn new(hint: usize, steps: Vec<Step>) -> (Self, Arc<AtomicUsize>) {
        let polls = Arc::new(AtomicUsize::new(0));
        let body = Scripted {
            steps: steps.into(),
            hint: hint as u64,
            polls: polls.clone(),
        };
        (body, polls)
    }
}

impl Body for Scripted {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        match self.steps.pop_front() {
            None => Poll::Ready(None),
            Some(Step::Data(s)) => {
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(s.as_bytes())))))
            }
            Some(Step::Trailers) => {
                let mut t = http::HeaderMap::new();
                t.insert("x-checksum", "abc".parse().unwrap());
                Poll::Ready(Some(Ok(Frame::trailers(t))))
            }
            Some(Step::Fail) => Poll::Ready(Some(Err(std::io::Error::other("reset")))),
            Some(Step::Stall) => {
                self.steps.push_front(Step::Stall);
                Poll::Pending
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.hint)
    }
}

/// Serves one `Scripted` body (taken from `slot`) to ModelRouting → UsageMeter.
async fn scripted_answer(
    ledger: &Counting,
    body: Scripted,
) -> (Response<GatewayBody<ResponseBody<Scripted>>>, Records) {
    let slot = Arc::new(Mutex::new(Some(body)));
    answer(ledger, move || {
        slot.lock().unwrap().take().expect("one call")
    })
    .await
}

#[tokio::test]
async fn an_answer_failing_while_read_whole_fails_through_its_body_and_settles_once() {
    let ledger = Counting::new(true);
    let (half, _) = ANSWER.split_at(40);
    let (body, _) = Scripted::new(ANSWER.len(), vec![Step::Data(half), Step::Fail]);
    let (res, records) = scripted_answer(&ledger, body).await;
    assert_eq!(res.status(), 200);
    assert!(records.lock().unwrap().is_empty(), "settled by the body");
    let mut body = res.into_body();
    let err = body
        .frame()
        .await
        .expect("a frame")
        .expect_err("the body's error");
    assert_eq!(err.to_string(), "reset");
    assert!(body.frame().await.is_none());
    assert_eq!(ledger.counts(), (1, 1, 0));
    let recs = records.lock().unwrap();
    assert_eq!(recs.len(), 1);
    assert!(recs[0].error && recs[0].usage_missing && !recs[0].cancelled);
    assert!(recs[0].cost > Usd::ZERO, "an estimate, never free");
    assert_eq!(ledger.usage().reserved, Usd::ZERO);
}

#[tokio::test]
async fn an_answer_read_whole_keeps_its_trailers() {
    let ledger = Counting::new(true);
    let (a, b) = ANSWER.split_at(100);
    let steps = vec![Step::Data(a), Step::Data(b), Step::Trailers];
    let (body, _) = Scripted::new(ANSWER.len(), steps);
    let (res, records) = scripted_answer(&ledger, body).await;
    let collected = res.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("the trailers");
    assert_eq!(trailers["x-checksum"], "abc");
    check_edited(&collected.to_bytes(), &records);
    assert_eq!(ledger.counts(), (1, 1, 0));
}

#[tokio::test]
async fn a_body_longer_than_its_length_is_not_read_past_it() {
    // The body says 50 bytes, sends the whole answer in two frames, then never ends: the meter
    // stops reading once it has more than it was told, and answers with what it read.
    let ledger = Counting::new(true);
    let (a, b) = ANSWER.split_at(30);
    let steps = vec![Step::Data(a), Step::Data(b), Step::Stall];
    let (body, polls) = Scripted::new(50, steps);
    let (res, records) = scripted_answer(&ledger, body).await;
    assert_eq!(
        polls.load(Ordering::SeqCst),
        2,
        "not polled past the overrun"
    );
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    check_edited(&bytes, &records);
    assert_eq!(ledger.counts(), (1, 1, 0));
}

#[tokio::test]
async fn dropped_while_the_answer_is_read_whole_settles_once_as_cancelled() {
    let ledger = Counting::new(true);
    let (a, _) = ANSWER.split_at(60);
    let (body, polls) = Scripted::new(ANSWER.len(), vec![Step::Data(a), Step::Stall]);
    let slot = Arc::new(Mutex::new(Some(body)));
    let (layer, records) = meter(&ledger);
    let svc = ServiceBuilder::new()
        .layer(ModelRoutingLayer::new(Catalog::from_json(DEMO).unwrap()))
        .layer(layer)
        .service(tower::service_fn(move |_req: Request<Full<Bytes>>| {
            let body = slot.lock().unwrap().take().expect("one call");
            async move { Ok::<_, std::convert::Infallible>(json_response(body)) }
        }));
    let mut fut = Box::pin(tower::ServiceExt::oneshot(svc, request(false)));
    assert!(poll_once(&mut fut).await.is_pending(), "reading the answer");
    assert_eq!(polls.load(Ordering::SeqCst), 2);
    assert!(records.lock().unwrap().is_empty());
    drop(fut);
    assert_eq!(ledger.counts(), (1, 1, 0));
    let recs = records.lock().unwrap();
    assert_eq!(recs.len(), 1);
    assert!(recs[0].cancelled && recs[0].usage_missing);
    assert_eq!(ledger.usage().reserved, Usd::ZERO);
}
