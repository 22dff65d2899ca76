//! The [`Ledger`] contract, one generic suite run against every implementation
//! (`#[path = "support/ledger_contract.rs"] mod ledger_contract;`).

#![allow(dead_code)]

use tower_ai_gateway::catalog::Usd;
use tower_ai_gateway::usage_meter::{CallerKey, KeyLimits, Ledger, Period};

/// What the suite needs beyond [`Ledger`]: setting limits, and waiting for queued settles.
pub trait ContractLedger: Ledger + Clone {
    /// Replaces `key`'s limits.
    fn set_key_limits(&self, key: &str, limits: KeyLimits);
    /// Returns once every settle/release made so far is visible to `usage`.
    fn settled(&self) -> impl std::future::Future<Output = ()> + Send;
}

/// Sunday 2026-11-22 02:52 UTC.
pub const T: i64 = 1_795_315_920_000;
const DAY: i64 = 86_400_000;

fn usd(s: &str) -> Usd {
    Usd::parse(s).unwrap()
}

/// Runs every case of the contract on `ledger` (each case on keys of its own).
pub async fn run<L: ContractLedger>(ledger: L) {
    reserve_checks_spent_plus_held(&ledger).await;
    settle_and_release(&ledger).await;
    per_request_cap(&ledger).await;
    periods_roll_over(&ledger).await;
    unpolled_future_holds_nothing(&ledger).await;
    concurrent_reservations_never_overshoot(&ledger).await;
}

async fn reserve_checks_spent_plus_held<L: ContractLedger>(l: &L) {
    let k = CallerKey::new("c-hold");
    l.set_key_limits("c-hold", KeyLimits::new().limit(Period::Day, usd("1")));
    let r = l.reserve(&k, usd("0.6"), T).await.unwrap();
    let refused = l.reserve(&k, usd("0.5"), T).await.unwrap_err();
    assert_eq!(refused.period, Some(Period::Day));
    assert_eq!(refused.limit, usd("1"));
    assert_eq!(refused.remaining, usd("0.4"));
    assert_eq!(refused.requested, usd("0.5"));
    assert!(refused.unavailable.is_none());
    // A refusal holds nothing: exactly the remainder still fits.
    let r2 = l.reserve(&k, usd("0.4"), T).await.unwrap();
    assert_eq!(l.usage(&k, T).await.reserved, usd("1"));
    l.release(r);
    l.release(r2);
    l.settled().await;
    assert_eq!(l.usage(&k, T).await.reserved, Usd::ZERO);
}

async fn settle_and_release<L: ContractLedger>(l: &L) {
    let k = CallerKey::new("c-settle");
    l.set_key_limits("c-settle", KeyLimits::new().limit(Period::Month, usd("10")));
    let r = l.reserve(&k, usd("2"), T).await.unwrap();
    l.settle(r, usd("0.123456"));
    let r = l.reserve(&k, usd("3"), T).await.unwrap();
    l.release(r);
    l.settled().await;
    let u = l.usage(&k, T).await;
    assert_eq!(u.usage, usd("0.123456"));
    assert_eq!(u.usage_daily, usd("0.123456"));
    assert_eq!(u.usage_monthly, usd("0.123456"));
    assert_eq!(u.reserved, Usd::ZERO);
    assert_eq!(u.limit, Some(usd("10")));
    assert_eq!(u.limit_remaining, Some(usd("9.876544")));
    assert_eq!(u.limit_reset, Some("monthly"));
}

async fn per_request_cap<L: ContractLedger>(l: &L) {
    let k = CallerKey::new("c-cap");
    l.set_key_limits("c-cap", KeyLimits::new().per_request(usd("0.5")));
    let refused = l.reserve(&k, usd("0.6"), T).await.unwrap_err();
    assert_eq!((refused.period, refused.limit), (None, usd("0.5")));
    let r = l.reserve(&k, usd("0.5"), T).await.unwrap();
    l.release(r);
}

async fn periods_roll_over<L: ContractLedger>(l: &L) {
    let k = CallerKey::new("c-roll");
    let limits = KeyLimits::new()
        .limit(Period::Day, usd("1"))
        .limit(Period::Week, usd("3"));
    l.set_key_limits("c-roll", limits);
    let r = l.reserve(&k, usd("1"), T).await.unwrap();
    l.settle(r, usd("1"));
    l.settled().await;
    assert_eq!(
        l.reserve(&k, usd("0.01"), T).await.unwrap_err().period,
        Some(Period::Day)
    );
    // Monday: a new day and a new week; then a dollar a day until the week's 3 are spent.
    let monday = T + DAY;
    let u = l.usage(&k, monday).await;
    assert_eq!(
        (u.usage_daily, u.usage_weekly, u.usage),
        (Usd::ZERO, Usd::ZERO, usd("1"))
    );
    for day in 0..3 {
        let r = l.reserve(&k, usd("1"), monday + day * DAY).await.unwrap();
        l.settle(r, usd("1"));
        l.settled().await;
    }
    let thursday = monday + 3 * DAY;
    let refused = l.reserve(&k, usd("0.01"), thursday).await.unwrap_err();
    assert_eq!(refused.period, Some(Period::Week));
    let u = l.usage(&k, thursday).await;
    assert_eq!(
        (u.usage_daily, u.usage_weekly, u.usage),
        (Usd::ZERO, usd("3"), usd("4"))
    );
}

async fn unpolled_future_holds_nothing<L: ContractLedger>(l: &L) {
    let k = CallerKey::new("c-drop");
    l.set_key_limits("c-drop", KeyLimits::new().limit(Period::Total, usd("1")));
    drop(l.reserve(&k, usd("1"), T));
    l.settled().await;
    let r = l.reserve(&k, usd("1"), T).await.unwrap();
    l.release(r);
}

async fn concurrent_reservations_never_overshoot<L: ContractLedger>(l: &L) {
    let k = CallerKey::new("c-race");
    l.set_key_limits("c-race", KeyLimits::new().limit(Period::Day, usd("1")));
    let tasks: Vec<_> = (0..300)
        .map(|_| {
            let (l, k) = (l.clone(), k.clone());
            tokio::spawn(async move { l.reserve(&k, usd("0.01"), T).await.ok() })
        })
        .collect();
    let mut held = Vec::new();
    for t in tasks {
        held.extend(t.await.unwrap());
    }
    assert_eq!(held.len(), 100, "exactly the limit's worth is held");
    for r in held {
        l.settle(r, usd("0.005"));
    }
    l.settled().await;
    let u = l.usage(&k, T).await;
    assert_eq!((u.usage_daily, u.reserved), (usd("0.5"), Usd::ZERO));
}
