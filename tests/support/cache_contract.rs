//! The [`CacheStore`] contract, one generic suite run against every implementation
//! (`#[path = "support/cache_contract.rs"] mod cache_contract;`).

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use tower_ai_gateway::cache::{CacheKey, CacheStore, CachedResponse};

/// What the suite needs beyond [`CacheStore`]: waiting for queued writes.
pub trait ContractCache: CacheStore + Clone {
    /// Returns once every `put` and `remove` made so far is visible to `get`.
    fn settled(&self) -> impl std::future::Future<Output = ()> + Send;
}

fn key(caller: &str, body: &str) -> CacheKey {
    CacheKey::new(
        caller,
        "acme/chat",
        "/api/v1/chat/completions",
        false,
        body.as_bytes(),
    )
}

fn entry(text: &str, streamed: bool) -> Arc<CachedResponse> {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.append("x-extra", HeaderValue::from_static("a"));
    headers.append("x-extra", HeaderValue::from_static("b"));
    let frames = if streamed {
        vec![
            Bytes::from(format!("data: {text}\n\n")),
            Bytes::from_static(b"data: [DONE]\n\n"),
        ]
    } else {
        vec![Bytes::from(text.to_owned())]
    };
    Arc::new(CachedResponse {
        headers,
        frames,
        source_id: Some(format!("gen-{text}").into()),
        created: Some(1_795_315_920),
        stored_at_ms: 1_795_315_920_000,
        ttl: Duration::from_secs(300),
        streamed,
        extensions: http::Extensions::new(),
    })
}

fn assert_same(got: &CachedResponse, want: &CachedResponse) {
    assert_eq!(got.headers, want.headers);
    assert_eq!(got.frames, want.frames);
    assert_eq!(got.source_id, want.source_id);
    assert_eq!(
        (got.created, got.stored_at_ms),
        (want.created, want.stored_at_ms)
    );
    assert_eq!((got.ttl, got.streamed), (want.ttl, want.streamed));
}

/// Runs every case of the contract on `store`.
pub async fn run<S: ContractCache>(store: S) {
    let s = &store;
    let (a, b) = (key("alice", "q1"), key("bob", "q1"));
    assert!(s.get(&a).await.is_none(), "empty: a miss");

    let first = entry("one", false);
    s.put(a.clone(), first.clone());
    s.settled().await;
    assert_same(&s.get(&a).await.expect("stored"), &first);
    assert!(
        s.get(&b).await.is_none(),
        "another caller's same request is a miss"
    );

    let stream = entry("two", true);
    s.put(a.clone(), stream.clone());
    s.settled().await;
    assert_same(&s.get(&a).await.expect("replaced"), &stream);

    s.remove(&a);
    s.settled().await;
    assert!(s.get(&a).await.is_none(), "removed");
}
