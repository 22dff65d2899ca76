//! Serving the example gateway on loopback and calling it, for the tests that include the
//! example's modules (`mod support;`).

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// An HTTP/1.1 client for loopback.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Serves `router` on a free port of 127.0.0.1 (with the peer address and `TCP_NODELAY`, as the
/// example does) and returns the address and a client for it.
pub async fn serve(router: axum::Router) -> (SocketAddr, HttpClient) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            crate::app::nodelay(listener),
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    (addr, client())
}

/// A plain HTTP/1.1 client for the tests' servers.
pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A whole answer.
pub struct Reply {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }
}

/// Sends `req` and reads the whole answer.
pub async fn fetch(client: &HttpClient, req: Request<Full<Bytes>>) -> Reply {
    let res = client.request(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}
