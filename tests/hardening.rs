//! Issue 17, tenancy, headers and answers (items 9, 10, 11) and slow connections (item 13): the
//! example gateway served on loopback in front of a scripted upstream.

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
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use support::{HttpClient, Reply};
use tower::util::BoxCloneSyncService;
use tower_ai_gateway::BoxError;

const MINI: &str = "openai/gpt-4o-mini";

/// A scripted upstream: answers every request with `body` and a provider's usual headers.
fn scripted(body: Value, seen: Arc<Mutex<Vec<Value>>>) -> app::Client {
    let svc = tower::service_fn(move |req: Request<Full<Bytes>>| {
        let body = body.clone();
        let seen = seen.clone();
        async move {
            let bytes = req.into_body().collect().await?.to_bytes();
            let req: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let stream = req["stream"] == true;
            seen.lock().unwrap().push(req);
            let (body, kind) = if stream {
                (sse(), "text/event-stream")
            } else {
                (body, "application/json")
            };
            let res = http::Response::builder()
                .status(200)
                .header("content-type", kind)
                .header("openai-organization", "org-secret-acme")
                .header("openai-processing-ms", "123")
                .header("x-ratelimit-remaining-requests", "4999")
                .header("x-ratelimit-limit-tokens", "2000000")
                .header("server", "cloudflare")
                .header("x-request-id", "req_provider_42")
                .header("cf-ray", "8f00ray-IAD")
                .header("set-cookie", "__cf_bm=abc")
                .header("retry-after", "7")
                .body(
                    Full::new(Bytes::from(match body {
                        Value::String(s) => s,
                        v => v.to_string(),
                    }))
                    .map_err(|e| -> BoxError { match e {} })
                    .boxed(),
                )?;
            Ok::<_, BoxError>(res)
        }
    });
    BoxCloneSyncService::new(svc)
}

/// A streamed answer, as a JSON string of the SSE text.
fn sse() -> Value {
    let chunk = |delta: Value, finish: Value, usage: Value| {
        json!({"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1,
            "model": "gpt-4o-mini", "service_tier": "default",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], "usage": usage})
    };
    let first = chunk(
        json!({"role": "assistant", "content": "Hi"}),
        Value::Null,
        Value::Null,
    );
    let last = chunk(
        json!({}),
        json!("stop"),
        json!({"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}),
    );
    Value::String(format!("data: {first}\n\ndata: {last}\n\ndata: [DONE]\n\n"))
}

fn completion() -> Value {
    json!({"id": "chatcmpl-up", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "service_tier": "default",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"},
            "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}})
}

struct Gateway {
    addr: SocketAddr,
    client: HttpClient,
}

fn key(name: &str) -> config::ApiKey {
    config::ApiKey {
        name: name.into(),
        secret: format!("sk-gw-{name}"),
        limit: None,
    }
}

/// The demo catalog over the scripted upstream, with keys `alice`, `bob` and `admin` (management).
async fn start(body: Value) -> Gateway {
    let (router, _state) = router(body);
    let (addr, client) = support::serve(router).await;
    Gateway { addr, client }
}

fn router(body: Value) -> (axum::Router, app::AppState) {
    let mut cfg = config::demo(7, true);
    let mut limits = cfg.rate_limits;
    limits.management.insert("admin".into());
    app::build_with_client(
        cfg.catalog.into(),
        scripted(body, Arc::default()),
        vec![key("alice"), key("bob"), key("admin")],
        false,
        |l| l,
        cfg.body_limit,
        cfg.floor,
        cfg.cap,
        cfg.attempt_timeout,
        std::mem::take(&mut cfg.ignore),
        limits,
        cfg.cache,
        None,
        None,
        0,
    )
}

impl Gateway {
    async fn send(&self, method: Method, path: &str, body: Option<Value>, who: &str) -> Reply {
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header("authorization", format!("Bearer sk-gw-{who}"))
            .header("content-type", "application/json")
            .body(Full::new(body))
            .unwrap();
        support::fetch(&self.client, req).await
    }

    async fn chat(&self, body: Value, who: &str) -> Reply {
        self.send(Method::POST, "/api/v1/chat/completions", Some(body), who)
            .await
    }
}

fn hello(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Hello"}]})
}

#[tokio::test]
async fn item9_generation_records_are_scoped_to_their_key() {
    let gw = start(completion()).await;
    let r = gw.chat(hello(MINI), "alice").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/generation?id={id}");
    // The key that made it reads it.
    let own = gw.send(Method::GET, &path, None, "alice").await;
    assert_eq!(own.status, 200, "{:?}", own.body);
    assert_eq!(own.json()["data"]["id"], id.as_str());
    // Another key: as if it did not exist.
    let other = gw.send(Method::GET, &path, None, "bob").await;
    assert_eq!(other.status, 404, "{:?}", other.body);
    assert_eq!(other.json()["error"]["code"], 404);
    assert!(!String::from_utf8_lossy(&other.body).contains("tokens_prompt"));
    // A management key reads every key's records.
    let admin = gw.send(Method::GET, &path, None, "admin").await;
    assert_eq!(admin.status, 200, "{:?}", admin.body);
    assert_eq!(admin.json()["data"]["id"], id.as_str());
}

#[tokio::test]
async fn item10_provider_response_headers_do_not_reach_callers() {
    let gw = start(completion()).await;
    let r = gw.chat(hello(MINI), "alice").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    for name in [
        "openai-organization",
        "openai-processing-ms",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-limit-tokens",
        "server",
        "x-request-id",
        "cf-ray",
        "set-cookie",
        "retry-after",
    ] {
        assert!(r.headers.get(name).is_none(), "{name} reached the caller");
    }
    assert_eq!(r.headers["content-type"], "application/json");
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(r.headers["x-generation-id"], id.as_str());
    // The provider's request id is in the generation record instead.
    let g = gw
        .send(
            Method::GET,
            &format!("/api/v1/generation?id={id}"),
            None,
            "alice",
        )
        .await;
    assert_eq!(g.json()["data"]["upstream_request_id"], "req_provider_42");
}

#[tokio::test]
async fn item11_generation_id_on_errors_service_tier_count_tokens_and_max_tokens() {
    // An upstream answer the gateway cannot use (every provider fails): the error carries an id.
    let gw = start(json!({"error": {"message": "boom", "code": 500}})).await;
    let r = gw.chat(hello(MINI), "alice").await;
    assert!(r.status.is_server_error(), "{} {:?}", r.status, r.body);
    let id = r
        .headers
        .get("x-generation-id")
        .expect("X-Generation-Id on an error");
    assert!(id.to_str().unwrap().starts_with("gen-"), "{id:?}");

    // A tier was served: the answer says which (replacing the provider's own value).
    let gw = start(completion()).await;
    let mut body = hello(MINI);
    body["provider"] = json!({"only": ["openai/priority"]});
    let r = gw.chat(body, "alice").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json()["service_tier"], "priority", "{}", r.json());
    // Streamed too: every chunk says which tier served it.
    let mut body = hello(MINI);
    body["provider"] = json!({"only": ["openai/priority"]});
    body["stream"] = json!(true);
    let r = gw.chat(body, "alice").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let text = String::from_utf8_lossy(&r.body);
    let chunks: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| d.starts_with('{'))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(chunks.len() >= 2, "{text}");
    for c in &chunks {
        assert_eq!(c["service_tier"], "priority", "{text}");
    }
    // No tier served: the provider's value is left as it is.
    let mut body = hello(MINI);
    body["provider"] = json!({"only": ["azure"]});
    let r = gw.chat(body, "alice").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json()["service_tier"], "default", "{}", r.json());

    // count_tokens for an unknown model: 404, like /messages.
    let msg = json!({"model": "nobody/nothing", "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}]});
    let r = gw
        .send(
            Method::POST,
            "/v1/messages/count_tokens",
            Some(msg.clone()),
            "alice",
        )
        .await;
    assert_eq!(r.status, 404, "{:?}", r.body);
    assert_eq!(r.json()["type"], "error");
    let r = gw
        .send(Method::POST, "/v1/messages", Some(msg), "alice")
        .await;
    assert_eq!(r.status, 404, "{:?}", r.body);
    let known = json!({"model": MINI, "messages": [{"role": "user", "content": "hi"}]});
    let r = gw
        .send(
            Method::POST,
            "/v1/messages/count_tokens",
            Some(known.clone()),
            "alice",
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // A Messages request without max_tokens: 400.
    let r = gw
        .send(Method::POST, "/v1/messages", Some(known), "alice")
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert!(String::from_utf8_lossy(&r.body).contains("max_tokens"));
}

// ===== item 13: slow or idle connections =====

/// The gateway behind the example server with `limits`, on a free loopback port.
async fn start_limited(limits: server::ServerLimits) -> SocketAddr {
    let (router, state) = router(completion());
    example::serve(router, Some(app::ChatRoutes::new(&state)), limits).await
}

/// Writes `bytes` on a new connection, then reads until the server closes it (or 10 s pass, which
/// fails the test): what the server answered.
async fn raw(addr: SocketAddr, bytes: &[u8]) -> (String, Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    let start = Instant::now();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out)).await;
    assert!(
        read.is_ok(),
        "the connection was held open: {:?}",
        String::from_utf8_lossy(&out)
    );
    (String::from_utf8_lossy(&out).into_owned(), start.elapsed())
}

fn short() -> server::ServerLimits {
    server::ServerLimits {
        header_read_timeout: Duration::from_millis(200),
        body_read_timeout: Duration::from_millis(200),
        ..Default::default()
    }
}

#[tokio::test]
async fn item13_slow_and_idle_connections_are_closed() {
    let addr = start_limited(short()).await;
    let head = "POST /api/v1/chat/completions HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer sk-gw-alice\r\n";
    // Half a header: closed by the header read timeout.
    let (_, took) = raw(addr, head.as_bytes()).await;
    assert!(took < Duration::from_secs(5), "{took:?}");
    // Two bytes (not even enough to tell HTTP/1.1 from HTTP/2), and nothing at all.
    for bytes in [&b"PO"[..], b""] {
        let (_, took) = raw(addr, bytes).await;
        assert!(took < Duration::from_secs(5), "{took:?}");
    }
    // A whole head whose body never comes: 408 with the envelope.
    let req = format!("{head}content-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"mo");
    let (answer, took) = raw(addr, req.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"error_type\":\"timeout\""), "{answer}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    // A body over the limit: 413 with the envelope, before the stack reads it.
    let limits = server::ServerLimits {
        body_limit: 64,
        ..short()
    };
    let small = start_limited(limits).await;
    let body = hello(MINI).to_string();
    let req = format!(
        "{head}content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let (answer, _) = raw(small, req.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"code\":413"), "{answer}");
    // A request that arrives whole is served.
    let body = hello(MINI).to_string();
    let req = format!(
        "{head}content-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let (answer, _) = raw(addr, req.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// A body sent in several chunks (each a frame of its own to the server) is read whole, with or
/// without trailers; over the limit it is refused as a body of one piece is.
#[tokio::test]
async fn item13_request_bodies_in_several_frames_are_read_whole() {
    let addr = start_limited(server::ServerLimits::default()).await;
    let head = "POST /api/v1/chat/completions HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer sk-gw-alice\r\ncontent-type: application/json\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n";
    let body = hello(MINI).to_string();
    let (a, rest) = body.split_at(7);
    let (b, c) = rest.split_at(rest.len() / 2);
    let chunks: String = [a, b, c]
        .iter()
        .map(|p| format!("{:x}\r\n{p}\r\n", p.len()))
        .collect();
    for end in ["0\r\n\r\n", "0\r\nx-trailer: 1\r\n\r\n"] {
        let (answer, _) = raw(addr, format!("{head}{chunks}{end}").as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("chat.completion"), "{answer}");
    }
    // Over HTTP/2 (prior knowledge), where the body's end comes with its DATA frame.
    let h2 = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let req = Request::post(format!("http://{addr}/api/v1/chat/completions"))
        .header("authorization", "Bearer sk-gw-alice")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.clone())))
        .unwrap();
    let res = h2.request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.version(), http::Version::HTTP_2);
    let answer = res.into_body().collect().await.unwrap().to_bytes();
    assert!(
        answer.windows(15).any(|w| w == b"chat.completion"),
        "{answer:?}"
    );
    // Three chunks that together pass the limit: 413, as for a body of one piece.
    let small = start_limited(server::ServerLimits {
        body_limit: body.len() - 1,
        ..Default::default()
    })
    .await;
    let (answer, _) = raw(small, format!("{head}{chunks}0\r\n\r\n").as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"code\":413"), "{answer}");
}

#[tokio::test]
async fn item13_connection_and_in_flight_caps_answer_503() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let limits = server::ServerLimits {
        header_read_timeout: Duration::from_secs(30),
        body_read_timeout: Duration::from_secs(30),
        max_in_flight: 1,
        max_connections: 2,
        ..Default::default()
    };
    let addr = start_limited(limits).await;
    // One request in flight, its body still coming: it holds the only slot.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(
        b"POST /api/v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-length: 50\r\n\r\n{",
    )
    .await
    .unwrap();
    // Another request: 503 with the envelope, at once. (Retried while the slow request may not
    // have reached the server yet: then this one is served.)
    let body = hello(MINI).to_string();
    let req = format!(
        "POST /api/v1/chat/completions HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer sk-gw-alice\r\n\
         connection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut answer = String::new();
    for _ in 0..100 {
        answer = raw(addr, req.as_bytes()).await.0;
        if !answer.starts_with("HTTP/1.1 200") {
            break;
        }
    }
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    assert!(answer.contains("\"reason\":\"overloaded\""), "{answer}");
    assert!(answer.contains("requests in flight"), "{answer}");
    // The slow connection holds one of two connection slots: of three more held open, at most
    // one is kept; the others are answered 503 before they send anything, and closed.
    let mut refused = 0;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut out = Vec::new();
        let read = tokio::time::timeout(Duration::from_millis(500), tcp.read_to_end(&mut out));
        if read.await.is_ok() {
            let answer = String::from_utf8_lossy(&out);
            assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
            assert!(answer.contains("connections"), "{answer}");
            refused += 1;
        }
        held.push(tcp);
    }
    assert!(refused >= 2, "{refused} refused");
    drop(slow);
}

/// A connection kept alive and idle when the server stops is closed, and `serve` returns: the
/// connection task, asleep with nothing to read, is woken by the stop signal it registered for
/// when it started (it does not poll the signal again until its version changes).
#[tokio::test]
async fn item13_stopping_closes_idle_kept_alive_connections() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (router, state) = router(completion());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = server::ServerLimits {
        header_read_timeout: Duration::from_secs(30),
        ..Default::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let chats = Some(app::ChatRoutes::new(&state));
    let served = tokio::spawn(server::serve(listener, router, chats, limits, async {
        let _ = stopped.await;
    }));
    // One request served on a kept-alive connection, read to the end of its body.
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = hello(MINI).to_string();
    let req = format!(
        "POST /api/v1/chat/completions HTTP/1.1\r\nhost: gw\r\nauthorization: Bearer sk-gw-alice\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let whole = |a: &[u8]| {
        let text = String::from_utf8_lossy(a).to_ascii_lowercase();
        let Some(end) = text.find("\r\n\r\n") else {
            return false;
        };
        let len = text[..end]
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|n| n.trim().parse::<usize>().ok())
            .expect("a content-length");
        a.len() >= end + 4 + len
    };
    while !whole(&answer) {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
            .await
            .expect("the answer in time")
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200"));
    // Idle now (the server parks the connection once the answer is written); the server stops:
    // the connection is closed with nothing more sent.
    stop.send(()).unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the idle connection was held open");
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    tokio::time::timeout(Duration::from_secs(5), served)
        .await
        .expect("serve returns once its connections are closed")
        .unwrap();
}

#[test]
fn item13_server_limits_from_config() {
    let section: config::ServerSection = toml::from_str(
        "header_read_timeout_ms = 250\nbody_read_timeout_ms = 500\nmax_connections = 7\nmax_in_flight = 3",
    )
    .unwrap();
    let l = server::ServerLimits::from_config(&section, 1234);
    assert_eq!(l.header_read_timeout, Duration::from_millis(250));
    assert_eq!(l.body_read_timeout, Duration::from_millis(500));
    assert_eq!(
        (l.max_connections, l.max_in_flight, l.body_limit),
        (7, 3, 1234)
    );
    let d = server::ServerLimits::from_config(&config::ServerSection::default(), 1);
    assert_eq!(d.header_read_timeout, Duration::from_secs(10));
    assert!(toml::from_str::<config::ServerSection>("max_conections = 1").is_err());
}

/// The example server serves the two chat routes ahead of the router (`app::ChatRoutes`): the
/// same answers as through the router alone, for every method, path and caller; `ChatRoutes`
/// takes only `POST` to the two exact paths (a query string is not part of the path).
#[tokio::test]
async fn chat_routes_ahead_of_the_router_answer_as_the_router_does() {
    let (_, state) = router(completion());
    let chats = app::ChatRoutes::new(&state);
    for (method, path, taken) in [
        (Method::POST, "/api/v1/chat/completions", true),
        (Method::POST, "/v1/chat/completions", true),
        (Method::GET, "/api/v1/chat/completions", false),
        (Method::PUT, "/v1/chat/completions", false),
        (Method::POST, "/api/v1/chat/completions/", false),
        (Method::POST, "/api/v1/messages", false),
    ] {
        assert_eq!(
            chats.route(&method, path).is_some(),
            taken,
            "{method} {path}"
        );
    }

    // The same requests through the example server with and without the chat routes ahead.
    let serve = |fast: bool| async move {
        let (router, state) = router(completion());
        let chats = fast.then(|| app::ChatRoutes::new(&state));
        let addr = example::serve(router, chats, server::ServerLimits::default()).await;
        Gateway {
            addr,
            client: support::client(),
        }
    };
    let (fast, routed) = (serve(true).await, serve(false).await);
    let mut streamed = hello(MINI);
    streamed["stream"] = json!(true);
    let (chat, hi) = ("/api/v1/chat/completions", || Some(hello(MINI)));
    let cases: [(Method, &str, Option<Value>, &str); 7] = [
        (Method::POST, chat, hi(), "alice"),
        (Method::POST, "/v1/chat/completions?x=1", hi(), "bob"),
        (Method::POST, chat, Some(streamed), "alice"),
        (Method::POST, chat, hi(), "nobody"),
        (Method::POST, chat, Some(json!({"model": 5})), "alice"),
        (Method::GET, chat, None, "alice"),
        (Method::POST, "/api/v1/chat/completions/", hi(), "alice"),
    ];
    for (method, path, body, who) in cases {
        let a = fast.send(method.clone(), path, body.clone(), who).await;
        let b = routed.send(method.clone(), path, body, who).await;
        assert_eq!(a.status, b.status, "{method} {path} as {who}");
        let names = |r: &Reply| {
            let mut n: Vec<String> = r.headers.keys().map(|k| k.to_string()).collect();
            n.retain(|k| k != "date");
            n.sort();
            n
        };
        assert_eq!(names(&a), names(&b), "{method} {path} as {who}");
        // Each answer has its own generation id; the rest of the body is the same.
        let id = |r: &Reply| r.headers.get("x-generation-id").cloned();
        let strip = |r: &Reply| match id(r) {
            Some(id) => String::from_utf8_lossy(&r.body).replace(id.to_str().unwrap(), "ID"),
            None => String::from_utf8_lossy(&r.body).into_owned(),
        };
        // The provider is drawn at random by each gateway; times differ.
        let normal = |s: String| {
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(i) = rest.find("\"provider\":\"") {
                let from = i + "\"provider\":\"".len();
                out.push_str(&rest[..from]);
                rest = &rest[from..];
                rest = &rest[rest.find('"').unwrap_or(rest.len())..];
            }
            out.push_str(rest);
            out.replace(|c: char| c.is_ascii_digit(), "0")
        };
        let (sa, sb) = (normal(strip(&a)), normal(strip(&b)));
        assert_eq!(sa, sb, "{method} {path} as {who}");
    }
}
