//! A mock OpenAI-compatible upstream for the proxy benchmark (`scripts/proxy-bench.sh`).
//!
//! ```text
//! cargo run --release --example mock_upstream -- 18091
//! ```
//!
//! Listens on 127.0.0.1:PORT (HTTP/1.1, keep-alive, `TCP_NODELAY`) on one thread and answers every
//! `POST …/chat/completions` at once: a fixed chat completion with `usage`, or, when the request
//! body has `"stream":true`, an SSE stream of 20 content chunks, a usage chunk and `data: [DONE]`,
//! each chunk its own body frame (22 frames). Anything else gets a 404. `MOCK_CHUNKS=N` makes the
//! stream N content chunks long (the scripts pass it on: a long stream shows what each chunk costs).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::{Request, Response};
use tokio::net::TcpListener;

#[path = "shared/mock_stream.rs"]
mod mock_stream;
use mock_stream::stream_frames;

const COMPLETION: &str = r#"{"id":"chatcmpl-mock","object":"chat.completion","created":1700000000,"model":"mock-model","choices":[{"index":0,"message":{"role":"assistant","content":"The printing press spread across Europe within fifty years."},"finish_reason":"stop"}],"usage":{"prompt_tokens":250,"completion_tokens":12,"total_tokens":262}}"#;

/// A response body that hands out prepared frames one at a time.
struct Frames(VecDeque<Bytes>);

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }
}

type MockBody = http_body_util::Either<Full<Bytes>, Frames>;

fn respond(status: u16, content_type: &'static str, body: MockBody) -> Response<MockBody> {
    let mut res = Response::new(body);
    *res.status_mut() = http::StatusCode::from_u16(status).unwrap_or_default();
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    res
}

/// Whether a JSON body has `"stream": true` (a byte scan: the mock does not parse requests).
fn wants_stream(body: &[u8]) -> bool {
    memchr::memmem::find_iter(body, b"\"stream\"").any(|at| {
        let rest = body[at + 8..].trim_ascii_start();
        rest.strip_prefix(b":")
            .is_some_and(|v| v.trim_ascii_start().starts_with(b"true"))
    })
}

async fn handle(
    req: Request<Incoming>,
    frames: VecDeque<Bytes>,
) -> Result<Response<MockBody>, Infallible> {
    use http_body_util::Either::{Left, Right};
    if req.method() != http::Method::POST || !req.uri().path().ends_with("/chat/completions") {
        return Ok(respond(404, "text/plain", Left(Full::new(Bytes::new()))));
    }
    let body = match req.into_body().collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => return Ok(respond(400, "text/plain", Left(Full::new(Bytes::new())))),
    };
    Ok(if wants_stream(&body) {
        respond(200, "text/event-stream", Right(Frames(frames)))
    } else {
        let json = Full::new(Bytes::from_static(COMPLETION.as_bytes()));
        respond(200, "application/json", Left(json))
    })
}

fn main() {
    let port: u16 = match std::env::args().nth(1).map(|p| p.parse()) {
        Some(Ok(p)) => p,
        _ => {
            eprintln!("usage: mock_upstream PORT");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(serve(port));
}

async fn serve(port: u16) {
    let listener = match TcpListener::bind(("127.0.0.1", port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        }
    };
    let chunks = mock_stream::configured_chunks().unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2);
    });
    // Made once: each stream hands out clones (reference counts) of the same frames.
    let frames = stream_frames(chunks);
    eprintln!("mock upstream listening on http://127.0.0.1:{port} ({chunks}-chunk streams)");
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let frames = frames.clone();
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(tcp);
            let service = hyper::service::service_fn(move |req| handle(req, frames.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}
