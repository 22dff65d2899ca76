//! Presets: named request configurations kept by the operator
//! (<https://openrouter.ai/docs/guides/features/presets>).
//!
//! A request names a preset in one of the three documented ways:
//!
//! * `"model": "@preset/NAME"` — the preset supplies the model (or `models`);
//! * `"preset": "NAME"` beside an explicit `model`;
//! * `"model": "AUTHOR/SLUG@preset/NAME"` — the combined form: the named model, the preset's other
//!   settings.
//!
//! The preset and the request are **shallow-merged, the request winning**, as the page's "Other
//! Notes" say: every top-level member the request sends (and is not `null`) stays as sent; every
//! member of the preset the request lacks is added. So a request's `provider` object replaces the
//! preset's whole `provider`, not field by field. The preset's `system_prompt` becomes a leading
//! `system` message unless the request already starts with a `system` or `developer` message
//! (the gateway's reading of "the request wins" for the one setting that is not a body member); a
//! legacy `prompt` request gets no system message.
//!
//! Parse once still holds for every other request: ModelRouting parses the body first and calls
//! [`Presets::apply`] only when the parsed view has a `preset` member or `@preset/` in its
//! `model` (escaped or not), or when the body does not parse as it is (its preset may complete it).
//! Only a request that names a preset is parsed into a tree, merged and serialised again (members
//! in sorted order) before [`RequestView`](super::RequestView) reads it again.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::{ErrorType, GatewayError};

/// The marker of a preset in a `model` value.
pub(crate) const MODEL_MARK: &str = "@preset/";

/// Request members a preset may not hold: they belong to one request, not to a configuration.
const TRANSIENT: &[&str] = &["messages", "prompt", "input", "stream", "preset"];

/// One preset: a model (or a `models` list), provider preferences, a system prompt and any other
/// request parameters (`temperature`, `max_tokens`, `reasoning`, …), as an operator writes it,
/// e.g. in TOML:
///
/// ```toml
/// [presets.support]
/// model = "openai/gpt-4o-mini"
/// system_prompt = "You answer support questions briefly."
/// temperature = 0.2
/// max_tokens = 300
/// provider = { sort = "price" }
/// ```
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct Preset {
    /// The model the preset serves (used when the request names none).
    #[serde(default)]
    pub model: Option<String>,
    /// Fallback models, as the request's `models`.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// Provider preferences, as the request's `provider` object.
    #[serde(default)]
    pub provider: Option<Value>,
    /// A system prompt put before the request's messages.
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// Every other member, added to the request body as written.
    #[serde(flatten)]
    pub parameters: Map<String, Value>,
}

impl Preset {
    /// The preset's members as request body members (without the system prompt).
    fn members(&self) -> impl Iterator<Item = (String, Value)> + '_ {
        let named = [
            ("model", self.model.clone().map(Value::from)),
            ("models", self.models.clone().map(Value::from)),
            ("provider", self.provider.clone()),
        ];
        named
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_owned(), v?)))
            .chain(self.parameters.iter().map(|(k, v)| (k.clone(), v.clone())))
    }
}

/// The operator's presets by name (cheap to clone). Given to ModelRouting with
/// [`ModelRoutingLayer::presets`](crate::model_routing::ModelRoutingLayer::presets), which applies
/// them before it parses a request.
#[derive(Clone, Default)]
pub struct Presets {
    by_name: Arc<BTreeMap<String, Preset>>,
}

impl fmt::Debug for Presets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.by_name.keys()).finish()
    }
}

/// The name of the preset a request used; ModelRouting puts it in the request extensions and
/// UsageMeter copies it to the generation record (`preset_id`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedPreset(pub Arc<str>);

/// The members [`Presets::apply`] reads before deciding anything.
#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    preset: Option<&'a RawValue>,
}

/// Which preset a request names, and the model it names itself.
struct Named {
    preset: String,
    /// `Some(None)`: drop the request's `model` (it was `@preset/NAME`); `Some(Some(m))`: set it to
    /// `m` (the combined form); `None`: leave it.
    model: Option<Option<String>>,
}

impl Presets {
    /// The presets in `by_name`. A name must be non-empty and use no `/` or `@`; a preset may not
    /// hold `messages`, `prompt`, `input`, `stream` or `preset`, and its `provider` must be an
    /// object.
    pub fn new(by_name: BTreeMap<String, Preset>) -> Result<Self, String> {
        for (name, p) in &by_name {
            if name.is_empty() || name.contains(['/', '@']) || name.trim() != name {
                return Err(format!(
                    "preset name `{name}`: use letters, digits, `-`, `_`"
                ));
            }
            if let Some(k) = TRANSIENT.iter().find(|k| p.parameters.contains_key(**k)) {
                return Err(format!("preset `{name}`: `{k}` cannot be part of a preset"));
            }
            if p.provider.as_ref().is_some_and(|v| !v.is_object()) {
                return Err(format!("preset `{name}`: `provider` must be a table"));
            }
        }
        Ok(Presets {
            by_name: Arc::new(by_name),
        })
    }

    /// Presets from a JSON object of name → preset.
    pub fn from_json(json: &[u8]) -> Result<Self, String> {
        let map: BTreeMap<String, Preset> =
            serde_json::from_slice(json).map_err(|e| e.to_string())?;
        Self::new(map)
    }

    /// The preset called `name`.
    pub fn get(&self, name: &str) -> Option<&Preset> {
        self.by_name.get(name)
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The body with the preset it names merged in, and the preset's name; `Ok(None)` when the
    /// body names no preset (or is not a JSON object: the request parser explains that).
    ///
    /// # Errors
    ///
    /// 404 `not_found` for a preset that does not exist; 400 `invalid_request` for a `preset`
    /// that is not a string, an empty name, or a body whose `model` and `preset` name different
    /// presets.
    pub fn apply(&self, body: &[u8]) -> Result<Option<(Bytes, AppliedPreset)>, GatewayError> {
        let Some(named) = named(body)? else {
            return Ok(None);
        };
        let Some(preset) = self.by_name.get(&named.preset) else {
            return Err(GatewayError::new(
                ErrorType::NotFound,
                format!("Preset `{}` not found", named.preset),
            )
            .with_metadata("preset", named.preset));
        };
        let Ok(Value::Object(mut obj)) = serde_json::from_slice::<Value>(body) else {
            return Ok(None);
        };
        obj.remove("preset");
        match named.model {
            Some(Some(m)) => drop(obj.insert("model".into(), Value::from(m))),
            Some(None) => drop(obj.remove("model")),
            None => {}
        }
        merge(&mut obj, preset);
        let bytes = serde_json::to_vec(&Value::Object(obj)).map_err(|e| {
            GatewayError::new(ErrorType::Server, format!("preset merge failed: {e}"))
        })?;
        Ok(Some((
            Bytes::from(bytes),
            AppliedPreset(named.preset.into()),
        )))
    }
}

/// Which preset `body` names, if any.
fn named(body: &[u8]) -> Result<Option<Named>, GatewayError> {
    let Ok(peek) = serde_json::from_slice::<Peek<'_>>(body) else {
        return Ok(None);
    };
    let field = match peek
        .preset
        .map(|r| serde_json::from_str::<Option<String>>(r.get()))
    {
        None | Some(Ok(None)) => None,
        Some(Ok(Some(s))) => Some(s),
        Some(Err(_)) => return Err(GatewayError::invalid_request("preset", "a preset name")),
    };
    let model = peek.model.and_then(|r| {
        serde_json::from_str::<Option<String>>(r.get())
            .ok()
            .flatten()
    });
    let in_model = model.as_deref().and_then(|m| {
        let i = m.find(MODEL_MARK)?;
        let rest = &m[..i];
        Some((
            m[i + MODEL_MARK.len()..].to_owned(),
            (!rest.is_empty()).then(|| rest.to_owned()),
        ))
    });
    let named = match (field, in_model) {
        (None, None) => return Ok(None),
        (Some(p), None) => Named {
            preset: p,
            model: None,
        },
        (None, Some((p, m))) => Named {
            preset: p,
            model: Some(m),
        },
        (Some(a), Some((b, m))) if a == b => Named {
            preset: a,
            model: Some(m),
        },
        (Some(_), Some(_)) => {
            return Err(GatewayError::invalid_request(
                "preset",
                "the same preset as the `model`'s `@preset/` (or only one of them)",
            ))
        }
    };
    if named.preset.is_empty() {
        return Err(GatewayError::invalid_request("preset", "a preset name"));
    }
    Ok(Some(named))
}

/// Shallow merge, the request winning: members of `preset` that `obj` lacks (or has as `null`)
/// are added; then the system prompt.
fn merge(obj: &mut Map<String, Value>, preset: &Preset) {
    // The preset's model list replaces neither an explicit `model` nor an explicit `models`; with
    // `@preset/NAME` the request has no `model`, so the preset's applies.
    for (k, v) in preset.members() {
        match obj.get(&k) {
            Some(Value::Null) | None => drop(obj.insert(k, v)),
            Some(_) => {}
        }
    }
    let Some(system) = preset.system_prompt.as_deref() else {
        return;
    };
    let Some(Value::Array(messages)) = obj.get_mut("messages") else {
        return;
    };
    let leads = messages.first().and_then(|m| m.get("role")?.as_str());
    if !matches!(leads, Some("system" | "developer")) {
        let msg = serde_json::json!({"role": "system", "content": system});
        messages.insert(0, msg);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn presets() -> Presets {
        Presets::from_json(
            br#"{"support": {"model": "openai/gpt-4o-mini", "system_prompt": "Be brief.",
                 "temperature": 0.2, "max_tokens": 300, "provider": {"sort": "price"}},
                 "fallbacks": {"models": ["a/x", "b/y"], "top_p": 0.5}}"#,
        )
        .expect("valid presets")
    }

    fn merged(body: Value) -> Result<Option<(Value, String)>, GatewayError> {
        let out = presets().apply(body.to_string().as_bytes())?;
        Ok(out.map(|(b, p)| (serde_json::from_slice(&b).unwrap(), p.0.to_string())))
    }

    fn user() -> Value {
        json!([{"role": "user", "content": "hi"}])
    }

    #[test]
    fn model_reference_takes_everything_from_the_preset() {
        let (v, name) = merged(json!({"model": "@preset/support", "messages": user()}))
            .unwrap()
            .unwrap();
        assert_eq!(name, "support");
        assert_eq!(v["model"], "openai/gpt-4o-mini");
        assert_eq!(v["temperature"], 0.2);
        assert_eq!(v["max_tokens"], 300);
        assert_eq!(v["provider"], json!({"sort": "price"}));
        assert_eq!(
            v["messages"][0],
            json!({"role": "system", "content": "Be brief."})
        );
        assert_eq!(v["messages"][1]["role"], "user");
        assert!(v.get("preset").is_none());
    }

    #[test]
    fn the_request_wins_member_by_member() {
        let body = json!({"model": "x/y", "preset": "support", "temperature": 1.5,
            "provider": {"only": ["deepinfra"]}, "max_tokens": null,
            "messages": [{"role": "system", "content": "Mine."}, {"role": "user", "content": "hi"}]});
        let (v, _) = merged(body).unwrap().unwrap();
        assert_eq!(v["model"], "x/y");
        assert_eq!(v["temperature"], 1.5);
        // Shallow: the request's provider object replaces the preset's entirely.
        assert_eq!(v["provider"], json!({"only": ["deepinfra"]}));
        // `null` counts as not sent.
        assert_eq!(v["max_tokens"], 300);
        assert_eq!(v["messages"].as_array().unwrap().len(), 2);
        assert_eq!(v["messages"][0]["content"], "Mine.");
        assert!(v.get("preset").is_none());
    }

    #[test]
    fn combined_form_keeps_the_named_model() {
        let (v, _) =
            merged(json!({"model": "anthropic/claude@preset/fallbacks", "messages": user()}))
                .unwrap()
                .unwrap();
        assert_eq!(v["model"], "anthropic/claude");
        assert_eq!(v["models"], json!(["a/x", "b/y"]));
        assert_eq!(v["top_p"], 0.5);
        let (v, _) = merged(json!({"model": "@preset/fallbacks", "messages": user()}))
            .unwrap()
            .unwrap();
        assert!(v.get("model").is_none());
        assert_eq!(v["models"], json!(["a/x", "b/y"]));
    }

    #[test]
    fn bodies_without_a_preset_are_untouched() {
        for body in [
            json!({"model": "a/b", "messages": user()}),
            json!({"model": "a/b", "messages": [{"role": "user", "content": "a preset?"}]}),
            json!({"model": "a/b", "preset": null, "messages": user()}),
        ] {
            assert!(merged(body).unwrap().is_none());
        }
        assert!(presets().apply(b"{\"preset\": ").unwrap().is_none());
        assert!(presets().apply(b"[\"preset\"]").unwrap().is_none());
    }

    #[test]
    fn errors() {
        let e = merged(json!({"model": "@preset/nope", "messages": user()})).unwrap_err();
        assert_eq!(e.status(), 404);
        assert!(e.message().contains("nope"), "{}", e.message());
        for bad in [
            json!({"preset": 3, "messages": user()}),
            json!({"model": "@preset/", "messages": user()}),
            json!({"model": "@preset/support", "preset": "fallbacks", "messages": user()}),
        ] {
            let e = merged(bad.clone()).unwrap_err();
            assert_eq!(e.status(), 400, "{bad}");
        }
        for bad in [
            r#"{"a/b": {}}"#,
            r#"{"": {}}"#,
            r#"{"p": {"messages": []}}"#,
            r#"{"p": {"provider": "x"}}"#,
            r#"{"p": {"model": 3}}"#,
        ] {
            assert!(Presets::from_json(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
