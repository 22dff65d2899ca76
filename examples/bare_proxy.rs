//! The floor of the proxy benchmark: a minimal HTTP proxy with none of the gateway.
//!
//! ```text
//! cargo run --release --example bare_proxy -- 127.0.0.1:18092 http://127.0.0.1:18091
//! ```
//!
//! It does what any proxy in front of an upstream must do, and nothing else: hyper-util's server
//! (HTTP/1.1 and HTTP/2, `TCP_NODELAY`) reads each request's body, sends the request to the same
//! path on the upstream (a leading `/api` dropped) with the crate's [`HttpsClient`], and streams the
//! answer back frame by frame. No routing, no layers, no axum, no metering.
//!
//! `PROXY=bare scripts/proxy-bench.sh` runs the benchmark's scenarios through it instead of the
//! example gateway: the difference between the two tables is what the gateway itself costs; what
//! this proxy adds over the upstream alone is what the network path (kernel, tokio, hyper) costs
//! on the machine, which no gateway built on them can go below.
//!
//! [`HttpsClient`]: tower_ai_gateway::client::HttpsClient

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tower::ServiceExt;
use tower_ai_gateway::client::HttpsClient;
use tower_ai_gateway::BoxError;

type Answer = Response<BoxBody<Bytes, BoxError>>;

#[path = "shared/runtime.rs"]
mod runtime;

/// On the gateway's runtime (one thread on one core: see `shared/runtime.rs`), so that the floor
/// and the gateway compare on the same footing.
fn main() {
    let runtime = runtime::runtime(None).unwrap_or_else(|e| {
        eprintln!("cannot start the tokio runtime: {e}");
        std::process::exit(1)
    });
    runtime.block_on(serve());
}

async fn serve() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: bare_proxy LISTEN_ADDR UPSTREAM_BASE_URL");
        std::process::exit(2)
    };
    let listen: SocketAddr = listen
        .parse()
        .expect("LISTEN_ADDR: an address like 127.0.0.1:18092");
    let upstream: &'static str = upstream.trim_end_matches('/').to_owned().leak();
    let client = HttpsClient::new();
    let listener = TcpListener::bind(listen).await.expect("bind LISTEN_ADDR");
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let client = client.clone();
        let svc = hyper::service::service_fn(move |req| forward(client.clone(), upstream, req));
        tokio::spawn(async move {
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder.serve_connection(TokioIo::new(tcp), svc).await;
        });
    }
}

/// `req` sent to the same path on `upstream`; its answer streamed back, or a 502.
async fn forward(
    client: HttpsClient,
    upstream: &str,
    req: Request<Incoming>,
) -> Result<Answer, Infallible> {
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let path = path.strip_prefix("/api").unwrap_or(path);
    let Ok(uri) = format!("{upstream}{path}").parse::<Uri>() else {
        return Ok(status(StatusCode::BAD_REQUEST));
    };
    let Ok(body) = body.collect().await.map(|c| c.to_bytes()) else {
        return Ok(status(StatusCode::BAD_REQUEST));
    };
    parts.uri = uri;
    parts.headers.remove(http::header::HOST);
    let req = Request::from_parts(parts, Full::new(body));
    Ok(match client.oneshot(req).await {
        Ok(res) => res.map(|b| b.map_err(BoxError::from).boxed()),
        Err(_) => status(StatusCode::BAD_GATEWAY),
    })
}

fn status(code: StatusCode) -> Answer {
    let mut res = Response::new(Full::new(Bytes::new()).map_err(|e| match e {}).boxed());
    *res.status_mut() = code;
    res
}
