use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use http::{header, HeaderMap, Method, Uri};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// A request as the simulator received it, kept per profile for tests
/// ([`ProfileHandle::last_request`](super::ProfileHandle::last_request)).
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// The method.
    pub method: Method,
    /// The full URI.
    pub uri: Uri,
    /// The headers, as sent.
    pub headers: HeaderMap,
    /// The body bytes.
    pub body: Bytes,
}

impl RecordedRequest {
    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The body's `model` field.
    pub fn model(&self) -> Option<String> {
        match self.json()?.get("model")? {
            serde_json::Value::String(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// The token of an `Authorization: Bearer <token>` header.
    pub fn bearer(&self) -> Option<&str> {
        let value = self.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, token) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    }
}

/// The fields of a chat request the simulator looks at, borrowed from the body.
#[derive(Debug, Deserialize)]
pub(crate) struct ChatRequest<'a> {
    #[serde(borrow, default)]
    pub(crate) model: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(crate) stream: Option<bool>,
    #[serde(default)]
    pub(crate) max_tokens: Option<u64>,
    #[serde(default)]
    pub(crate) max_completion_tokens: Option<u64>,
    #[serde(default)]
    pub(crate) messages: Option<PromptBytes>,
    /// The Anthropic Messages wire's top-level `system` (a string or text blocks).
    #[serde(default)]
    system: Option<TextBytes>,
    /// The legacy completions `prompt` (a string or strings).
    #[serde(default)]
    prompt: Option<Prompt>,
}

/// A legacy `prompt`: a string or an array of strings, counted by bytes.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Prompt {
    One(String),
    Many(Vec<String>),
}

impl Prompt {
    fn bytes(&self) -> u64 {
        match self {
            Prompt::One(s) => s.len() as u64,
            Prompt::Many(v) => v.iter().map(|s| s.len() as u64).sum(),
        }
    }
}

impl<'a> ChatRequest<'a> {
    /// Parses and validates a body (a legacy completions body, with a `prompt`, when `legacy`);
    /// `Err` carries the message of a 400 answer.
    pub(crate) fn parse(body: &'a [u8], legacy: bool) -> Result<Self, String> {
        let req: ChatRequest<'a> = serde_json::from_slice(body)
            .map_err(|e| format!("We could not parse the JSON body of your request: {e}"))?;
        if req.model.is_none() {
            return Err("you must provide a model parameter".into());
        }
        if legacy && req.prompt.is_none() {
            return Err("'prompt' is a required property".into());
        }
        if !legacy && req.messages.is_none() {
            return Err("'messages' is a required property".into());
        }
        Ok(req)
    }

    /// A chat body ([`parse`](Self::parse) without `legacy`).
    #[cfg(test)]
    pub(crate) fn parse_chat(body: &'a [u8]) -> Result<Self, String> {
        Self::parse(body, false)
    }

    /// The output cap: the smaller of `max_tokens` and `max_completion_tokens` when given.
    pub(crate) fn cap(&self) -> Option<u64> {
        match (self.max_tokens, self.max_completion_tokens) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Estimated prompt tokens: `ceil(content bytes / 4)`, at least 1.
    pub(crate) fn prompt_tokens(&self) -> u64 {
        let bytes = self
            .messages
            .as_ref()
            .map_or(0, |m| m.0)
            .saturating_add(self.system.as_ref().map_or(0, |s| s.0))
            .saturating_add(self.prompt.as_ref().map_or(0, Prompt::bytes));
        bytes.div_ceil(4).max(1)
    }
}

/// The summed byte length of the messages' text content, counted without allocating.
#[derive(Debug)]
pub(crate) struct PromptBytes(u64);

impl<'de> Deserialize<'de> for PromptBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PromptBytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of messages")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PromptBytes, A::Error> {
                let mut total = 0u64;
                while let Some(m) = seq.next_element::<Message>()? {
                    total = total.saturating_add(m.content.map_or(0, |c| c.0));
                }
                Ok(PromptBytes(total))
            }
        }
        d.deserialize_seq(V)
    }
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    content: Option<TextBytes>,
}

#[derive(Deserialize)]
struct Part<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
}

/// Byte length of a `content` value: a string, or an array of parts whose `text` fields count.
#[derive(Debug)]
struct TextBytes(u64);

impl<'de> Deserialize<'de> for TextBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TextBytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of content parts")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TextBytes, E> {
                Ok(TextBytes(v.len() as u64))
            }
            fn visit_unit<E: de::Error>(self) -> Result<TextBytes, E> {
                Ok(TextBytes(0))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<TextBytes, A::Error> {
                let mut total = 0u64;
                while let Some(p) = seq.next_element::<Part<'de>>()? {
                    total = total.saturating_add(p.text.map_or(0, |t| t.len() as u64));
                }
                Ok(TextBytes(total))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TextBytes, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(TextBytes(0))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_bytes_string_and_parts() {
        let body = br#"{"model":"m","messages":[{"role":"system","content":"12345678"},
            {"role":"user","content":[{"type":"text","text":"abcd"},{"type":"image_url","image_url":{"url":"x"}}]},
            {"role":"assistant","content":null}]}"#;
        let r = ChatRequest::parse_chat(body).expect("parses");
        assert_eq!(r.prompt_tokens(), 3);
        assert_eq!(r.model.as_deref(), Some("m"));
    }

    #[test]
    fn rejects_bad_bodies() {
        assert!(ChatRequest::parse_chat(b"{").is_err());
        assert!(ChatRequest::parse_chat(br#"{"messages":[]}"#).is_err());
        assert!(ChatRequest::parse_chat(br#"{"model":"m"}"#).is_err());
        assert!(ChatRequest::parse_chat(br#"{"model":"m","messages":"x"}"#).is_err());
        assert!(ChatRequest::parse_chat(br#"{"model":"m","messages":[],"stream":"yes"}"#).is_err());
        let ok = ChatRequest::parse_chat(
            br#"{"model":"m","messages":[],"max_tokens":5,"max_completion_tokens":3}"#,
        )
        .expect("parses");
        assert_eq!(ok.cap(), Some(3));
        assert_eq!(ok.prompt_tokens(), 1);
    }

    #[test]
    fn anthropic_system_counts() {
        let body = br#"{"model":"m","max_tokens":9,"system":[{"type":"text","text":"12345678"}],
            "messages":[{"role":"user","content":[{"type":"text","text":"abcd"}]}]}"#;
        let r = ChatRequest::parse_chat(body).expect("parses");
        assert_eq!(r.prompt_tokens(), 3);
        let r = ChatRequest::parse_chat(br#"{"model":"m","system":"abcd","messages":[]}"#)
            .expect("parses");
        assert_eq!(r.prompt_tokens(), 1);
    }

    #[test]
    fn legacy_prompts() {
        let r = ChatRequest::parse(br#"{"model":"m","prompt":["1234","5678"]}"#, true).unwrap();
        assert_eq!(r.prompt_tokens(), 2);
        assert!(ChatRequest::parse(br#"{"model":"m","messages":[]}"#, true).is_err());
        assert!(ChatRequest::parse(br#"{"model":"m","prompt":3}"#, true).is_err());
        assert!(ChatRequest::parse(br#"{"model":"m","prompt":"x"}"#, false).is_err());
    }
}
