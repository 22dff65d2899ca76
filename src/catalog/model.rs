use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{ParamSet, Pricing};

/// `architecture` of a model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Architecture {
    /// E.g. `"text->text"`.
    #[serde(default)]
    pub modality: Option<String>,
    /// Input modalities (`"text"`, `"image"`, …).
    #[serde(default)]
    pub input_modalities: Vec<String>,
    /// Output modalities.
    #[serde(default)]
    pub output_modalities: Vec<String>,
    /// Tokenizer family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<String>,
    /// Instruct template.
    #[serde(default)]
    pub instruct_type: Option<String>,
}

/// `top_provider` of a model.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TopProvider {
    /// Context length of the top provider.
    #[serde(default)]
    pub context_length: Option<u64>,
    /// Max completion tokens of the top provider.
    #[serde(default)]
    pub max_completion_tokens: Option<u64>,
    /// Whether the top provider moderates.
    #[serde(default)]
    pub is_moderated: bool,
}

/// `alias_target` of a `~author/family-latest` alias.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasTarget {
    /// The concrete model id.
    pub slug: String,
    /// Its display name.
    #[serde(default)]
    pub name: String,
}

/// A model: OpenRouter's `Model` object (<https://openrouter.ai/docs/guides/overview/models>).
///
/// Fields routing does not use are kept in [`Model::extra`] so that `/models` serves them back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Model {
    /// Routable id, e.g. `"openai/gpt-4o-mini"`, `"meta-llama/llama-3.3-70b-instruct:free"`.
    pub id: String,
    /// Permanent slug.
    #[serde(default)]
    pub canonical_slug: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Unix seconds.
    #[serde(default)]
    pub created: i64,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Largest context length over the endpoints.
    #[serde(default)]
    pub context_length: Option<u64>,
    /// Modalities and tokenizer.
    #[serde(default)]
    pub architecture: Architecture,
    /// Prices (the default endpoint's).
    #[serde(default)]
    pub pricing: Pricing,
    /// Limits of the top provider.
    #[serde(default)]
    pub top_provider: TopProvider,
    /// Union of the endpoints' supported parameters, as listed.
    #[serde(default)]
    pub supported_parameters: Vec<String>,
    /// Reasoning capabilities, as OpenRouter reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<Value>,
    /// For `~…-latest` aliases: the model it resolves to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias_target: Option<AliasTarget>,
    /// Whether the author allows text distillation (`enforce_distillable_text`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distillable: Option<bool>,
    /// Every other field, kept as it was read.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Model {
    /// A model with `id` and `name` and nothing else.
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> Self {
        let id = id.into();
        Model {
            canonical_slug: id.clone(),
            id,
            name: name.into(),
            created: 0,
            description: None,
            context_length: None,
            architecture: Architecture::default(),
            pricing: Pricing::default(),
            top_provider: TopProvider::default(),
            supported_parameters: Vec::new(),
            reasoning: None,
            alias_target: None,
            distillable: None,
            extra: Map::new(),
        }
    }

    /// The supported parameters as a set.
    pub fn param_set(&self) -> ParamSet {
        ParamSet::from_names(self.supported_parameters.iter().map(String::as_str))
    }

    /// `author` of `author/slug[:variant]`.
    pub fn author(&self) -> &str {
        self.id.split('/').next().unwrap_or("")
    }

    /// The id without its `:variant` suffix.
    pub fn base_id(&self) -> &str {
        split_variant(&self.id).0
    }
}

/// Splits `author/slug:variant` into (`author/slug`, `Some("variant")`).
pub fn split_variant(id: &str) -> (&str, Option<&str>) {
    // Only a colon after the last '/' starts a variant.
    let slash = id.rfind('/').map_or(0, |i| i + 1);
    match id[slash..].find(':') {
        Some(i) => (&id[..slash + i], Some(&id[slash + i + 1..])),
        None => (id, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_split() {
        assert_eq!(split_variant("a/b:free"), ("a/b", Some("free")));
        assert_eq!(split_variant("a/b"), ("a/b", None));
        assert_eq!(split_variant("~a/b-latest"), ("~a/b-latest", None));
    }
}
