//! Deterministic answers on the embeddings wire (`POST …/embeddings`,
//! <https://platform.openai.com/docs/api-reference/embeddings/create>).

use base64::Engine;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::rng::SimRng;
use crate::hash::fast_hash;

/// Vector length when the request names no `dimensions`.
pub(crate) const DEFAULT_DIMENSIONS: usize = 16;

/// Largest `dimensions` the simulator answers.
const MAX_DIMENSIONS: usize = 4096;

#[derive(Deserialize)]
struct EmbeddingsRequest {
    model: Option<String>,
    input: Option<Input>,
    encoding_format: Option<String>,
    dimensions: Option<usize>,
}

/// `input`: a string, strings, or token arrays.
#[derive(Deserialize)]
#[serde(untagged)]
enum Input {
    One(String),
    Many(Vec<String>),
    Tokens(Vec<u32>),
    ManyTokens(Vec<Vec<u32>>),
}

impl Input {
    /// Each input as text (token arrays by their decimal ids) and its estimated tokens.
    fn items(self) -> Vec<(String, u64)> {
        let text = |s: String| {
            let n = (s.len() as u64).div_ceil(4).max(1);
            (s, n)
        };
        let tokens = |t: Vec<u32>| {
            let n = t.len().max(1) as u64;
            (format!("{t:?}"), n)
        };
        match self {
            Input::One(s) => vec![text(s)],
            Input::Many(v) => v.into_iter().map(text).collect(),
            Input::Tokens(t) => vec![tokens(t)],
            Input::ManyTokens(v) => v.into_iter().map(tokens).collect(),
        }
    }
}

/// The unit vector of `dimensions` for `text`: the same text always gets the same vector.
pub(crate) fn vector(text: &str, dimensions: usize) -> Vec<f32> {
    let mut rng = SimRng::new(fast_hash(text));
    let v: Vec<f64> = (0..dimensions).map(|_| rng.standard_normal()).collect();
    let norm = v
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
        .max(f64::MIN_POSITIVE);
    v.iter().map(|x| (x / norm) as f32).collect()
}

/// The answer to an embeddings request body, or the message of a 400.
pub(crate) fn answer(body: &[u8]) -> Result<Bytes, String> {
    let req: EmbeddingsRequest = serde_json::from_slice(body)
        .map_err(|e| format!("We could not parse the JSON body of your request: {e}"))?;
    let model = req.model.ok_or("you must provide a model parameter")?;
    let input = req.input.ok_or("'input' is a required property")?;
    let dimensions = req.dimensions.unwrap_or(DEFAULT_DIMENSIONS);
    if dimensions == 0 || dimensions > MAX_DIMENSIONS {
        return Err(format!(
            "'dimensions' must be between 1 and {MAX_DIMENSIONS}"
        ));
    }
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => return Err(format!("'{other}' is not one of ['float', 'base64']")),
    };
    let items = input.items();
    if items.is_empty() {
        return Err("'input' must not be empty".into());
    }
    let prompt: u64 = items.iter().map(|(_, n)| n).sum();
    let data: Vec<Value> = items
        .iter()
        .enumerate()
        .map(|(i, (text, _))| {
            let v = vector(text, dimensions);
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::from(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                Value::from(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let out = json!({"object": "list", "data": data, "model": model,
        "usage": {"prompt_tokens": prompt, "total_tokens": prompt}});
    Ok(Bytes::from(out.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(body: &str) -> Result<Value, String> {
        answer(body.as_bytes()).map(|b| serde_json::from_slice(&b).unwrap())
    }

    #[test]
    fn inputs_usage_and_errors() {
        let v = json(r#"{"model":"m","input":[[1,2,3],[4]]}"#).unwrap();
        assert_eq!(v["data"].as_array().unwrap().len(), 2);
        assert_eq!(
            v["data"][0]["embedding"].as_array().unwrap().len(),
            DEFAULT_DIMENSIONS
        );
        assert_eq!(
            v["usage"],
            serde_json::json!({"prompt_tokens": 4, "total_tokens": 4})
        );
        let v = json(r#"{"model":"m","input":"12345678"}"#).unwrap();
        assert_eq!(v["usage"]["prompt_tokens"], 2);
        for bad in [
            r#"{"input":"x"}"#,
            r#"{"model":"m"}"#,
            r#"{"model":"m","input":[]}"#,
            r#"{"model":"m","input":"x","dimensions":0}"#,
            r#"{"model":"m","input":"x","dimensions":100000}"#,
            r#"{"model":"m","input":"x","encoding_format":"hex"}"#,
            r#"{"model":"m","input":{"a":1}}"#,
            "nope",
        ] {
            assert!(json(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn vectors_depend_on_the_text_only() {
        assert_eq!(vector("a", 3), vector("a", 3));
        assert_ne!(vector("a", 3), vector("b", 3));
        assert_eq!(vector("a", 3)[..], vector("a", 3)[..3]);
    }
}
