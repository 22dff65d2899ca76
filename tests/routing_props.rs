//! Property tests over random catalogs and preferences: no candidate ever violates `only`, `ignore`,
//! `quantizations`, `require_parameters`, the data policy or the price cap, and `order` is honoured as a
//! prefix.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use proptest::prelude::*;
use serde_json::{json, Value};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_ai_gateway::catalog::{
    Catalog, Endpoint, Model, Parameter, Provider, ProviderDataPolicy, Quantization, Usd,
};
use tower_ai_gateway::data_policy::DataPolicyLayer;
use tower_ai_gateway::model_routing::ModelRoutingLayer;
use tower_ai_gateway::price_cap::PriceCapLayer;
use tower_ai_gateway::route::Route;

const PROVIDERS: [&str; 5] = ["alpha", "beta", "gamma", "delta", "eps"];
const PARAMS: [&str; 4] = ["tools", "response_format", "top_k", "temperature"];
const QUANTS: [Quantization; 5] = [
    Quantization::Fp4,
    Quantization::Nvfp4,
    Quantization::Fp8,
    Quantization::Bf16,
    Quantization::Unknown,
];

#[derive(Clone, Debug)]
struct EpSpec {
    provider: usize,
    variant: bool,
    price_milli: u32,
    quant: usize,
    params: u8,
    status_bad: bool,
}

fn ep_spec() -> impl Strategy<Value = EpSpec> {
    (
        0..5usize,
        any::<bool>(),
        0..10_000u32,
        0..5usize,
        any::<u8>(),
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(provider, variant, price_milli, quant, params, status_bad)| EpSpec {
                provider,
                variant,
                price_milli,
                quant,
                params,
                status_bad,
            },
        )
}

fn build(policies: &[(bool, bool, bool)], models: &[Vec<EpSpec>]) -> Catalog {
    let mut b = Catalog::builder();
    for (i, slug) in PROVIDERS.iter().enumerate() {
        let (training, retains, zdr) = policies[i];
        b = b.provider(
            Provider::new(*slug, slug.to_uppercase()).data_policy(ProviderDataPolicy {
                training,
                retains_prompts: retains,
                retention_days: None,
                zdr,
            }),
        );
    }
    for (mi, eps) in models.iter().enumerate() {
        let id = format!("m/model-{mi}");
        b = b.model(Model::new(id.clone(), id.clone()));
        let mut seen = std::collections::HashSet::new();
        for s in eps {
            let tag = if s.variant {
                format!("{}/v", PROVIDERS[s.provider])
            } else {
                PROVIDERS[s.provider].to_string()
            };
            if !seen.insert(tag.clone()) {
                continue;
            }
            let mut e = Endpoint::new(id.clone(), tag);
            // Prices in thousandths of a dollar per million tokens.
            let per_m = Usd::from_decimal(rust_decimal::Decimal::new(s.price_milli as i64, 3));
            e.pricing.prompt = per_m.from_per_million();
            e.pricing.completion = per_m.from_per_million();
            e.quantization = Some(QUANTS[s.quant]);
            e.supported_parameters = PARAMS
                .iter()
                .enumerate()
                .filter(|(i, _)| s.params & (1 << i) != 0)
                .map(|(_, p)| p.to_string())
                .collect();
            e.context_length = 100_000;
            e.status = if s.status_bad { -2 } else { 0 };
            b = b.endpoint(e);
        }
    }
    b.build().unwrap()
}

async fn echo(req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let route = req.extensions().get::<Route>().unwrap();
    let c: Vec<String> = route
        .candidates()
        .iter()
        .map(|c| route.endpoint(c).key().to_string())
        .collect();
    Ok(Response::new(Full::new(Bytes::from(
        serde_json::to_vec(&c).unwrap(),
    ))))
}

fn slug_or_tag() -> impl Strategy<Value = String> {
    (0..5usize, any::<bool>()).prop_map(|(p, v)| {
        if v {
            format!("{}/v", PROVIDERS[p])
        } else {
            PROVIDERS[p].to_string()
        }
    })
}

fn names(entry: &str, tag: &str) -> bool {
    // No tier endpoints in these catalogs: a base slug matches every endpoint of the provider.
    entry == tag || tag.split('/').next() == Some(entry)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn no_candidate_violates_a_hard_constraint(
        policies in prop::collection::vec((any::<bool>(), any::<bool>(), any::<bool>()), 5),
        models in prop::collection::vec(prop::collection::vec(ep_spec(), 1..6), 1..3),
        only in prop::option::of(prop::collection::vec(slug_or_tag(), 1..3)),
        ignore in prop::option::of(prop::collection::vec(slug_or_tag(), 1..2)),
        order in prop::option::of(prop::collection::vec(slug_or_tag(), 1..3)),
        quants in prop::option::of(prop::collection::vec(0..5usize, 1..3)),
        require in any::<bool>(),
        deny in any::<bool>(),
        zdr in any::<bool>(),
        allow_fallbacks in any::<bool>(),
        cap_milli in prop::option::of(0..10_000u32),
        params in any::<u8>(),
        sort in prop::option::of(prop::sample::select(vec!["price", "throughput", "latency", "exacto"])),
        seed in any::<u64>(),
    ) {
        let catalog = build(&policies, &models);
        let model_ids: Vec<String> = (0..models.len()).map(|i| format!("m/model-{i}")).collect();
        let mut provider = json!({"allow_fallbacks": allow_fallbacks, "require_parameters": require});
        if let Some(o) = &only { provider["only"] = json!(o); }
        if let Some(i) = &ignore { provider["ignore"] = json!(i); }
        if let Some(o) = &order { provider["order"] = json!(o); }
        if let Some(q) = &quants { provider["quantizations"] = json!(q.iter().map(|i| QUANTS[*i].as_str()).collect::<Vec<_>>()); }
        if deny { provider["data_collection"] = json!("deny"); }
        if zdr { provider["zdr"] = json!(true); }
        if let Some(c) = cap_milli { provider["max_price"] = json!({"prompt": format!("{}.{:03}", c / 1000, c % 1000)}); }
        if let Some(s) = sort { provider["sort"] = json!(s); }
        let mut body = json!({"models": model_ids, "messages": [{"role": "user", "content": "hi"}], "provider": provider});
        for (i, p) in PARAMS.iter().enumerate() {
            if params & (1 << i) != 0 {
                body[*p] = match *p { "tools" => json!([{"type": "function"}]), "response_format" => json!({"type": "json_object"}), _ => json!(1) };
            }
        }

        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (status, bytes) = rt.block_on(async {
            let mut svc = ServiceBuilder::new()
                .layer(ModelRoutingLayer::new(catalog.clone()).seed(seed))
                .layer(DataPolicyLayer::new())
                .layer(PriceCapLayer::new())
                .service_fn(echo);
            let req = Request::post("/").body(Full::new(Bytes::from(body.to_string()))).unwrap();
            let res = ServiceExt::<Request<Full<Bytes>>>::ready(&mut svc).await.unwrap().call(req).await.unwrap();
            (res.status(), res.into_body().collect().await.unwrap().to_bytes())
        });
        if status != 200 {
            let v: Value = serde_json::from_slice(&bytes).unwrap();
            prop_assert_eq!(status.as_u16(), 404, "{}", v);
            prop_assert!(v["error"]["availability"]["code"].is_string());
            return Ok(());
        }
        let cands: Vec<String> = serde_json::from_slice(&bytes).unwrap();
        prop_assert!(!cands.is_empty());
        let req_params = tower_ai_gateway::catalog::ParamSet::from_names(
            PARAMS.iter().enumerate().filter(|(i, _)| params & (1 << i) != 0).map(|(_, p)| *p));
        for key in &cands {
            let (model, tag) = key.split_once('@').unwrap();
            let e = catalog.endpoints(model).iter().find(|e| e.tag == tag).unwrap();
            let p = catalog.provider(e.provider_slug()).unwrap();
            if let Some(o) = &only { prop_assert!(o.iter().any(|x| names(x, tag)), "only {:?} vs {}", o, tag); }
            if let Some(i) = &ignore { prop_assert!(!i.iter().any(|x| names(x, tag)), "ignore {:?} vs {}", i, tag); }
            if let Some(q) = &quants {
                prop_assert!(q.iter().any(|i| QUANTS[*i].admits(e.quantization_or_unknown())));
            }
            if require { prop_assert!(e.params().is_superset(req_params)); }
            if req_params.contains(Parameter::Tools) { prop_assert!(e.params().contains(Parameter::Tools)); }
            if deny { prop_assert!(!p.data_policy.training && !p.data_policy.retains_prompts); }
            if zdr { prop_assert!(p.data_policy.zdr); }
            if let Some(c) = cap_milli {
                let cap = Usd::from_decimal(rust_decimal::Decimal::new(c as i64, 3));
                prop_assert!(e.pricing.prompt.per_million() <= cap);
            }
        }
        // `order` is a prefix, per model, in list order.
        if let Some(o) = &order {
            let mut start = 0;
            while start < cands.len() {
                let model = cands[start].split('@').next().unwrap();
                let group: Vec<&str> = cands[start..].iter().take_while(|c| c.starts_with(&format!("{model}@"))).map(|c| c.split_once('@').unwrap().1).collect();
                let listed: Vec<&str> = group.iter().copied().take_while(|t| o.iter().any(|x| names(x, t))).collect();
                // Every listed endpoint of the group comes before every unlisted one…
                prop_assert!(group[listed.len()..].iter().all(|t| !o.iter().any(|x| names(x, t))), "{:?} {:?}", o, group);
                // …in the order of the list.
                let rank = |t: &str| o.iter().position(|x| names(x, t)).unwrap();
                prop_assert!(listed.windows(2).all(|w| rank(w[0]) <= rank(w[1])), "{:?} {:?}", o, listed);
                if !allow_fallbacks { prop_assert_eq!(listed.len(), group.len()); }
                start += group.len();
            }
        }
    }
}
