//! Property test of the public `Route` API: random sequences of removals, reorderings and lookups on
//! routes built by ModelRouting never panic, only ever remove or permute candidates, and record an
//! exclusion for every candidate they remove.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use proptest::prelude::*;
use serde_json::json;
use tower::{ServiceBuilder, ServiceExt};
use tower_ai_gateway::catalog::Catalog;
use tower_ai_gateway::model_routing::ModelRoutingLayer;
use tower_ai_gateway::route::{Candidate, Reason, Route};
use tower_ai_gateway::{AvailabilityCode, ExcludedBy};

type Req = Request<Full<Bytes>>;

/// Routes for a few requests against the demo catalog: one model, fallback models, a sort across
/// models, tier variants.
fn routes() -> &'static [Route] {
    static ROUTES: OnceLock<Vec<Route>> = OnceLock::new();
    ROUTES.get_or_init(|| {
        let bodies = [
            json!({"model": "deepseek/deepseek-chat", "messages": [{"role": "user", "content": "hi"}]}),
            json!({"model": "meta-llama/llama-3.3-70b-instruct",
                   "models": ["qwen/qwen3-coder", "anthropic/claude-sonnet-4.5"], "messages": [{"role": "user", "content": "hi"}]}),
            json!({"models": ["openai/gpt-4o-mini", "mistralai/mistral-small-3.1-24b-instruct"],
                   "messages": [{"role": "user", "content": "hi"}], "provider": {"sort": {"by": "price", "partition": "none"}}}),
            json!({"model": "meta-llama/llama-3.3-70b-instruct:nitro", "messages": [{"role": "user", "content": "hi"}]}),
        ];
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        bodies
            .iter()
            .map(|b| rt.block_on(route_for(b.to_string())))
            .collect()
    })
}

async fn route_for(body: String) -> Route {
    let slot = Arc::new(Mutex::new(None));
    let s = slot.clone();
    let catalog = Catalog::from_json(include_bytes!("fixtures/catalog/demo-catalog.json")).unwrap();
    let svc = ServiceBuilder::new()
        .layer(ModelRoutingLayer::new(catalog).seed(11))
        .service_fn(move |req: Req| {
            *s.lock().unwrap() = req.extensions().get::<Route>().cloned();
            async { Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::new()))) }
        });
    let req = Request::post("/")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let res = ServiceExt::<Req>::oneshot(svc, req).await.unwrap();
    assert_eq!(res.status(), 200);
    let route = slot.lock().unwrap().take().unwrap();
    route
}

/// A deterministic coin for (`seed`, endpoint tag).
fn coin(seed: u64, tag: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (seed, tag).hash(&mut h);
    h.finish()
}

#[derive(Clone, Debug)]
enum Op {
    /// Remove about one candidate in `1/odds`.
    Retain {
        seed: u64,
        odds: u64,
        by: usize,
    },
    MoveToBack {
        seed: u64,
    },
    Reorder {
        seed: u64,
    },
    /// Endpoint, provider and pricing of every candidate, and of a candidate from nowhere.
    Lookups {
        foreign: usize,
    },
    Unavailable {
        privacy: bool,
    },
}

const REASONS: [ExcludedBy; 4] = [
    ExcludedBy::DataPolicyZdr,
    ExcludedBy::MaxPrice,
    ExcludedBy::AllowedProviders,
    ExcludedBy::Quantization,
];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (any::<u64>(), 1..4u64, 0..REASONS.len()).prop_map(|(seed, odds, by)| Op::Retain {
            seed,
            odds,
            by
        }),
        any::<u64>().prop_map(|seed| Op::MoveToBack { seed }),
        any::<u64>().prop_map(|seed| Op::Reorder { seed }),
        any::<usize>().prop_map(|foreign| Op::Lookups { foreign }),
        any::<bool>().prop_map(|privacy| Op::Unavailable { privacy }),
    ]
}

fn indices(route: &Route) -> Vec<usize> {
    route.candidates().iter().map(|c| c.index).collect()
}

fn apply(route: &mut Route, op: &Op) {
    let before = indices(route);
    let exclusions_before = route.exclusions().len();
    match *op {
        Op::Retain { seed, odds, by } => {
            let removed = route.retain(REASONS[by], |e, _| coin(seed, &e.tag) % odds != 0);
            assert_eq!(removed, before.len() - route.candidates().len());
            assert_eq!(route.exclusions().len(), exclusions_before + removed);
            for ex in &route.exclusions()[exclusions_before..] {
                assert_eq!(ex.by, REASONS[by]);
                assert!(before.contains(&ex.index) && !indices(route).contains(&ex.index));
            }
        }
        Op::MoveToBack { seed } => {
            let moved = route.move_to_back(|_, e, _| coin(seed, &e.tag) % 2 == 0);
            let marked = route
                .candidates()
                .iter()
                .filter(|c| c.reason == Reason::Deprioritized)
                .count();
            assert!(marked >= moved);
            let mut a = before.clone();
            let mut b = indices(route);
            a.sort_unstable();
            b.sort_unstable();
            assert_eq!(a, b, "move_to_back only permutes");
        }
        Op::Reorder { seed } => {
            let reasons: HashMap<usize, Reason> = route
                .candidates()
                .iter()
                .map(|c| (c.index, c.reason))
                .collect();
            route.reorder_by_key(|_, e| coin(seed, &e.tag));
            let mut a = before.clone();
            let mut b = indices(route);
            a.sort_unstable();
            b.sort_unstable();
            assert_eq!(a, b, "reorder_by_key only permutes");
            for c in route.candidates() {
                assert_eq!(reasons[&c.index], c.reason, "reorder_by_key keeps reasons");
            }
        }
        Op::Lookups { foreign } => {
            for c in route.candidates() {
                let e = route.endpoint(c);
                assert_eq!(route.get_endpoint(c), Some(e));
                assert_eq!(route.provider(c).slug, e.provider_slug());
                let _ = route.pricing(e);
            }
            let stranger = Candidate {
                index: route.catalog().all_endpoints().len() + foreign % 1000,
                model: foreign,
                reason: Reason::ByPrice,
            };
            assert!(route.get_endpoint(&stranger).is_none());
            assert!(route.get_provider(&stranger).is_none());
            assert_eq!(route.endpoint(&stranger).tag, "");
            let _ = route.provider(&stranger);
            let _ = route.pricing(route.endpoint(&stranger));
        }
        Op::Unavailable { privacy } => {
            let code = privacy.then_some(AvailabilityCode::PrivacyRestricted);
            let e = route.unavailable_as(code);
            assert_eq!(e.status(), 404);
            let e = route.unavailable();
            assert_eq!(e.status(), 404);
        }
    }
    if !matches!(op, Op::Retain { .. }) {
        assert_eq!(route.exclusions().len(), exclusions_before);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_operations_keep_the_route_consistent(
        which in 0..4usize,
        ops in prop::collection::vec(op(), 0..24),
    ) {
        let original = routes()[which].clone();
        let all: HashSet<usize> = indices(&original).into_iter().collect();
        let mut route = original.clone();
        for op in &ops {
            apply(&mut route, op);
            let now = indices(&route);
            let unique: HashSet<usize> = now.iter().copied().collect();
            prop_assert_eq!(unique.len(), now.len(), "no duplicates");
            prop_assert!(unique.is_subset(&all), "candidates stay a subset");
            for gone in all.difference(&unique) {
                prop_assert!(
                    route.exclusions().iter().any(|x| x.index == *gone),
                    "every removed candidate has an exclusion"
                );
            }
            // The models' positions still index the resolved models.
            prop_assert!(route.candidates().iter().all(|c| c.model < route.models().len()));
        }
    }
}
