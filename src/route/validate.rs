//! What [`RequestView::parse`](super::RequestView::parse) checks beyond the routing fields, so that a
//! body a provider would reject because of the caller's input is a 400 here, before routing, and never
//! a failed attempt that counts against a provider.
//!
//! The checks follow what OpenAI's and OpenRouter's chat-completions endpoints accept
//! (<https://openrouter.ai/docs/api/reference/parameters>,
//! <https://platform.openai.com/docs/api-reference/chat/create>):
//!
//! - nesting: at most [`MAX_DEPTH`] levels of arrays and objects anywhere in the body (a byte scan
//!   of the values serde_json skips without a recursion limit; see [`check_depth`]);
//! - duplicate members: a member the gateway knows (routing fields, the sampling parameters, the
//!   standard chat-completions fields) may appear once;
//! - `messages`: a non-empty array of objects, each with a known `role`; `content` a string, an array
//!   of parts (objects with a string `type`) or `null` (assistant messages only); `tool` messages name
//!   their `tool_call_id`;
//! - parameter types and ranges (`null` means unset and is always accepted): see [`check_param`].

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::request::AutoRouterPlugin;

use super::prefs::Str;
use crate::catalog::Parameter;

/// The deepest nesting of arrays and objects accepted anywhere in a request body (the top-level
/// object counts as one). Deeper bodies are a 400.
pub const MAX_DEPTH: usize = 100;

/// Checks the nesting depth of a value (`raw`, valid JSON) found `outer` levels deep: a byte scan
/// (strings skipped with `memchr`), run only on arrays and objects that serde_json skips without a
/// recursion limit (members kept as raw values or ignored). Members serde_json parses are bounded
/// by its own limit (128).
pub(crate) fn check_depth<E: de::Error>(raw: &str, outer: usize) -> Result<(), E> {
    let body = raw.as_bytes();
    if !matches!(body.first(), Some(b'[' | b'{')) {
        return Ok(());
    }
    let mut depth = outer;
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'"' => {
                // Skip the string: find its closing quote, stepping over escapes.
                i += 1;
                loop {
                    match memchr::memchr2(b'"', b'\\', body.get(i..).unwrap_or_default()) {
                        Some(k) if body[i + k] == b'\\' => i += k + 2,
                        Some(k) => {
                            i += k;
                            break;
                        }
                        None => return Ok(()),
                    }
                }
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(E::custom(format_args!(
                        "nested deeper than {MAX_DEPTH} levels"
                    )));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Top-level members the gateway knows that are not [`Parameter`]s: its own routing members and
/// the standard chat-completions fields. Their index is their bit in [`Seen`].
const KNOWN: &[&str] = &[
    "model",
    "models",
    "route",
    "provider",
    "stream",
    "session_id",
    "prompt_cache_key",
    "service_tier",
    "messages",
    "prompt",
    "input",
    "encoding_format",
    "dimensions",
    "transforms",
    "plugins",
    "usage",
    "debug",
    "trace",
    "preset",
    "stream_options",
    "n",
    "user",
    "metadata",
    "store",
    "modalities",
    "audio",
    "cache_control",
    "prompt_cache_options",
    "functions",
    "function_call",
    "safety_identifier",
    "image_config",
];

/// True for a top-level member that is part of the chat-completions request as every provider
/// accepts it (never dropped for an endpoint; see [`super::strip`]).
pub(crate) fn is_standard(name: &str) -> bool {
    KNOWN.contains(&name)
}

/// Which known top-level members were seen: one bit per [`KNOWN`] name and per [`Parameter`].
#[derive(Default)]
pub(crate) struct Seen(u64);

impl Seen {
    /// Marks `name` as seen; the member's name if it is a known member already seen.
    pub(crate) fn insert(&mut self, name: &str) -> Option<&'static str> {
        let (bit, name) = match KNOWN.iter().position(|k| *k == name) {
            Some(i) => (i as u32, KNOWN[i]),
            None => {
                let p = Parameter::from_name(name)?;
                (KNOWN.len() as u32 + p as u32, p.as_str())
            }
        };
        let mask = 1u64 << bit;
        let dup = self.0 & mask != 0;
        self.0 |= mask;
        dup.then_some(name)
    }
}

/// Checks the type and range of a parameter's value (`raw`, not `null`) as OpenAI and OpenRouter
/// document them: `temperature` 0–2, `top_p` / `min_p` / `top_a` 0–1, `top_k` an integer ≥ 0,
/// `frequency_penalty` / `presence_penalty` −2–2, `repetition_penalty` above 0 up to 2,
/// `top_logprobs` an integer 0–20, `seed` an integer, `stop` a string or at most 4 strings, booleans,
/// strings and objects where those are expected.
pub(crate) fn check_param<E: de::Error>(p: Parameter, raw: &str) -> Result<(), E> {
    use Parameter as P;
    if let Some(range) = number_range(p) {
        return number_in(raw, range);
    }
    match p {
        P::TopK => integer_in(raw, 0, i64::MAX),
        P::TopLogprobs => integer_in(raw, 0, 20),
        P::Seed => integer_in(raw, i64::MIN, i64::MAX),
        P::Logprobs | P::ParallelToolCalls | P::IncludeReasoning => {
            typed::<bool, E>(raw, "a boolean").map(drop)
        }
        P::ReasoningEffort | P::Verbosity => typed::<Str<'_>, E>(raw, "a string").map(drop),
        P::LogitBias | P::Prediction | P::WebSearchOptions | P::Reasoning => object(raw),
        P::ResponseFormat => response_format(raw),
        P::ToolChoice => match raw.as_bytes().first() {
            Some(b'"') | Some(b'{') => Ok(()),
            _ => Err(E::custom("expected a string or an object")),
        },
        P::Stop => stop(raw),
        P::Tools => tools(raw),
        // Read by the routing view itself (`max_tokens`, …) or not a body member.
        _ => Ok(()),
    }
}

fn typed<'a, T: Deserialize<'a>, E: de::Error>(raw: &'a str, what: &str) -> Result<T, E> {
    serde_json::from_str(raw).map_err(|_| E::custom(format_args!("expected {what}, got {raw:.40}")))
}

/// The range of a number parameter: `(lo, hi, open_low)`, the number in `[lo, hi]` (`(lo, hi]`
/// when `open_low`); `None` for the other parameters.
fn number_range(p: Parameter) -> Option<(i64, i64, bool)> {
    use Parameter as P;
    Some(match p {
        P::Temperature => (0, 2, false),
        P::TopP | P::MinP | P::TopA => (0, 1, false),
        P::FrequencyPenalty | P::PresencePenalty => (-2, 2, false),
        P::RepetitionPenalty => (0, 2, true),
        _ => return None,
    })
}

fn number_in<E: de::Error>(raw: &str, (lo, hi, open_low): (i64, i64, bool)) -> Result<(), E> {
    let n: f64 = typed(raw, "a number")?;
    let (lo, hi) = (lo as f64, hi as f64);
    let low_ok = if open_low { n > lo } else { n >= lo };
    if low_ok && n <= hi {
        Ok(())
    } else {
        let open = if open_low { "(" } else { "[" };
        Err(E::custom(format_args!(
            "expected a number in {open}{lo}, {hi}], got {n}"
        )))
    }
}

/// Most significant digits [`surely_in_range`] reads: below 2^53, so serde_json reads such a
/// number as its digits (an exact `f64`) divided by an exact power of ten, rounded once.
const PLAIN_DIGITS: usize = 15;

/// True when `raw` (a value's bytes) is the value of a number parameter that [`check_param`]
/// surely accepts, read without serde: a plain decimal (`-`? integer digits, `.` and fraction
/// digits?, no exponent, at most [`PLAIN_DIGITS`] digits) whose exact value is in the range.
/// Rounding to the nearest `f64` keeps such a value in range (the bounds are integers, exact
/// `f64`s, and it is far from underflow). False means undecided: `check_param` decides.
pub(crate) fn surely_in_range(p: Parameter, raw: &[u8]) -> bool {
    let Some((lo, hi, open_low)) = number_range(p) else {
        return false;
    };
    let (negative, unsigned) = match raw.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, raw),
    };
    // One pass: the digits as an integer, and the scale of the fraction.
    let (mut digits, mut count, mut scale, mut dot) = (0i64, 0, 1i64, false);
    for (i, c) in unsigned.iter().enumerate() {
        match c {
            b'0'..=b'9' if count < PLAIN_DIGITS => {
                digits = digits * 10 + i64::from(c - b'0');
                count += 1;
                scale *= if dot { 10 } else { 1 };
            }
            b'.' if !dot && i > 0 => dot = true,
            _ => return false,
        }
    }
    // JSON's grammar: digits after a dot, no leading zero before more integer digits.
    let leading_zero =
        unsigned.first() == Some(&b'0') && unsigned.get(1).is_some_and(u8::is_ascii_digit);
    if count == 0 || unsigned.last() == Some(&b'.') || leading_zero {
        return false;
    }
    let n = if negative { -digits } else { digits };
    // `n / scale` against the bounds, exactly: the bounds scaled instead.
    let low_ok = if open_low {
        n > lo * scale
    } else {
        n >= lo * scale
    };
    low_ok && n <= hi * scale
}

fn integer_in<E: de::Error>(raw: &str, lo: i64, hi: i64) -> Result<(), E> {
    let n: i64 = typed(raw, "an integer")?;
    if (lo..=hi).contains(&n) {
        Ok(())
    } else if hi == i64::MAX {
        Err(E::custom(format_args!(
            "expected an integer ≥ {lo}, got {n}"
        )))
    } else {
        Err(E::custom(format_args!(
            "expected an integer from {lo} to {hi}, got {n}"
        )))
    }
}

fn object<E: de::Error>(raw: &str) -> Result<(), E> {
    if raw.starts_with('{') {
        Ok(())
    } else {
        Err(E::custom("expected an object"))
    }
}

fn response_format<E: de::Error>(raw: &str) -> Result<(), E> {
    #[derive(Deserialize)]
    struct Format<'a> {
        #[serde(borrow, rename = "type")]
        _kind: std::borrow::Cow<'a, str>,
    }
    typed::<Format<'_>, E>(raw, "an object with a string `type`").map(drop)
}

fn stop<E: de::Error>(raw: &str) -> Result<(), E> {
    if raw.starts_with('"') {
        return typed::<Str<'_>, E>(raw, "a string").map(drop);
    }
    let list: Vec<Str<'_>> = typed(raw, "a string or a list of strings")?;
    if list.len() > 4 {
        return Err(E::custom("expected at most 4 stop sequences"));
    }
    Ok(())
}

fn tools<E: de::Error>(raw: &str) -> Result<(), E> {
    typed::<Vec<Obj>, E>(raw, "a list of tool objects").map(drop)
}

/// Any JSON object, skipped.
struct Obj;

impl<'de> Deserialize<'de> for Obj {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Obj;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Obj, A::Error> {
                while map
                    .next_entry::<de::IgnoredAny, de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Obj)
            }
        }
        d.deserialize_map(V)
    }
}

/// `transforms`: `null`, `[]` (compression off) or `["middle-out"]` (on); any other transform is a
/// 400, never silently ignored.
pub(crate) fn transforms<E: de::Error>(raw: &str) -> Result<Option<bool>, E> {
    let list: Option<Vec<Str<'_>>> = typed(raw, "a list of transform names")?;
    let Some(list) = list else { return Ok(None) };
    if let Some(t) = list.iter().find(|t| t.0 != "middle-out") {
        return Err(E::custom(format_args!(
            "unknown transform `{:.40}` (this gateway runs only `middle-out`)",
            t.0
        )));
    }
    Ok(Some(!list.is_empty()))
}

/// `plugins`: `context-compression` turns compression on; a plugin this gateway cannot run (`web`,
/// `file-parser`, `response-healing`, …) is a 400 unless it is `"enabled": false`.
pub(crate) fn plugins<E: de::Error>(
    raw: &str,
) -> Result<(Option<bool>, Option<AutoRouterPlugin>), E> {
    #[derive(Deserialize)]
    struct Plugin<'a> {
        #[serde(borrow)]
        id: std::borrow::Cow<'a, str>,
        #[serde(default)]
        enabled: Option<bool>,
        #[serde(default)]
        allowed_models: Vec<String>,
        #[serde(default)]
        excluded_models: Vec<String>,
    }
    let list: Option<Vec<Plugin<'_>>> = typed(raw, "a list of plugin objects with an `id`")?;
    let (mut on, mut router) = (None, None);
    for p in list.into_iter().flatten() {
        match (&*p.id, p.enabled) {
            ("context-compression", e) => on = Some(e.unwrap_or(true)),
            (_, Some(false)) => {}
            ("auto-router", _) => {
                router = Some(AutoRouterPlugin::new(p.allowed_models, p.excluded_models)?);
            }
            (id, _) => {
                return Err(E::custom(format_args!(
                    "the `{id:.40}` plugin is not supported by this gateway"
                )))
            }
        }
    }
    Ok((on, router))
}

/// A message's `role`, checked.
pub(crate) fn check_role<E: de::Error>(role: Option<&str>) -> Result<(), E> {
    match role {
        Some(r) if ROLES.contains(&r) => Ok(()),
        Some(r) => Err(E::custom(format_args!(
            "unknown message role `{r:.40}` (expected system, developer, user, assistant, tool or function)"
        ))),
        None => Err(E::custom("every message needs a `role`")),
    }
}

/// The message roles a chat request may use.
pub(crate) const ROLES: [&str; 6] = [
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

/// A message's `content` (raw, absent as `None`), checked against its role.
pub(crate) fn check_content<E: de::Error>(role: &str, content: Option<&str>) -> Result<(), E> {
    match content {
        Some(c) if c.starts_with('[') => {
            let mut de = serde_json::Deserializer::from_str(c);
            de.deserialize_seq(PartsCheck).map_err(E::custom)
        }
        _ => check_content_start(role, content.and_then(|c| c.as_bytes().first().copied())),
    }
}

/// [`check_content`] for content that is not a list of parts, known by its first byte (absent
/// content as `None`).
pub(crate) fn check_content_start<E: de::Error>(role: &str, first: Option<u8>) -> Result<(), E> {
    let optional = matches!(role, "assistant" | "function");
    match first {
        Some(b'"') => Ok(()),
        Some(b'[') => Err(E::custom("expected a list of content parts")),
        Some(b'n') | None if optional => Ok(()),
        Some(b'n') | None => Err(E::custom(format_args!(
            "a `{role}` message needs `content`"
        ))),
        Some(_) => Err(E::custom(
            "expected message content as a string or a list of parts",
        )),
    }
}

/// Content parts: objects with a string `type`; everything else in them is skipped.
struct PartsCheck;

impl<'de> Visitor<'de> for PartsCheck {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of content parts")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<Part>()?.is_some() {}
        Ok(())
    }
}

struct Part;

impl<'de> Deserialize<'de> for Part {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Part;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a content part object with a string `type`")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Part, A::Error> {
                let mut typed = false;
                while let Some(k) = map.next_key::<Str<'de>>()? {
                    if k.0 == "type" {
                        map.next_value::<Str<'de>>()?;
                        typed = true;
                    } else {
                        map.next_value::<de::IgnoredAny>()?;
                    }
                }
                if typed {
                    Ok(Part)
                } else {
                    Err(de::Error::custom(
                        "every content part needs a string `type`",
                    ))
                }
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_scan_counts_only_structure() {
        type E = serde_json::Error;
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(check_depth::<E>(&deep(MAX_DEPTH), 0).is_ok());
        assert!(check_depth::<E>(&deep(MAX_DEPTH), 1).is_err());
        assert!(check_depth::<E>(&deep(MAX_DEPTH + 1), 0).is_err());
        // Brackets inside strings (with escaped quotes) do not count.
        let s = format!(r#"{{"a":"\"{}"}}"#, "[".repeat(500));
        assert!(check_depth::<E>(&s, 0).is_ok());
        assert!(check_depth::<E>(r#"{"a":"\\"}"#, 0).is_ok());
        assert!(check_depth::<E>(r#"["\"#, 0).is_ok());
        assert!(check_depth::<E>(r#""[[[[""#, MAX_DEPTH).is_ok());
    }

    #[test]
    fn params_have_types_and_ranges() {
        type E = serde_json::Error;
        let ok = |p, raw| check_param::<E>(p, raw).is_ok();
        assert!(ok(Parameter::Temperature, "0"));
        assert!(ok(Parameter::Temperature, "2"));
        assert!(!ok(Parameter::Temperature, "2.01"));
        assert!(!ok(Parameter::Temperature, r#""hot""#));
        assert!(!ok(Parameter::TopP, "-0.1"));
        assert!(!ok(Parameter::RepetitionPenalty, "0"));
        assert!(ok(Parameter::TopK, "40"));
        assert!(!ok(Parameter::TopK, "1.5"));
        assert!(!ok(Parameter::TopLogprobs, "21"));
        assert!(ok(Parameter::Stop, r#"["a","b"]"#));
        assert!(!ok(Parameter::Stop, r#"["a","b","c","d","e"]"#));
        assert!(!ok(Parameter::Stop, "3"));
        assert!(!ok(Parameter::Logprobs, "1"));
        assert!(!ok(Parameter::ResponseFormat, r#"{"schema":{}}"#));
        assert!(!ok(Parameter::Tools, "[1]"));
        assert!(ok(Parameter::Tools, r#"[{"type":"function"}]"#));
    }

    /// A number's text, often plain, sometimes not JSON: signs, leading zeros, exponents, long
    /// fractions, bounds and their neighbours.
    fn number_text() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            "-?(0|[1-9][0-9]{0,2})(\\.[0-9]{1,16})?",
            "-?[0-9]{0,3}\\.?[0-9]{0,20}([eE][+-]?[0-9]{1,3})?",
            "-?[012](\\.(0{1,16}[0-9]?|9{1,17}))?",
            "[-+0-9.eE ]{0,6}",
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

        /// The byte-level check says "in range" exactly when serde's read does, for a plain
        /// decimal of at most `PLAIN_DIGITS` digits, and never for a number serde rejects.
        #[test]
        fn surely_in_range_is_serdes_verdict(raw in number_text(), i in 0..Parameter::ALL.len()) {
            let p = Parameter::ALL[i];
            let quick = surely_in_range(p, raw.as_bytes());
            let serde = check_param::<serde_json::Error>(p, &raw).is_ok();
            if quick {
                proptest::prop_assert!(serde, "{p:?} {raw}");
            }
            let digits = raw.bytes().filter(u8::is_ascii_digit).count();
            let plain = serde_json::from_str::<f64>(&raw).is_ok()
                && !raw.contains(['e', 'E', ' '])
                && digits <= PLAIN_DIGITS;
            if plain && number_range(p).is_some() {
                proptest::prop_assert_eq!(quick, serde, "{:?} {}", p, raw);
            }
        }
    }

    #[test]
    fn surely_in_range_reads_plain_decimals() {
        let t = Parameter::Temperature;
        for ok in [
            "0",
            "0.7",
            "2",
            "2.000000",
            "-0",
            "1.99999999999999",
            "0.00000000000001",
        ] {
            assert!(surely_in_range(t, ok.as_bytes()), "{ok}");
        }
        for no in [
            "2.01", "-0.1", "00.5", "0.", ".5", "1e0", "0.7 ", "\"0.7\"", "", "-",
        ] {
            assert!(!surely_in_range(t, no.as_bytes()), "{no}");
        }
        assert!(!surely_in_range(Parameter::RepetitionPenalty, b"0"));
        assert!(surely_in_range(Parameter::PresencePenalty, b"-2"));
        assert!(!surely_in_range(Parameter::TopK, b"1"));
    }

    #[test]
    fn duplicates_of_known_members_only() {
        let mut s = Seen::default();
        assert_eq!(s.insert("model"), None);
        assert_eq!(s.insert("temperature"), None);
        assert_eq!(s.insert("x_custom"), None);
        assert_eq!(s.insert("x_custom"), None);
        assert_eq!(s.insert("temperature"), Some("temperature"));
        assert_eq!(s.insert("model"), Some("model"));
        assert!(KNOWN.len() + Parameter::ALL.len() <= 64);
    }

    #[test]
    fn messages_roles_and_content() {
        type E = serde_json::Error;
        assert!(check_role::<E>(Some("wizard")).is_err());
        assert!(check_role::<E>(None).is_err());
        assert!(check_content::<E>("user", Some(r#""hi""#)).is_ok());
        assert!(check_content::<E>("user", Some("null")).is_err());
        assert!(check_content::<E>("user", None).is_err());
        assert!(check_content::<E>("assistant", Some("null")).is_ok());
        assert!(check_content::<E>("user", Some("42")).is_err());
        assert!(check_content::<E>("user", Some(r#"[{"type":"text","text":"a"}]"#)).is_ok());
        assert!(check_content::<E>("user", Some(r#"[{"text":"a"}]"#)).is_err());
        assert!(check_content::<E>("user", Some("[1]")).is_err());
    }
}
