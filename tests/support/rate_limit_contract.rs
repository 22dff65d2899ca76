//! The [`RateLimitStore`] contract, one generic suite run against every implementation
//! (`#[path = "support/rate_limit_contract.rs"] mod rate_limit_contract;`).

#![allow(dead_code)]

use tower_ai_gateway::rate_limit::{Check, Decision, Grant, RateLimitStore, Refused, Window};

/// What the suite needs beyond [`RateLimitStore`]: waiting for queued refunds.
pub trait ContractStore: RateLimitStore + Clone {
    /// Returns once every refund made so far is visible to `acquire` and `used`.
    fn settled(&self) -> impl std::future::Future<Output = ()> + Send;
}

/// 2026-11-22 00:00 UTC: the start of a day.
pub const DAY0: i64 = 1_795_305_600_000;
const DAY: i64 = 86_400_000;

/// A check of `cost` units on `bucket`.
pub fn check(bucket: &str, limit: u64, window: Window, cost: u64) -> Check {
    Check {
        bucket: bucket.into(),
        limit,
        window,
        cost,
    }
}

async fn allowed<S: ContractStore>(s: &S, checks: Vec<Check>, now: i64) -> Grant {
    match s.acquire(checks, now).await {
        Decision::Allowed(g) => g,
        other => panic!("refused at {now}: {other:?}"),
    }
}

async fn refused<S: ContractStore>(s: &S, checks: Vec<Check>, now: i64) -> Refused {
    match s.acquire(checks, now).await {
        Decision::Refused(r) => r,
        other => panic!("not refused at {now}: {other:?}"),
    }
}

/// Runs every case of the contract on `store` (each case on buckets of its own).
pub async fn run<S: ContractStore>(store: S) {
    sliding_window_is_exact(&store).await;
    all_or_nothing_across_buckets(&store).await;
    day_counter_resets_at_utc_midnight_and_refunds(&store).await;
    weighted_costs_and_refunds(&store).await;
    unpolled_acquire_charges_nothing(&store).await;
    concurrent_acquires_admit_exactly_the_limit(&store).await;
}

async fn sliding_window_is_exact<S: ContractStore>(s: &S) {
    let c = check("c-slide", 3, Window::MINUTE, 1);
    for t in [0, 10_000, 20_000] {
        allowed(s, vec![c.clone()], DAY0 + t).await;
    }
    let r = refused(s, vec![c.clone()], DAY0 + 59_999).await;
    assert_eq!((r.index, r.limit, r.remaining), (0, 3, 0));
    assert_eq!(r.reset_unix_ms, DAY0 + 60_000);
    assert_eq!(s.used(&c, DAY0 + 59_999).await, 3);
    allowed(s, vec![c.clone()], DAY0 + 60_000).await;
    refused(s, vec![c.clone()], DAY0 + 60_001).await;
    assert_eq!(s.used(&c, DAY0 + 60_001).await, 3);
}

async fn all_or_nothing_across_buckets<S: ContractStore>(s: &S) {
    let roomy = check("c-roomy", 100, Window::MINUTE, 1);
    let tight = check("c-tight", 1, Window::UtcDay, 1);
    allowed(s, vec![roomy.clone(), tight.clone()], DAY0).await;
    let r = refused(s, vec![roomy.clone(), tight], DAY0 + 1).await;
    assert_eq!((r.index, r.limit, r.reset_unix_ms), (1, 1, DAY0 + DAY));
    // The refused call charged nothing in the roomy bucket.
    assert_eq!(s.used(&roomy, DAY0 + 2).await, 1);
}

async fn day_counter_resets_at_utc_midnight_and_refunds<S: ContractStore>(s: &S) {
    let c = check("c-day", 2, Window::UtcDay, 1);
    let end = DAY0 + DAY;
    let g = allowed(s, vec![c.clone()], end - 5).await;
    allowed(s, vec![c.clone()], end - 4).await;
    refused(s, vec![c.clone()], end - 3).await;
    s.refund(g);
    s.settled().await;
    assert_eq!(s.used(&c, end - 2).await, 1);
    assert_eq!(s.used(&c, end).await, 0);
    allowed(s, vec![c.clone()], end - 1).await;
    allowed(s, vec![c.clone()], end).await;
    allowed(s, vec![c], end + 1).await;
}

async fn weighted_costs_and_refunds<S: ContractStore>(s: &S) {
    let c = |cost| check("c-tpm", 1000, Window::MINUTE, cost);
    let g = allowed(s, vec![c(700)], DAY0).await;
    let r = refused(s, vec![c(400)], DAY0 + 1).await;
    assert_eq!((r.remaining, r.reset_unix_ms), (300, DAY0 + 60_000));
    s.refund(g);
    s.settled().await;
    allowed(s, vec![c(400)], DAY0 + 2).await;
    assert_eq!(s.used(&c(1), DAY0 + 3).await, 400);
    // More than the whole limit never fits: a full window from now.
    let r = refused(s, vec![c(1001)], DAY0 + 3).await;
    assert_eq!(r.reset_unix_ms, DAY0 + 60_003);
}

async fn unpolled_acquire_charges_nothing<S: ContractStore>(s: &S) {
    let c = check("c-drop", 1, Window::MINUTE, 1);
    drop(s.acquire(vec![c.clone()], DAY0));
    allowed(s, vec![c], DAY0).await;
}

async fn concurrent_acquires_admit_exactly_the_limit<S: ContractStore>(s: &S) {
    let c = check("c-race", 100, Window::MINUTE, 1);
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let (s, c) = (s.clone(), c.clone());
            tokio::spawn(async move { s.acquire(vec![c], DAY0 + i % 7).await })
        })
        .collect();
    let mut admitted = 0;
    for t in tasks {
        admitted += usize::from(matches!(t.await.unwrap(), Decision::Allowed(_)));
    }
    assert_eq!(admitted, 100);
    assert_eq!(s.used(&c, DAY0 + 10).await, 100);
}
