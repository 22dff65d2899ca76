use std::sync::Arc;

use crate::catalog::{split_variant, Catalog};
use crate::error::{Availability, AvailabilityCode, GatewayError};
use crate::route::SortBy;

/// A requested model resolved against the catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ModelPlan {
    /// As the request named it (the same allocation as `id` when it named the model by its id).
    pub(crate) requested: Arc<str>,
    /// The catalog model, shared with the catalog.
    pub(crate) id: Arc<str>,
    /// `:free` on a model without a separate free model: only free endpoints.
    pub(crate) free_only: bool,
    /// Sort implied by a variant.
    pub(crate) sort: Option<SortBy>,
    /// Tier endpoints a variant admits.
    pub(crate) admit_priority: bool,
    pub(crate) admit_flex: bool,
}

fn not_found(requested: &str, why: String) -> GatewayError {
    GatewayError::unavailable(
        why,
        Availability::new(AvailabilityCode::ModelNotFound, vec![requested.to_string()]),
    )
    .with_metadata("field", "model")
}

/// The plan of the catalog model `id`, named `requested`: the names shared with the catalog, so a
/// request that names a model by its id allocates none.
fn plan(catalog: &Catalog, requested: &str, id: &str) -> ModelPlan {
    let id = catalog
        .model_id(id)
        .cloned()
        .unwrap_or_else(|| Arc::from(id));
    let requested = if requested == &*id {
        id.clone()
    } else {
        Arc::from(requested)
    };
    ModelPlan {
        requested,
        id,
        free_only: false,
        sort: None,
        admit_priority: false,
        admit_flex: false,
    }
}

/// Resolves operator aliases, `~author/family-latest` aliases and variant suffixes.
pub(crate) fn resolve(catalog: &Catalog, requested: &str) -> Result<ModelPlan, GatewayError> {
    let name = catalog.alias(requested).unwrap_or(requested);

    if let Some(m) = catalog.model(name) {
        // An alias model (`~…-latest`) resolves to its target when the catalog has it.
        if let Some(t) = &m.alias_target {
            if catalog.model(&t.slug).is_some() {
                return Ok(plan(catalog, requested, &t.slug));
            }
        }
        return Ok(plan(catalog, requested, name));
    }

    if let Some(family) = name.strip_prefix('~') {
        return family_latest(catalog, requested, family);
    }

    let (base, variant) = split_variant(name);
    let Some(variant) = variant else {
        return Err(not_found(
            requested,
            format!("`{requested}` is not a valid model ID"),
        ));
    };
    if catalog.model(base).is_none() {
        return Err(not_found(
            requested,
            format!("`{requested}` is not a valid model ID"),
        ));
    }
    with_variant(plan(catalog, requested, base), variant)
}

/// `~author/family-latest`: the newest (`created`) model of the family that is not itself an alias
/// or a variant.
fn family_latest(
    catalog: &Catalog,
    requested: &str,
    family: &str,
) -> Result<ModelPlan, GatewayError> {
    let family = family.strip_suffix("-latest").unwrap_or(family);
    let newest = catalog
        .models()
        .iter()
        .filter(|m| m.alias_target.is_none() && !m.id.starts_with('~'))
        .filter(|m| {
            let (base, variant) = split_variant(&m.id);
            variant.is_none()
                && base
                    .strip_prefix(family)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with(['-', '.']))
        })
        .max_by_key(|m| m.created);
    match newest {
        Some(m) => Ok(plan(catalog, requested, &m.id)),
        None => Err(not_found(
            requested,
            format!("`{requested}`: no model of the family `{family}` is available"),
        )),
    }
}

/// What a variant suffix of a catalog model means for its plan.
fn with_variant(mut p: ModelPlan, variant: &str) -> Result<ModelPlan, GatewayError> {
    let (requested, base) = (&*p.requested, &*p.id);
    match variant {
        "free" => p.free_only = true,
        "nitro" => {
            p.sort = Some(SortBy::Throughput);
            p.admit_priority = true;
        }
        "floor" => {
            p.sort = Some(SortBy::Price);
            p.admit_flex = true;
        }
        "exacto" => p.sort = Some(SortBy::Exacto),
        "thinking" | "extended" => {
            return Err(not_found(
                requested,
                format!("`{base}` has no `:{variant}` version in this catalog"),
            ))
        }
        "online" => {
            return Err(GatewayError::invalid_request(
                "model",
                "the deprecated `:online` variant (web search) is not supported by this gateway",
            ))
        }
        other => {
            return Err(GatewayError::invalid_request(
                "model",
                &format!(
                    "unknown model variant `:{other}` (expected :free, :nitro, :floor, :exacto, :thinking or :extended)"
                ),
            ))
        }
    }
    Ok(p)
}
