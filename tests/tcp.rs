//! The network path of the example gateway: a stream ends when its last event is sent, in both
//! directions and over HTTP/1.1 and HTTP/2.
//!
//! Before the example set `TCP_NODELAY` (on accepted connections and on the upstream connector),
//! every stream through a real upstream took 40–44 ms longer than the upstream itself over
//! HTTP/1.1 and ~88 ms over HTTP/2: a small write that followed another unacknowledged one waited
//! under Nagle's algorithm for an ACK that the peer delays by ~40 ms. The in-process simulator hid
//! it (it produces a whole stream in one poll, so the server writes it at once); a loopback
//! upstream that writes each event apart, as providers do, shows it on every stream.
//!
//! Each test runs several streams on one kept-alive connection and holds the median time from
//! request to end of body under 20 ms: generous next to the ~1 ms it takes with the fix (debug
//! build), and well under one delayed ACK. Measured with the fix removed: HTTP/1.1 ~44 ms,
//! HTTP/2 ~44–88 ms per stream; with it: ~1.1 ms.
//!
//! The example server's requests write nothing besides their data: tokio woke its own driver
//! through its eventfd (a `write`, then an `epoll_wait` that returns only that) on every request,
//! when hyper registered the next request's header read timer earlier than ProviderFallback's
//! attempt timer, until the server kept a timer due within a second (`server::timer_anchor`).
//!
//! And events that arrive together leave together: a burst of upstream events went out as one
//! `writev` per event (22 for the proxy benchmark's stream) until the example wrapped its
//! responses in `Coalesce`.

#![allow(dead_code)]

#[path = "../examples/gateway/app.rs"]
mod app;
#[path = "../examples/gateway/config.rs"]
mod config;
#[path = "support/example.rs"]
mod example;
#[path = "../examples/gateway/server.rs"]
mod server;
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::ServiceExt;

/// The bound on a stream's median time (a delayed ACK is ~40 ms).
const BOUND: Duration = Duration::from_millis(20);
/// Streams per check, all on one kept-alive connection.
const ROUNDS: usize = 7;

const STREAM: &str =
    r#"{"model":"openai/gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;

/// The demo gateway with zero-latency simulated providers, served with the example's listener.
async fn gateway() -> SocketAddr {
    let cfg = config::demo(7, true);
    let (router, _state) = app::build(cfg);
    support::serve(router).await.0
}

/// Reads a streamed body to its end, checking that it ends with `data: [DONE]`.
async fn read_stream(body: hyper::body::Incoming) -> Bytes {
    let bytes = body.collect().await.expect("body").to_bytes();
    assert!(
        bytes.windows(12).any(|w| w == b"data: [DONE]"),
        "the stream ends with data: [DONE]: {bytes:?}"
    );
    bytes
}

/// A client like a load generator's or an SDK's: pooled, kept-alive, `TCP_NODELAY` on its own
/// writes (a client without it delays its own requests; that is not the gateway's to fix).
fn client(http2: bool) -> Client<HttpConnector, Full<Bytes>> {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .http2_only(http2)
        .build(http)
}

/// The median time of `ROUNDS` streams, from sending the request to the end of the body, each on
/// the same connection of `client`.
async fn median_gap(client: &Client<HttpConnector, Full<Bytes>>, uri: &str) -> Duration {
    median_gap_for(client, uri, STREAM).await
}

async fn median_gap_for(
    client: &Client<HttpConnector, Full<Bytes>>,
    uri: &str,
    body: &'static str,
) -> Duration {
    let mut gaps = Vec::new();
    for _ in 0..ROUNDS {
        let req = Request::post(uri)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap();
        let start = Instant::now();
        let res = client.request(req).await.expect("response");
        assert_eq!(res.status(), 200);
        let body = read_stream(res.into_body()).await;
        let gap = start.elapsed();
        assert!(
            body.starts_with(b"data: ") || body.starts_with(b": "),
            "{body:?}"
        );
        gaps.push(gap);
    }
    gaps.sort();
    gaps[ROUNDS / 2]
}

#[tokio::test]
async fn http1_stream_from_the_simulator_ends_at_once() {
    let addr = gateway().await;
    let client = client(false);
    let gap = median_gap(&client, &format!("http://{addr}/api/v1/chat/completions")).await;
    assert!(
        gap < BOUND,
        "HTTP/1.1: a stream took {gap:?} (Nagle meeting a delayed ACK?)"
    );
}

#[tokio::test]
async fn http2_stream_from_the_simulator_ends_at_once() {
    let addr = gateway().await;
    let client = client(true);
    let gap = median_gap(&client, &format!("http://{addr}/api/v1/chat/completions")).await;
    assert!(
        gap < BOUND,
        "HTTP/2: a stream took {gap:?} (Nagle meeting a delayed ACK?)"
    );
}

/// A loopback upstream that answers every request on a kept-alive HTTP/1.1 connection with a
/// chunked event stream, each event and the closing chunk its own write, as a provider produces
/// them: that is what leaves the gateway's last write alone behind an unacknowledged one.
async fn upstream() -> SocketAddr {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut tcp, _) = listener.accept().await.unwrap();
            tcp.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while read_request(&mut tcp, &mut buf).await.is_some() {
                    let writes = [
                        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n".to_string(),
                        chunk(EVENT_1),
                        chunk(EVENT_2),
                        chunk("data: [DONE]\n\n"),
                        "0\r\n\r\n".to_string(),
                    ];
                    for w in writes {
                        if tcp.write_all(w.as_bytes()).await.is_err() {
                            return;
                        }
                        // Let the reader see each write apart, as it would from a provider.
                        tokio::task::yield_now().await;
                    }
                }
            });
        }
    });
    addr
}

/// Reads one request (the head, then `Content-Length` bytes of body) from `tcp`, keeping what
/// follows in `buf`; `None` when the connection ends.
async fn read_request(tcp: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        more(tcp, buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    while buf.len() < head_end + len {
        more(tcp, buf).await?;
    }
    buf.drain(..head_end + len);
    Some(())
}

/// Reads what `tcp` has into `buf`; `None` when the connection ends.
async fn more(tcp: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    use tokio::io::AsyncReadExt;
    let mut chunk = [0u8; 8192];
    match tcp.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}

/// One chunk of a chunked body.
fn chunk(payload: &str) -> String {
    format!("{:x}\r\n{payload}\r\n", payload.len())
}

const EVENT_1: &str =
    "data: {\"id\":\"u\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hello there\"}}]}\n\n";
const EVENT_2: &str = "data: {\"id\":\"u\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\n\n";

/// The example gateway over a real loopback upstream, through the example's HTTP client.
async fn gateway_over_upstream() -> SocketAddr {
    gateway_over(upstream().await).await
}

/// The example gateway with one model, `mock/chat`, served by the upstream at `up`.
async fn gateway_over(up: SocketAddr) -> SocketAddr {
    let (router, _state) = app::build(mock_config(up));
    support::serve(router).await.0
}

/// The demo's configuration with one model, `mock/chat`, served over HTTP by the upstream at `up`.
fn mock_config(up: SocketAddr) -> config::Config {
    use tower_ai_gateway::catalog::{Catalog, Credentials, Endpoint, Model, Provider};
    let mut cfg = config::demo(7, true);
    cfg.catalog = Catalog::builder()
        .provider(
            Provider::new("mock", "Mock")
                .base_url(format!("http://{up}/v1"))
                .credentials(Credentials::key("sk-mock")),
        )
        .model(Model::new("mock/chat", "Mock Chat"))
        .endpoint(Endpoint::new("mock/chat", "mock"))
        .build()
        .unwrap();
    cfg.upstream = config::Upstream::Http;
    cfg
}

#[tokio::test]
async fn http1_stream_through_a_real_upstream_has_no_ack_delay() {
    let addr = gateway_over_upstream().await;
    let client = client(false);
    let gap = median_gap_for(
        &client,
        &format!("http://{addr}/api/v1/chat/completions"),
        MOCK_STREAM,
    )
    .await;
    assert!(
        gap < BOUND,
        "HTTP/1.1 over a real upstream: a stream took {gap:?} (Nagle meeting a delayed ACK?)"
    );
}

#[tokio::test]
async fn http2_stream_through_a_real_upstream_has_no_ack_delay() {
    let addr = gateway_over_upstream().await;
    let client = client(true);
    let gap = median_gap_for(
        &client,
        &format!("http://{addr}/api/v1/chat/completions"),
        MOCK_STREAM,
    )
    .await;
    assert!(
        gap < BOUND,
        "HTTP/2 over a real upstream: a stream took {gap:?} (Nagle meeting a delayed ACK?)"
    );
}

const MOCK_STREAM: &str =
    r#"{"model":"mock/chat","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;

/// The example's upstream client (the one real providers get): request sent, whole stream read,
/// on one kept-alive connection; neither the request's body nor the stream's end waits for an ACK.
/// (Over HTTP/1.1 hyper writes a request's head and body together, so this holds even without
/// `TCP_NODELAY`; over HTTP/2, which providers negotiate by ALPN, HEADERS and DATA are separate
/// writes and a client without it loses ~40 ms per request — the test clients above showed it —
/// which is why the connector sets it.)
#[tokio::test]
async fn upstream_client_round_trip_has_no_ack_delay() {
    let addr = upstream().await;
    let client = app::http_client();
    // A body large enough to be written apart from the head.
    let body = Bytes::from(format!(
        r#"{{"model":"m","stream":true,"messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(2048)
    ));
    let mut times = Vec::new();
    for _ in 0..ROUNDS {
        let req = Request::post(format!("http://{addr}/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(Full::new(body.clone()))
            .unwrap();
        let start = Instant::now();
        let res = client.clone().oneshot(req).await.expect("upstream answers");
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        assert!(bytes.ends_with(b"data: [DONE]\n\n"), "{bytes:?}");
        times.push(start.elapsed());
    }
    times.sort();
    let median = times[ROUNDS / 2];
    assert!(
        median < BOUND,
        "a request through the upstream client took {median:?} (Nagle meeting a delayed ACK?)"
    );
}

/// A loopback upstream that answers every request with a whole event stream in one write (20
/// content events, the usage event, `[DONE]`), as a fast provider's burst or a cached answer
/// arrives.
async fn burst_upstream() -> SocketAddr {
    let mut stream =
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
            .to_string();
    for i in 0..20 {
        stream += &chunk(&format!(
            "data: {{\"id\":\"u\",\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"t{i} \"}}}}]}}\n\n"
        ));
    }
    stream += &chunk(EVENT_2);
    stream += &chunk("data: [DONE]\n\n");
    stream += "0\r\n\r\n";
    fixed_upstream(stream).await
}

/// A loopback upstream that answers every request on a kept-alive connection with `answer`, in
/// one write.
async fn fixed_upstream(answer: String) -> SocketAddr {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut tcp, _) = listener.accept().await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while read_request(&mut tcp, &mut buf).await.is_some() {
                    if tcp.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Events that reach the gateway together leave it together: a burst of 22 upstream events
/// reaches the caller in a few chunks, not one chunk (one `writev`) per event, and nothing is
/// lost. Without the example's `Coalesce` body the caller's client saw 22 data frames; with it
/// 1–2 (the first event may go out alone, before the rest arrive). Run on a multi-threaded
/// runtime, as the example serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_burst_of_upstream_events_leaves_in_few_writes() {
    let addr = gateway_over(burst_upstream().await).await;
    let client = client(false);
    for _ in 0..3 {
        let req = Request::post(format!("http://{addr}/api/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(MOCK_STREAM.as_bytes())))
            .unwrap();
        let res = client.request(req).await.expect("response");
        assert_eq!(res.status(), 200);
        let mut body = res.into_body();
        let (mut frames, mut all) = (0, Vec::new());
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.expect("frame").into_data() {
                frames += 1;
                all.extend_from_slice(&data);
            }
        }
        let text = String::from_utf8(all).unwrap();
        let events = text.matches("data: ").count();
        assert_eq!(events, 22, "every event arrives: {text}");
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        assert!(frames <= 4, "22 events came in {frames} chunks");
    }
}

/// `Coalesce` hands on everything in order: the first data at once, then what it holds before
/// trailers and before an error, and the end last.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn coalesce_keeps_order_before_trailers_and_errors() {
    use app::coalesce::coalesce;
    use http_body::Frame;
    use http_body_util::StreamBody;
    type Item = Result<Frame<Bytes>, std::io::Error>;
    let data = |s: &'static str| -> Item { Ok(Frame::data(Bytes::from_static(s.as_bytes()))) };
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-t", "1".parse().unwrap());
    let items = vec![
        data("0"),
        data("a"),
        data("b"),
        Ok(Frame::trailers(trailers)),
        data("c"),
    ];
    let mut body = std::pin::pin!(coalesce(StreamBody::new(futures_util::stream::iter(items))));
    let first = body.frame().await.unwrap().unwrap();
    assert_eq!(first.into_data().unwrap(), "0", "the first data at once");
    let next = body.frame().await.unwrap().unwrap();
    assert_eq!(
        next.into_data().unwrap(),
        "ab",
        "ready data goes out together"
    );
    assert!(body.frame().await.unwrap().unwrap().is_trailers());
    assert_eq!(
        body.frame().await.unwrap().unwrap().into_data().unwrap(),
        "c"
    );
    assert!(body.frame().await.is_none());

    let failing: Vec<Item> = vec![
        data("0"),
        data("x"),
        Err(std::io::Error::other("upstream broke")),
    ];
    let mut body = std::pin::pin!(coalesce(StreamBody::new(futures_util::stream::iter(
        failing
    ))));
    for want in ["0", "x"] {
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), want);
    }
    assert!(
        body.frame().await.unwrap().is_err(),
        "the error after the data"
    );
}

/// A loopback upstream that answers every request with a whole chat completion in one write.
async fn json_upstream() -> SocketAddr {
    let body = r#"{"id":"u","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hello there"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#;
    fixed_upstream(format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    ))
    .await
}

/// The write system calls this thread has made (`syscw` of `/proc/thread-self/io`: `write` and
/// `writev`, not `send`): on a current-thread runtime, those of a test's client, example server
/// and upstream.
fn thread_writes() -> u64 {
    let io = std::fs::read_to_string("/proc/thread-self/io").expect("/proc/thread-self/io");
    io.lines()
        .find_map(|l| l.strip_prefix("syscw: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("syscw in /proc/thread-self/io")
}

/// A non-streamed request through the example server (`server::serve`, with its header read
/// timeout) and a loopback upstream makes three counted writes, all of data: the `writev`s of
/// the client's request, of the gateway's request to the upstream and of its answer (the
/// upstream's answer goes out by `send`, which `syscw` does not count). Without the server's
/// timer anchor tokio added a fourth on every request, a `write` to its eventfd (4.0 per request
/// here, 3.0 with it; `strace` showed the same in the example gateway). Linux only:
/// `/proc/thread-self/io`.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_example_server_wakes_no_driver_per_request() {
    let (router, state) = app::build(mock_config(json_upstream().await));
    let chats = Some(app::ChatRoutes::new(&state));
    let addr = example::serve(router, chats, server::ServerLimits::default()).await;
    let client = client(false);
    let uri = format!("http://{addr}/api/v1/chat/completions");
    let body = r#"{"model":"mock/chat","messages":[{"role":"user","content":"hi"}]}"#;
    let request = || async {
        let req = Request::post(&uri)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap();
        let res = client.request(req).await.expect("response");
        assert_eq!(res.status(), 200);
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        assert!(bytes.windows(11).any(|w| w == b"hello there"), "{bytes:?}");
    };
    // Connections made and pools filled first.
    for _ in 0..5 {
        request().await;
    }
    const N: u64 = 40;
    let before = thread_writes();
    for _ in 0..N {
        request().await;
    }
    let writes = thread_writes() - before;
    assert!(
        writes <= 3 * N + 2,
        "{writes} writes for {N} requests ({:.2} each; 3 carry data)",
        writes as f64 / N as f64
    );
}
