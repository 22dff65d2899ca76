//! Router models: `openrouter/auto` and `openrouter/free`
//! (<https://openrouter.ai/docs/guides/routing/routers/auto-router>), expanded into ordinary
//! model ids before the rest of routing.
//!
//! * `openrouter/auto` asks the layer's [`AutoRouter`] for a ranked list of models; the
//!   `auto-router` plugin's `allowed_models` / `excluded_models` patterns filter it (excluded wins),
//!   and the first [`AUTO_MODELS`] become the primary model and its fallbacks. Nothing left is a 404
//!   "No models match your request and model restrictions". The request is priced as the model
//!   that serves it, and `max_price` still applies (the expanded models are routed as usual).
//! * `openrouter/free` picks at random (from the layer's seed) among the catalog's free models that
//!   support what the request needs; the others follow, shuffled, as fallbacks.

use crate::catalog::{Catalog, Model, Parameter};
use crate::error::{Availability, AvailabilityCode, GatewayError};
use crate::route::RequestView;

/// The router model that asks the [`AutoRouter`].
pub const AUTO: &str = "openrouter/auto";
/// The router model that picks a free model.
pub const FREE: &str = "openrouter/free";
/// How many of the ranked models a router model expands to: the first is tried first, the others
/// are its fallbacks.
pub const AUTO_MODELS: usize = 3;

/// What a request needs of a model, read from its routing view.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Needs {
    /// It sends `tools`.
    pub tools: bool,
    /// Its messages carry images.
    pub images: bool,
    /// It asks for structured output (`response_format`).
    pub structured: bool,
    /// It asks for reasoning.
    pub reasoning: bool,
    /// Its prompt, estimated in tokens.
    pub prompt_tokens: u64,
}

impl Needs {
    /// The needs of the request `view` describes.
    pub fn of(view: &RequestView<'_>) -> Needs {
        let p = view.params;
        Needs {
            tools: p.contains(Parameter::Tools),
            images: view.image_parts > 0,
            structured: p.contains(Parameter::ResponseFormat)
                || p.contains(Parameter::StructuredOutputs),
            reasoning: p.contains(Parameter::Reasoning)
                || p.contains(Parameter::ReasoningEffort)
                || p.contains(Parameter::IncludeReasoning),
            prompt_tokens: view.prompt_estimate(),
        }
    }

    /// Whether `m` can serve such a request, by what the catalog says of it (a model that lists no
    /// parameters or modalities is not excluded for them).
    pub fn met_by(&self, m: &Model) -> bool {
        let params = &m.supported_parameters;
        let has = |name: &str| params.is_empty() || params.iter().any(|p| p == name);
        let inputs = &m.architecture.input_modalities;
        (!self.tools || has("tools"))
            && (!self.structured || has("response_format") || has("structured_outputs"))
            && (!self.reasoning || has("reasoning"))
            && (!self.images || inputs.is_empty() || inputs.iter().any(|i| i == "image"))
            && m.context_length
                .is_none_or(|c| c == 0 || c >= self.prompt_tokens)
    }
}

/// Ranks models for `openrouter/auto`: request features in, model ids out, best first.
///
/// Implement it to route with your own classifier; [`TieredRouter`] is the default, which needs no
/// network and no model weights.
pub trait AutoRouter: Send + Sync + 'static {
    /// Model ids of `catalog` for a request with these `needs`, best first.
    fn rank(&self, needs: &Needs, catalog: &Catalog) -> Vec<String>;
}

/// One tier of [`TieredRouter`]: the models to use while a request is within its limits.
#[derive(Clone, Debug, Default)]
pub struct Tier {
    /// The largest prompt (estimated tokens) this tier takes; `None`: any.
    pub max_prompt_tokens: Option<u64>,
    /// Whether requests with tools may use it.
    pub tools: bool,
    /// Whether requests that ask for reasoning may use it.
    pub reasoning: bool,
    /// Its models, in the operator's order of preference.
    pub models: Vec<String>,
}

/// The default [`AutoRouter`]: the operator's tiers, first match wins — a tier matches when the
/// prompt fits its `max_prompt_tokens` and it allows the request's tools and reasoning; its models
/// that meet the request's [`Needs`] come first, in the tier's order. Without tiers (or after
/// them), every capable catalog model follows, cheapest first (by prompt + completion price), so
/// a request always has somewhere to go.
#[derive(Clone, Debug, Default)]
pub struct TieredRouter {
    tiers: Vec<Tier>,
}

impl TieredRouter {
    /// A router over `tiers`, tried in order.
    pub fn new(tiers: Vec<Tier>) -> Self {
        TieredRouter { tiers }
    }
}

impl AutoRouter for TieredRouter {
    fn rank(&self, needs: &Needs, catalog: &Catalog) -> Vec<String> {
        let fits = |t: &&Tier| {
            t.max_prompt_tokens.is_none_or(|m| needs.prompt_tokens <= m)
                && (t.tools || !needs.tools)
                && (t.reasoning || !needs.reasoning)
        };
        let capable = |id: &str| catalog.model(id).is_some_and(|m| needs.met_by(m));
        let mut out: Vec<String> = Vec::new();
        if let Some(tier) = self.tiers.iter().find(fits) {
            out.extend(tier.models.iter().filter(|id| capable(id)).cloned());
        }
        let mut rest: Vec<&Model> = catalog
            .models()
            .iter()
            .filter(|m| is_routable(m, catalog) && needs.met_by(m))
            .collect();
        rest.sort_by_key(|m| m.pricing.blended());
        for m in rest {
            if !out.contains(&m.id) {
                out.push(m.id.clone());
            }
        }
        out
    }
}

/// A model requests can be sent to: it has endpoints, a known price, and is not a router itself.
fn is_routable(m: &Model, catalog: &Catalog) -> bool {
    !m.pricing.is_variable()
        && !m.id.starts_with("openrouter/")
        && !catalog.endpoints(&m.id).is_empty()
}

/// The model ids a router model stands for, or `None` when `name` is not a router model.
pub(crate) fn expand(
    name: &str,
    view: &RequestView<'_>,
    catalog: &Catalog,
    router: &dyn AutoRouter,
    draw: u64,
) -> Option<Result<Vec<String>, GatewayError>> {
    let ids = match name {
        AUTO => {
            let plugin = view.auto_router.as_deref();
            router
                .rank(&Needs::of(view), catalog)
                .into_iter()
                .filter(|id| plugin.is_none_or(|p| p.admits(id)))
                .take(AUTO_MODELS)
                .collect()
        }
        FREE => free(&Needs::of(view), catalog, draw),
        _ => return None,
    };
    if ids.is_empty() {
        return Some(Err(GatewayError::unavailable(
            "No models match your request and model restrictions",
            Availability::new(AvailabilityCode::ConstraintFiltered, vec![name.to_string()]),
        )
        .with_metadata("field", "model")));
    }
    Some(Ok(ids))
}

/// Up to [`AUTO_MODELS`] capable free models in an order drawn from `draw`.
fn free(needs: &Needs, catalog: &Catalog, draw: u64) -> Vec<String> {
    let mut ids: Vec<String> = catalog
        .models()
        .iter()
        .filter(|m| {
            (m.id.ends_with(":free") || m.pricing.is_free())
                && is_routable(m, catalog)
                && needs.met_by(m)
        })
        .map(|m| m.id.clone())
        .collect();
    // A seeded Fisher–Yates shuffle.
    let mut state = draw;
    for i in (1..ids.len()).rev() {
        let r = crate::route::splitmix(&mut state);
        ids.swap(i, (r % (i as u64 + 1)) as usize);
    }
    ids.truncate(AUTO_MODELS);
    ids
}
