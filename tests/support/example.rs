//! The example server (`examples/gateway/server.rs`) on a free loopback port, for the tests that
//! include the example's `app` and `server` modules (not part of `support`, which the tests that
//! include only `app` share).

use std::net::SocketAddr;

use crate::{app, server};

/// Serves `router` (with `chats` ahead of it) behind the example server with `limits`, until the
/// test's runtime ends; returns the address it listens on.
pub async fn serve(
    router: axum::Router,
    chats: Option<app::ChatRoutes>,
    limits: server::ServerLimits,
) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server::serve(
        listener,
        router,
        chats,
        limits,
        std::future::pending(),
    ));
    addr
}
