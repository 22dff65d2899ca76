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
    /// The position of the catalog model in [`Catalog::models`] (its endpoints and its record
    /// are then read without another lookup by id).
    pub(crate) index: usize,
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

/// The plan of the catalog model at `index` (whose shared id is `id`), named `requested`: the
/// names shared with the catalog, so a request that names a model by its id allocates none.
fn plan(requested: &str, index: usize, id: &Arc<str>) -> ModelPlan {
    let id = id.clone();
    let requested = if requested == &*id {
        id.clone()
    } else {
        Arc::from(requested)
    };
    ModelPlan {
        requested,
        id,
        index,
        free_only: false,
        sort: None,
        admit_priority: false,
        admit_flex: false,
    }
}

/// Resolves operator aliases, `~author/family-latest` aliases and variant suffixes.
pub(crate) fn resolve(catalog: &Catalog, requested: &str) -> Result<ModelPlan, GatewayError> {
    let name = catalog.alias(requested).unwrap_or(requested);

    if let Some((index, id)) = catalog.model_entry(name) {
        // An alias model (`~…-latest`) resolves to its target when the catalog has it.
        let target = catalog
            .model_at(index)
            .and_then(|m| m.alias_target.as_ref());
        if let Some((ti, tid)) = target.and_then(|t| catalog.model_entry(&t.slug)) {
            return Ok(plan(requested, ti, tid));
        }
        return Ok(plan(requested, index, id));
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
    let Some((index, id)) = catalog.model_entry(base) else {
        return Err(not_found(
            requested,
            format!("`{requested}` is not a valid model ID"),
        ));
    };
    with_variant(plan(requested, index, id), variant)
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
        .enumerate()
        .filter(|(_, m)| m.alias_target.is_none() && !m.id.starts_with('~'))
        .filter(|(_, m)| {
            let (base, variant) = split_variant(&m.id);
            variant.is_none()
                && base
                    .strip_prefix(family)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with(['-', '.']))
        })
        .max_by_key(|(_, m)| m.created)
        .and_then(|(index, _)| Some((index, catalog.model_id_at(index)?)));
    match newest {
        Some((index, id)) => Ok(plan(requested, index, id)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{AliasTarget, Endpoint, Model, Provider};

    /// Three models (so a wrong position shows), an `~…-latest` alias model and an operator alias.
    fn catalog() -> Catalog {
        let mut latest = Model::new("~acme/chat-latest", "Acme Chat (latest)");
        latest.alias_target = Some(AliasTarget {
            slug: "acme/chat-2".into(),
            name: String::new(),
        });
        let mut newer = Model::new("acme/chat-2", "Acme Chat 2");
        newer.created = 2;
        Catalog::builder()
            .provider(Provider::new("p", "P"))
            .model(Model::new("acme/chat-1", "Acme Chat 1"))
            .model(latest)
            .model(newer)
            .model(Model::new("other/model", "Other"))
            .endpoint(Endpoint::new("acme/chat-1", "p"))
            .endpoint(Endpoint::new("acme/chat-2", "p"))
            .endpoint(Endpoint::new("other/model", "p"))
            .alias("short", "other/model")
            .build()
            .expect("catalog")
    }

    /// Every way of naming a model gives a plan whose position is that of the model it names.
    #[test]
    fn the_position_is_the_resolved_model() {
        let catalog = catalog();
        let cases = [
            ("acme/chat-1", "acme/chat-1"),
            ("other/model", "other/model"),
            ("short", "other/model"),
            ("~acme/chat-latest", "acme/chat-2"),
            ("~acme/chat", "acme/chat-2"),
            ("acme/chat-1:nitro", "acme/chat-1"),
            ("other/model:floor", "other/model"),
        ];
        for (requested, id) in cases {
            let p = resolve(&catalog, requested).expect(requested);
            assert_eq!(&*p.id, id, "{requested}");
            assert_eq!(&*p.requested, requested);
            assert_eq!(catalog.model_id_at(p.index).map(|s| &**s), Some(id));
            assert_eq!(catalog.model_at(p.index).map(|m| m.id.as_str()), Some(id));
            let served: Vec<_> = catalog.all_endpoints()[catalog.endpoint_range_at(p.index)]
                .iter()
                .map(|e| e.model_id.as_str())
                .collect();
            assert_eq!(served, [id], "{requested}");
        }
        assert!(resolve(&catalog, "acme/none").is_err());
        assert!(resolve(&catalog, "acme/none:nitro").is_err());
    }
}
