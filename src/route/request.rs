use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use smallvec::SmallVec;

use super::prefs::{span_of, str_list, ProviderPrefs, RouteField, Str};
use super::short::ViewStr;
use super::validate::{self, Seen};
use crate::catalog::{ParamSet, Parameter};
use crate::GatewayError;

/// Top-level members that only the gateway understands; they are removed from upstream bodies.
pub(crate) const GATEWAY_ONLY: &[&str] = &[
    "models",
    "provider",
    "route",
    "session_id",
    "transforms",
    "plugins",
    "usage",
    "debug",
    "trace",
    "preset",
];

/// The routing view of a chat-completions request: what routing needs and nothing else, parsed once
/// from the buffered body and borrowing from it (strings with escapes are the only copies).
///
/// ```
/// use tower_ai_gateway::route::RequestView;
///
/// let body = br#"{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"hi"}],
///                 "provider":{"sort":"price","max_price":{"prompt":1}},"temperature":0.2}"#;
/// let view = RequestView::parse(body)?;
/// assert_eq!(view.model.as_deref(), Some("openai/gpt-4o-mini"));
/// assert_eq!(view.provider.sort.unwrap().by, tower_ai_gateway::route::SortBy::Price);
/// assert!(view.params.contains(tower_ai_gateway::catalog::Parameter::Temperature));
///
/// // Rewriting the model splices the new id into the original bytes.
/// let out = view.splice_model(body, "gpt-4o-mini");
/// assert!(out.starts_with(br#"{"model":"gpt-4o-mini","messages""#));
/// # Ok::<(), tower_ai_gateway::GatewayError>(())
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct RequestView<'a> {
    /// `model` (borrowed from the body; an owned view holds the usual ids inline, without an
    /// allocation).
    pub model: Option<ViewStr<'a>>,
    /// Byte range of the `model` value (quotes included) in the body.
    pub model_span: Option<Range<usize>>,
    /// `models` (fallback models, in order, as sent).
    pub models: Vec<Cow<'a, str>>,
    /// The deprecated `route`.
    pub route: Option<RouteField>,
    /// `provider` preferences.
    pub provider: ProviderPrefs<'a>,
    /// Byte range of the `provider.options` object in the body.
    pub options_span: Option<Range<usize>>,
    /// `stream`.
    pub stream: bool,
    /// Byte range of the `stream_options` value in the body (the fallback makes sure streamed
    /// OpenAI-wire requests ask for usage).
    pub stream_options_span: Option<Range<usize>>,
    /// `max_tokens`.
    pub max_tokens: Option<u64>,
    /// `max_completion_tokens`.
    pub max_completion_tokens: Option<u64>,
    /// `session_id` from the body.
    pub session_id: Option<Cow<'a, str>>,
    /// `prompt_cache_key`.
    pub prompt_cache_key: Option<Cow<'a, str>>,
    /// `service_tier`.
    pub service_tier: Option<Cow<'a, str>>,
    /// Parameters present with a non-null value (for `require_parameters` and the soft preferences).
    pub params: ParamSet,
    /// Bytes of message content, `tools` and `prompt` (the basis of the prompt-size estimate).
    pub prompt_bytes: usize,
    /// Bytes that bound the prompt's tokens (see [`prompt_bound`](Self::prompt_bound)): every
    /// message's bytes (role, content, tool calls with their arguments, names) except its image
    /// parts, `tools`, `prompt`.
    pub bound_bytes: u64,
    /// Image parts (`image_url`) in the messages.
    pub image_parts: u64,
    /// Number of `messages`.
    pub message_count: usize,
    /// Byte ranges of the content of the first system (or developer) message and of the first other
    /// message: the sticky-session key of last resort (<https://openrouter.ai/docs/guides/best-practices/prompt-caching>), hashed on demand by
    /// [`RequestView::conversation_hash`].
    pub conversation_spans: (Option<Range<usize>>, Option<Range<usize>>),
    /// Byte ranges of top-level members only the gateway understands (`provider`, `models`, `route`,
    /// `session_id`, …), key and value, for removal from upstream bodies. Held inline for the
    /// usual one or two (no allocation in the parse).
    pub gateway_members: SmallVec<[Range<usize>; 2]>,
    /// Byte ranges of the values of top-level members that an endpoint may not support: the
    /// parameters an endpoint lists in `supported_parameters` (with the [`Parameter`]; not
    /// `max_tokens` / `max_completion_tokens`, which bound the budget) and unknown members (`None`).
    /// See [`RequestView::unsupported_spans`]. Held inline for the usual few.
    pub droppable: SmallVec<[(Option<Parameter>, Range<usize>); 4]>,
    /// Context compression (`transforms: ["middle-out"]` or the `context-compression` plugin):
    /// `Some(true)` asked for, `Some(false)` turned off (`transforms: []`), `None` not said (the
    /// default then depends on the endpoint's context length).
    pub middle_out: Option<bool>,
    /// The `auto-router` plugin's model restrictions, for `openrouter/auto`.
    pub auto_router: Option<Box<AutoRouterPlugin>>,
    /// Byte range of the top-level object's opening brace.
    pub(crate) object_start: usize,
    /// The body has messages, a non-null `prompt` or a non-null `input`.
    pub(crate) has_input: bool,
    /// The body is an embeddings request (it has an `input`): ProviderFallback sends it to
    /// `{base_url}/embeddings`, on the OpenAI wire only.
    pub embeddings: bool,
    /// The body is a legacy completions request (it has a `prompt`, a string or an array of
    /// strings): ProviderFallback sends it to `{base_url}/completions`, on the OpenAI wire only
    /// (<https://openrouter.ai/docs/api/reference/overview>).
    pub completions: bool,
    /// The body has a `preset` member (any value).
    pub(crate) preset_member: bool,
}

/// The `auto-router` plugin's settings
/// (<https://openrouter.ai/docs/guides/routing/routers/auto-router>): model id patterns, where `*`
/// matches any run of characters; an excluded pattern wins over an allowed one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AutoRouterPlugin {
    /// Only models matching one of these (when not empty).
    pub allowed_models: Vec<String>,
    /// Never models matching one of these.
    pub excluded_models: Vec<String>,
}

/// At most this many patterns in each list of the `auto-router` plugin.
const MAX_PATTERNS: usize = 1024;
/// At most this many characters per pattern.
const MAX_PATTERN_LEN: usize = 1024;
/// At most this many characters over all patterns.
const MAX_PATTERNS_TOTAL: usize = 65_536;

impl AutoRouterPlugin {
    /// The settings, checked against OpenRouter's limits (1,024 patterns per list, 1,024
    /// characters each, 65,536 in all).
    pub(crate) fn new<E: de::Error>(
        allowed: Vec<String>,
        excluded: Vec<String>,
    ) -> Result<Self, E> {
        let total: usize = allowed.iter().chain(&excluded).map(String::len).sum();
        if allowed.len() > MAX_PATTERNS || excluded.len() > MAX_PATTERNS {
            return Err(E::custom(
                "the auto-router plugin takes at most 1024 patterns per list",
            ));
        }
        if allowed
            .iter()
            .chain(&excluded)
            .any(|p| p.len() > MAX_PATTERN_LEN)
        {
            return Err(E::custom(
                "an auto-router pattern is longer than 1024 characters",
            ));
        }
        if total > MAX_PATTERNS_TOTAL {
            return Err(E::custom(
                "the auto-router patterns exceed 65536 characters in all",
            ));
        }
        Ok(AutoRouterPlugin {
            allowed_models: allowed,
            excluded_models: excluded,
        })
    }

    /// Whether `model` passes the restrictions.
    pub fn admits(&self, model: &str) -> bool {
        let any = |list: &[String]| list.iter().any(|p| wildcard(p, model));
        !any(&self.excluded_models) && (self.allowed_models.is_empty() || any(&self.allowed_models))
    }
}

/// `pattern` (with `*` for any run of characters) matches all of `text`.
fn wildcard(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Tokens an image part may cost, at most, in [`RequestView::prompt_bound`]: above the largest
/// per-image figure the major providers document (OpenAI's high-detail tiling of a 2048×2048
/// image, Anthropic's ~1,600 tokens for a 1.15-megapixel image, Gemini's 258-token tiles).
pub const IMAGE_TOKEN_BOUND: u64 = 4_096;
/// Tokens a chat template adds per message (role markers, separators), at most, in
/// [`RequestView::prompt_bound`].
pub const MESSAGE_TOKEN_OVERHEAD: u64 = 16;
/// Tokens a chat template adds per request (reply priming, a provider's default system
/// preamble), at most, in [`RequestView::prompt_bound`].
pub const REQUEST_TOKEN_OVERHEAD: u64 = 128;

impl<'a> RequestView<'a> {
    /// Parses `body`. Invalid JSON, wrong types, unknown enum values, negative prices or cutoffs, a
    /// body with neither `model` nor `models`, and what a provider would reject because of the
    /// caller's input (duplicate known members, missing or empty `messages`, unknown roles, malformed
    /// content, parameters out of range, nesting deeper than [`MAX_DEPTH`](super::MAX_DEPTH), unknown
    /// transforms, plugins the gateway cannot run) are a 400 `invalid_request` naming the field and
    /// what was expected there.
    pub fn parse(body: &'a [u8]) -> Result<RequestView<'a>, GatewayError> {
        let mut out = Ok(RequestView::default());
        Self::parse_in_place(body, &mut out);
        out
    }

    /// [`parse`](Self::parse) into `out`, which must be `Ok` with a default view: the view is
    /// read where the caller keeps it, not moved there on return (it is big enough that each
    /// move shows in the cost of a request).
    #[inline]
    pub(crate) fn parse_in_place(body: &'a [u8], out: &mut Result<RequestView<'a>, GatewayError>) {
        if let Ok(view) = out {
            if super::fast::read_into(body, view).is_none() {
                *out = Self::parse_serde(body);
            }
        }
        if let Ok(view) = out {
            if let Err(e) = view.finish(body) {
                *out = Err(e);
            }
        }
    }

    /// [`parse`](Self::parse)'s final checks, on the view read from `body`.
    fn finish(&mut self, body: &[u8]) -> Result<(), GatewayError> {
        if self.model.is_none() && self.models.is_empty() {
            return Err(GatewayError::invalid_request(
                "model",
                "a model id (or a non-empty `models` list) is required",
            ));
        }
        if !self.has_input {
            return Err(GatewayError::invalid_request(
                "messages",
                "a non-empty `messages` list (or a `prompt`) is required",
            ));
        }
        self.object_start = body.iter().position(|b| *b == b'{').unwrap_or(0);
        Ok(())
    }

    /// The fast path of [`parse`](Self::parse), without its final checks: the body read by the
    /// skimmer (`fast.rs`), `None` when it is not of the usual shape. Whenever it is `Some`, it
    /// equals [`parse_serde`](Self::parse_serde)'s view. Public only for the fuzz target that
    /// compares the two; not part of the API.
    #[doc(hidden)]
    pub fn parse_skimmed(body: &'a [u8]) -> Option<RequestView<'a>> {
        super::fast::parse_skimmed(body)
    }

    /// The serde path of [`parse`](Self::parse), without its final checks: what decides every
    /// body the fast path does not take, errors included. Public only for the fuzz target that
    /// compares the two; not part of the API.
    #[doc(hidden)]
    pub fn parse_serde(body: &'a [u8]) -> Result<RequestView<'a>, GatewayError> {
        let failed_field = std::cell::Cell::new(None);
        // No path tracking: only a failing body is parsed a second time, with tracking, to name
        // the field.
        let seed = ViewSeed {
            body,
            failed_field: &failed_field,
            track_paths: false,
        };
        seed.read(true).map_err(|_| Self::explain(body))
    }

    /// Parses `body` again with path tracking to build the 400 for a body known to be invalid.
    #[cold]
    fn explain(body: &[u8]) -> GatewayError {
        let failed_field = std::cell::Cell::new(None);
        let seed = ViewSeed {
            body,
            failed_field: &failed_field,
            track_paths: true,
        };
        let mut de = serde_json::Deserializer::from_slice(body);
        let mut track = serde_path_to_error::Track::new();
        let tracked = serde_path_to_error::Deserializer::new(&mut de, &mut track);
        match seed.deserialize(tracked) {
            Ok(_) => match de.end() {
                Err(e) => to_gateway_error(String::new(), e),
                Ok(()) => GatewayError::invalid_request("", "invalid request body"),
            },
            Err(e) => {
                let field = failed_field
                    .take()
                    .map_or_else(|| track.path().to_string(), str::to_string);
                to_gateway_error(field, e)
            }
        }
    }

    /// The prompt-size estimate in tokens: one token per four bytes of message content, tools and
    /// prompt, at least one per message. A deliberate over-estimate for most languages, used for context
    /// checks and budget reservations, never for billing.
    pub fn prompt_estimate(&self) -> u64 {
        ((self.prompt_bytes as u64).div_ceil(4)).max(self.message_count as u64)
    }

    /// An upper bound on the prompt's tokens, for budget reservations: a text token is at least
    /// one byte, so every byte of the messages (tool-call arguments included), `tools` and
    /// `prompt` counts as a token; each image part counts [`IMAGE_TOKEN_BOUND`] instead of its
    /// bytes; each message adds [`MESSAGE_TOKEN_OVERHEAD`] and the request
    /// [`REQUEST_TOKEN_OVERHEAD`] for the chat template. A provider that reports more prompt
    /// tokens than this is the only way a budget can be exceeded.
    pub fn prompt_bound(&self) -> u64 {
        self.bound_bytes
            .saturating_add(self.image_parts.saturating_mul(IMAGE_TOKEN_BOUND))
            .saturating_add((self.message_count as u64).saturating_mul(MESSAGE_TOKEN_OVERHEAD))
            .saturating_add(REQUEST_TOKEN_OVERHEAD)
    }

    /// Hash of the first system message and the first other message of `body` (the body this view was
    /// parsed from); `None` without messages.
    pub fn conversation_hash(&self, body: &[u8]) -> Option<u64> {
        if self.message_count == 0 {
            return None;
        }
        let get =
            |r: &Option<Range<usize>>| r.as_ref().and_then(|r| body.get(r.clone())).unwrap_or(&[]);
        Some(crate::hash::fast_hash(&(
            get(&self.conversation_spans.0),
            get(&self.conversation_spans.1),
        )))
    }

    /// The requested output cap: `max_completion_tokens`, else `max_tokens`.
    pub fn max_output(&self) -> Option<u64> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// The requested models in order — `model` then `models` — de-duplicated.
    pub fn requested_models(&self) -> Vec<&str> {
        self.requested().collect()
    }

    /// [`RequestView::requested_models`] without collecting them.
    pub(crate) fn requested(&self) -> impl Iterator<Item = &str> {
        let all = || {
            self.model
                .as_deref()
                .into_iter()
                .chain(self.models.iter().map(|m| m.as_ref()))
        };
        all()
            .enumerate()
            // The first is never a repeat (and is not compared with an empty prefix).
            .filter(move |&(i, m)| i == 0 || !all().take(i).any(|n| n == m))
            .map(|(_, m)| m)
    }

    /// Whether the body may name a preset (a `preset` member, or `@preset/` in `model`): only
    /// then are [`Presets`](super::Presets) applied.
    pub(crate) fn names_preset(&self) -> bool {
        // The mark's `@` looked for first: most model names have none, and finding a byte is
        // cheaper than searching for the whole mark.
        self.preset_member
            || self.model.as_deref().is_some_and(|m| {
                m.as_bytes().contains(&b'@') && m.contains(super::preset::MODEL_MARK)
            })
    }

    /// The first requested model: `model`, else the first of `models`.
    pub fn first_requested_model(&self) -> Option<&str> {
        self.model
            .as_deref()
            .or_else(|| self.models.first().map(|m| m.as_ref()))
    }

    /// A copy that owns its strings, for storing past the body's lifetime.
    pub fn into_owned(mut self) -> RequestView<'static> {
        let mut out = RequestView::default();
        self.own_into(&mut out);
        out
    }

    /// Moves this view into `dst` (a default view: it may be in a `Box`, where the view is kept),
    /// owning its strings; this view is left emptied. Field by field, so the view (large) is never
    /// moved whole.
    pub(crate) fn own_into(&mut self, dst: &mut RequestView<'static>) {
        fn own(c: Option<Cow<'_, str>>) -> Option<Cow<'static, str>> {
            c.map(|c| Cow::Owned(c.into_owned()))
        }
        // Destructured whole: a field added to the view must be handled here.
        let RequestView {
            model,
            model_span,
            models,
            route,
            provider,
            options_span,
            stream,
            stream_options_span,
            max_tokens,
            max_completion_tokens,
            session_id,
            prompt_cache_key,
            service_tier,
            params,
            prompt_bytes,
            bound_bytes,
            image_parts,
            message_count,
            conversation_spans,
            gateway_members,
            droppable,
            middle_out,
            auto_router,
            object_start,
            has_input,
            embeddings,
            completions,
            preset_member,
        } = self;
        dst.model = model.take().map(ViewStr::into_owned);
        dst.model_span = model_span.take();
        if !models.is_empty() {
            dst.models = super::prefs::own_list(Some(std::mem::take(models))).unwrap_or_default();
        }
        dst.route = *route;
        provider.own_into(&mut dst.provider);
        dst.options_span = options_span.take();
        dst.stream = *stream;
        dst.stream_options_span = stream_options_span.take();
        dst.max_tokens = *max_tokens;
        dst.max_completion_tokens = *max_completion_tokens;
        dst.session_id = own(session_id.take());
        dst.prompt_cache_key = own(prompt_cache_key.take());
        dst.service_tier = own(service_tier.take());
        dst.params = *params;
        dst.prompt_bytes = *prompt_bytes;
        dst.bound_bytes = *bound_bytes;
        dst.image_parts = *image_parts;
        dst.message_count = *message_count;
        dst.conversation_spans = std::mem::take(conversation_spans);
        dst.gateway_members = std::mem::take(gateway_members);
        dst.droppable = std::mem::take(droppable);
        dst.middle_out = *middle_out;
        dst.auto_router = auto_router.take();
        dst.object_start = *object_start;
        dst.has_input = *has_input;
        dst.embeddings = *embeddings;
        dst.completions = *completions;
        dst.preset_member = *preset_member;
    }

    /// `body` with the `model` value replaced by `model` (inserted if the body had none), every other
    /// byte untouched.
    pub fn splice_model(&self, body: &[u8], model: &str) -> Vec<u8> {
        use super::Piece;
        match &self.model_span {
            Some(r) => super::splice(body, &mut [(r.clone(), [Piece::Quoted(model)])]),
            None => {
                let at = self.object_start + 1;
                let rest_empty = body[at..]
                    .iter()
                    .find(|b| !b.is_ascii_whitespace())
                    .is_none_or(|b| *b == b'}');
                let comma: &[u8] = if rest_empty { b"" } else { b"," };
                let pieces = [
                    Piece::Raw(b"\"model\":"),
                    Piece::Quoted(model),
                    Piece::Raw(comma),
                ];
                super::splice(body, &mut [(at..at, pieces)])
            }
        }
    }
}

fn to_gateway_error(path: String, e: serde_json::Error) -> GatewayError {
    use serde_json::error::Category;
    let path = if path == "." { String::new() } else { path };
    let mut msg = e.to_string();
    // Keep the position: it helps with large bodies, but put the field first.
    if let Some(i) = msg.find(" at line ") {
        let (what, pos) = msg.split_at(i);
        msg = format!("{what} ({})", pos.trim_start());
    }
    match e.classify() {
        Category::Syntax | Category::Eof => {
            GatewayError::invalid_request("", &format!("invalid JSON: {msg}"))
        }
        Category::Io => GatewayError::invalid_request("", &msg),
        Category::Data => GatewayError::invalid_request(&path, &msg),
    }
}

/// The serde path of [`RequestView::parse`]; its member readers take the member's raw text, so
/// the fast path (`fast.rs`) runs the same ones.
pub(super) struct ViewSeed<'a, 'c> {
    pub(super) body: &'a [u8],
    /// Set when an error is raised after a value was read (the path tracker no longer points there).
    pub(super) failed_field: &'c std::cell::Cell<Option<&'static str>>,
    pub(super) track_paths: bool,
}

impl<'de> ViewSeed<'de, '_> {
    /// Reads the body. With `as_str`, a body that is valid UTF-8 (checked once) is read as a `str`:
    /// serde_json then borrows keys, strings and raw values without checking each of them again.
    /// Otherwise it is read as bytes, which is what gives the answer for a body with invalid bytes
    /// (accepted when they are only in members that are skipped).
    fn read(self, as_str: bool) -> Result<RequestView<'de>, serde_json::Error> {
        let body = self.body;
        match std::str::from_utf8(body) {
            Ok(text) if as_str => {
                let mut de = serde_json::Deserializer::from_str(text);
                let v = self.deserialize(&mut de)?;
                de.end().map(|()| v)
            }
            _ => {
                let mut de = serde_json::Deserializer::from_slice(body);
                let v = self.deserialize(&mut de)?;
                de.end().map(|()| v)
            }
        }
    }
}

impl<'de> DeserializeSeed<'de> for ViewSeed<'de, '_> {
    type Value = RequestView<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

fn nonnull(raw: &str) -> bool {
    raw != "null"
}

/// The next member's value, as its raw text in the body.
fn raw<'de, A: MapAccess<'de>>(map: &mut A) -> Result<&'de str, A::Error> {
    map.next_value::<&'de RawValue>().map(RawValue::get)
}

fn positive<E: de::Error>(v: Option<u64>) -> Result<Option<u64>, E> {
    match v {
        Some(0) => Err(E::custom("expected a positive integer, got 0")),
        v => Ok(v),
    }
}

impl<'de> Visitor<'de> for ViewSeed<'de, '_> {
    type Value = RequestView<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object (a chat completions request)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let failed = self.failed_field;
        let mut v = RequestView::default();
        let mut seen = Seen::default();
        while let Some(key) = map.next_key::<Str<'de>>()? {
            let key = key.0;
            failed.set(None);
            if let Some(dup) = seen.insert(&key) {
                self.at(dup);
                return Err(de::Error::custom(format_args!(
                    "duplicate member `{dup}`: each member may appear once"
                )));
            }
            match &*key {
                "model" => self.model(&mut v, raw(&mut map)?)?,
                "models" => self.models(&mut v, raw(&mut map)?)?,
                "route" => {
                    let raw = raw(&mut map)?;
                    v.gateway_members.extend(self.member(raw));
                    self.at("route");
                    v.route = serde_json::from_str(raw).map_err(de::Error::custom)?;
                }
                "provider" => self.provider(&mut v, raw(&mut map)?)?,
                "stream" => v.stream = map.next_value::<Option<bool>>()?.unwrap_or(false),
                "stream_options" => {
                    let raw = raw(&mut map)?;
                    v.stream_options_span = self.member(raw);
                }
                "max_tokens" => {
                    let n = map.next_value()?;
                    self.at("max_tokens");
                    v.max_tokens = positive(n)?;
                    if v.max_tokens.is_some() {
                        v.params.insert(Parameter::MaxTokens);
                    }
                }
                "max_completion_tokens" => {
                    let n = map.next_value()?;
                    self.at("max_completion_tokens");
                    v.max_completion_tokens = positive(n)?;
                    if v.max_completion_tokens.is_some() {
                        v.params.insert(Parameter::MaxCompletionTokens);
                    }
                }
                "session_id" => self.session_id(&mut v, raw(&mut map)?)?,
                "prompt_cache_key" => {
                    v.prompt_cache_key = map.next_value::<Option<Str<'de>>>()?.map(|s| s.0)
                }
                "service_tier" => {
                    v.service_tier = map.next_value::<Option<Str<'de>>>()?.map(|s| s.0)
                }
                "messages" => {
                    let stats = map.next_value_seed(MessagesSeed)?;
                    v.prompt_bytes += stats.bytes;
                    v.bound_bytes += stats.bound_bytes;
                    v.image_parts += stats.images;
                    v.message_count = stats.count;
                    v.has_input |= stats.count > 0;
                    v.conversation_spans = (
                        stats.system.and_then(|c| span_of(self.body, c)),
                        stats.first.and_then(|c| span_of(self.body, c)),
                    );
                }
                "prompt" => self.prompt(&mut v, "prompt", raw(&mut map)?)?,
                "input" => {
                    let raw = raw(&mut map)?;
                    v.embeddings |= nonnull(raw);
                    self.prompt(&mut v, "input", raw)?;
                }
                "encoding_format" => self.embedding_option("encoding_format", raw(&mut map)?)?,
                "dimensions" => self.embedding_option("dimensions", raw(&mut map)?)?,
                "tools" => self.tools(&mut v, raw(&mut map)?)?,
                "transforms" => self.compression(&mut v, "transforms", raw(&mut map)?)?,
                "plugins" => self.compression(&mut v, "plugins", raw(&mut map)?)?,
                other => self.other(&mut v, other, raw(&mut map)?)?,
            }
        }
        Ok(v)
    }
}

/// Readers of the members that need more than one line, called from `visit_map` with the member's
/// raw value.
impl<'de> ViewSeed<'de, '_> {
    /// An embeddings option: `encoding_format` (`float` or `base64`) or `dimensions` (a positive
    /// integer); `null` is allowed.
    pub(super) fn embedding_option<E: de::Error>(
        &self,
        field: &'static str,
        raw: &'de str,
    ) -> Result<(), E> {
        self.at(field);
        let ok = match field {
            "encoding_format" => matches!(
                serde_json::from_str::<Option<&str>>(raw),
                Ok(None | Some("float" | "base64"))
            ),
            _ => matches!(
                serde_json::from_str::<Option<u64>>(raw),
                Ok(None | Some(1..))
            ),
        };
        if ok {
            Ok(())
        } else if field == "dimensions" {
            Err(E::custom("expected a positive integer"))
        } else {
            Err(E::custom("expected `float` or `base64`"))
        }
    }

    /// The legacy `prompt` (a string or strings; it makes the request a completions one) or the
    /// embeddings `input`: counted as prompt bytes.
    pub(super) fn prompt<E: de::Error>(
        &self,
        v: &mut RequestView<'de>,
        field: &'static str,
        raw: &'de str,
    ) -> Result<(), E> {
        self.at(field);
        if field == "prompt" {
            if !legacy_prompt(raw) {
                return Err(E::custom("expected a string or an array of strings"));
            }
            v.completions |= nonnull(raw);
        }
        validate::check_depth(raw, 1)?;
        v.prompt_bytes += raw.len();
        v.bound_bytes += raw.len() as u64;
        v.has_input |= nonnull(raw);
        Ok(())
    }

    /// Names the field an error raised from here on is about.
    #[inline]
    fn at(&self, field: &'static str) {
        self.failed_field.set(Some(field));
    }

    /// The byte span of a member's value in the body.
    #[inline]
    pub(super) fn member(&self, raw: &str) -> Option<Range<usize>> {
        span_of(self.body, raw)
    }

    /// `model`: a non-empty id or `null`; its span is kept for the splice.
    pub(super) fn model<E: de::Error>(
        &self,
        v: &mut RequestView<'de>,
        raw: &'de str,
    ) -> Result<(), E> {
        self.at("model");
        let m: Option<Str<'de>> = serde_json::from_str(raw).map_err(E::custom)?;
        match m {
            Some(m) if m.0.trim().is_empty() => {
                return Err(E::custom("expected a non-empty model id"));
            }
            Some(m) => {
                v.model = Some(m.0.into());
                v.model_span = self.member(raw);
            }
            None => v.model = None,
        }
        Ok(())
    }

    /// `models`: gateway-only; a list of non-empty ids.
    pub(super) fn models<E: de::Error>(
        &self,
        v: &mut RequestView<'de>,
        raw: &'de str,
    ) -> Result<(), E> {
        v.gateway_members.extend(self.member(raw));
        self.at("models");
        let list = str_list(&mut serde_json::Deserializer::from_str(raw)).map_err(E::custom)?;
        v.models = list.unwrap_or_default();
        if v.models.iter().any(|m| m.trim().is_empty()) {
            return Err(E::custom("expected non-empty model ids"));
        }
        Ok(())
    }

    /// `provider`: gateway-only; on the slow path, errors name the member inside it.
    pub(super) fn provider<E: de::Error>(
        &self,
        v: &mut RequestView<'de>,
        raw: &'de str,
    ) -> Result<(), E> {
        v.gateway_members.extend(self.member(raw));
        self.at("provider");
        // Unknown members inside are skipped without a depth bound.
        validate::check_depth(raw, 1)?;
        let prefs: Option<ProviderPrefs<'de>> = if !self.track_paths {
            serde_json::from_str(raw).map_err(E::custom)?
        } else {
            let mut inner = serde_json::Deserializer::from_str(raw);
            serde_path_to_error::deserialize(&mut inner).map_err(|e| {
                let p = e.path().to_string();
                let inner = e.into_inner();
                if p.is_empty() || p == "." {
                    E::custom(inner)
                } else {
                    E::custom(format_args!("at `provider.{p}`: {inner}"))
                }
            })?
        };
        v.provider = prefs.unwrap_or_default();
        v.options_span = v.provider.options.and_then(|o| span_of(self.body, o.get()));
        Ok(())
    }

    /// `session_id`: gateway-only; at most 256 characters.
    pub(super) fn session_id<E: de::Error>(
        &self,
        v: &mut RequestView<'de>,
        raw: &'de str,
    ) -> Result<(), E> {
        v.gateway_members.extend(self.member(raw));
        self.at("session_id");
        let s: Option<Str<'de>> = serde_json::from_str(raw).map_err(E::custom)?;
        if let Some(s) = &s {
            if s.0.chars().count() > 256 {
                return Err(E::custom("expected at most 256 characters"));
            }
        }
        v.session_id = s.map(|s| s.0);
        Ok(())
    }

    /// `tools`: a list of tool objects; counted in the prompt estimate.
    pub(super) fn tools<E: de::Error>(
        &self,
        v: &mut RequestView<'de>,
        raw: &'de str,
    ) -> Result<(), E> {
        let s = raw;
        if s == "null" {
            return Ok(());
        }
        self.at("tools");
        validate::check_depth(s, 1)?;
        validate::check_param(Parameter::Tools, s)?;
        v.droppable
            .extend(self.member(raw).map(|r| (Some(Parameter::Tools), r)));
        if s != "[]" {
            v.params.insert(Parameter::Tools);
            v.prompt_bytes += s.len();
            v.bound_bytes += s.len() as u64;
        }
        Ok(())
    }

    /// `transforms` or `plugins`: gateway-only; what they say about middle-out compression (an
    /// unknown transform or a plugin the gateway cannot run is an error).
    pub(super) fn compression<E: de::Error>(
        &self,
        v: &mut RequestView<'de>,
        name: &'static str,
        raw: &'de str,
    ) -> Result<(), E> {
        v.gateway_members.extend(self.member(raw));
        self.at(name);
        validate::check_depth(raw, 1)?;
        let on = if name == "transforms" {
            validate::transforms(raw)?
        } else {
            let (on, router) = validate::plugins(raw)?;
            v.auto_router = router.map(Box::new);
            on
        };
        v.middle_out = match (v.middle_out, on) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (a, b) => a.or(b),
        };
        Ok(())
    }

    /// Any other member: a known parameter is recorded as present (unless `null`), a gateway-only
    /// member's span is kept so it can be cut from upstream bodies, the rest is skipped.
    pub(super) fn other<E: de::Error>(
        &self,
        v: &mut RequestView<'de>,
        name: &str,
        raw: &'de str,
    ) -> Result<(), E> {
        if let Some(p) = Parameter::from_name(name) {
            if nonnull(raw) {
                self.at(p.as_str());
                validate::check_depth(raw, 1)?;
                validate::check_param(p, raw)?;
                v.params.insert(p);
                if p == Parameter::ResponseFormat && raw.contains("json_schema") {
                    v.params.insert(Parameter::StructuredOutputs);
                }
            }
            v.droppable.extend(self.member(raw).map(|r| (Some(p), r)));
        } else {
            // Skipped members, kept as raw values: serde_json does not bound their depth.
            validate::check_depth(raw, 1)?;
            if GATEWAY_ONLY.contains(&name) {
                v.preset_member |= name == "preset";
                v.gateway_members.extend(self.member(raw));
            } else if !validate::is_standard(name) {
                v.droppable.extend(self.member(raw).map(|r| (None, r)));
            }
        }
        Ok(())
    }
}

struct MessageStats<'a> {
    bytes: usize,
    /// Every message's bytes but its image parts'.
    bound_bytes: u64,
    images: u64,
    count: usize,
    system: Option<&'a str>,
    first: Option<&'a str>,
}

struct MessagesSeed;

impl<'de> DeserializeSeed<'de> for MessagesSeed {
    type Value = MessageStats<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<MessageStats<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for MessagesSeed {
    type Value = MessageStats<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of messages")
    }
    fn visit_unit<E: de::Error>(self) -> Result<MessageStats<'de>, E> {
        Ok(MessageStats {
            bytes: 0,
            bound_bytes: 0,
            images: 0,
            count: 0,
            system: None,
            first: None,
        })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MessageStats<'de>, A::Error> {
        let mut bytes = 0;
        let mut bound_bytes = 0;
        let mut images = 0;
        let mut count = 0;
        let mut system: Option<&'de str> = None;
        let mut first: Option<&'de str> = None;
        while let Some(m) = seq.next_element::<Message<'de>>()? {
            count += 1;
            bound_bytes += m.bound_bytes;
            images += m.images;
            let content = m.content.map_or("", RawValue::get);
            bytes += content.len();
            let is_system = matches!(m.role.as_deref(), Some("system") | Some("developer"));
            if is_system {
                system.get_or_insert(content);
            } else {
                first.get_or_insert(content);
            }
        }
        if count == 0 {
            return Err(de::Error::custom("expected at least one message"));
        }
        Ok(MessageStats {
            bytes,
            bound_bytes,
            images,
            count,
            system,
            first,
        })
    }
}

/// The nesting of a message's members: the body, `messages`, the message.
const MESSAGE_DEPTH: usize = 3;

/// One message: `role` and the raw `content` are looked at (and validated), and the bytes of
/// every member counted (image parts of the content apart).
struct Message<'a> {
    role: Option<Cow<'a, str>>,
    content: Option<&'a RawValue>,
    bound_bytes: u64,
    images: u64,
}

/// A content part: only its `type` is read.
#[derive(Deserialize)]
struct Part<'a> {
    #[serde(borrow, rename = "type", default)]
    kind: Option<Cow<'a, str>>,
}

/// The bytes of a message's `content` that bound its tokens, and its image parts: a string
/// counts whole; in an array of parts, `image_url` parts count as images instead of bytes.
fn content_bound(content: &RawValue) -> (u64, u64) {
    let text = content.get();
    if !text.starts_with('[') {
        return (text.len() as u64, 0);
    }
    let Ok(parts) = serde_json::from_str::<Vec<&RawValue>>(text) else {
        return (text.len() as u64, 0);
    };
    parts.iter().fold((0, 0), |(bytes, images), part| {
        let image = serde_json::from_str::<Part<'_>>(part.get())
            .is_ok_and(|p| p.kind.as_deref() == Some("image_url"));
        if image {
            (bytes, images + 1)
        } else {
            (bytes + part.get().len() as u64, images)
        }
    })
}

impl<'de> Deserialize<'de> for Message<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Message<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a message object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Message<'de>, A::Error> {
                let mut m = Message {
                    role: None,
                    content: None,
                    bound_bytes: 0,
                    images: 0,
                };
                let (mut has_role, mut tool_call_id) = (false, false);
                while let Some(k) = map.next_key::<Str<'de>>()? {
                    m.bound_bytes += k.0.len() as u64;
                    let once = |seen: bool| match seen {
                        true => Err(de::Error::custom(format_args!(
                            "duplicate member `{}` in a message",
                            k.0
                        ))),
                        false => Ok(()),
                    };
                    match &*k.0 {
                        "role" => {
                            once(has_role)?;
                            has_role = true;
                            m.role = map.next_value::<Option<Str<'de>>>()?.map(|s| s.0);
                        }
                        "content" => {
                            once(m.content.is_some())?;
                            let raw: &'de RawValue = map.next_value()?;
                            validate::check_depth(raw.get(), MESSAGE_DEPTH)?;
                            let (bytes, images) = content_bound(raw);
                            m.bound_bytes += bytes;
                            m.images += images;
                            m.content = Some(raw);
                        }
                        "tool_call_id" => {
                            once(tool_call_id)?;
                            let id = map.next_value::<Option<Str<'de>>>()?;
                            m.bound_bytes += id.as_ref().map_or(4, |s| s.0.len() as u64 + 2);
                            tool_call_id = id.is_some();
                        }
                        _ => {
                            // Tool calls with their arguments, names, …: every byte counts.
                            let raw: &'de RawValue = map.next_value()?;
                            validate::check_depth(raw.get(), MESSAGE_DEPTH)?;
                            m.bound_bytes += raw.get().len() as u64;
                        }
                    }
                }
                if let Some(r) = &m.role {
                    m.bound_bytes += r.len() as u64;
                }
                validate::check_role(m.role.as_deref())?;
                let role = m.role.as_deref().unwrap_or_default();
                validate::check_content(role, m.content.map(RawValue::get))?;
                if role == "tool" && !tool_call_id {
                    return Err(de::Error::custom(
                        "a `tool` message needs its `tool_call_id`",
                    ));
                }
                Ok(m)
            }
        }
        d.deserialize_map(V)
    }
}

/// A legacy completions `prompt`: `null`, a string or an array of strings (`raw` is valid JSON,
/// so its first byte tells its type).
fn legacy_prompt(raw: &str) -> bool {
    let is_string = |r: &str| r.trim_start().starts_with('"');
    let s = raw.trim_start();
    s == "null"
        || is_string(raw)
        || (s.starts_with('[')
            && serde_json::from_str::<Vec<&RawValue>>(s)
                .is_ok_and(|items| items.iter().all(|r| is_string(r.get()))))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn auto_router_patterns() {
        let p = |allowed: &[&str], excluded: &[&str]| AutoRouterPlugin {
            allowed_models: allowed.iter().map(|s| s.to_string()).collect(),
            excluded_models: excluded.iter().map(|s| s.to_string()).collect(),
        };
        assert!(p(&[], &[]).admits("a/b"));
        assert!(p(&["anthropic/*"], &[]).admits("anthropic/claude-sonnet-4.5"));
        assert!(!p(&["anthropic/*"], &[]).admits("openai/gpt-4o"));
        assert!(p(&["*/gpt-*-mini"], &[]).admits("openai/gpt-4o-mini"));
        assert!(!p(&["*/gpt-*-mini"], &[]).admits("openai/gpt-4o"));
        assert!(p(&["exact/id"], &[]).admits("exact/id"));
        assert!(!p(&["exact/id"], &[]).admits("exact/id2"));
        assert!(!p(&["*"], &["*:free"]).admits("x/y:free"), "excluded wins");
        assert!(p(&["a*a"], &[]).admits("aa") && !p(&["a*a"], &[]).admits("a"));
    }

    /// ModelRouting resolves a request with no `models` from its `model` alone, without
    /// `requested`'s walk: for such a request the two are the same list.
    #[test]
    fn requested_without_models_is_the_model_alone() {
        for body in [
            &br#"{"model":"a/b","messages":[{"role":"user","content":"hi"}]}"#[..],
            br#"{"model":"a/b","models":[],"prompt":"hi"}"#,
            br#"{"prompt":"hi","model":"a/b:nitro"}"#,
        ] {
            let v = RequestView::parse(body).expect("a request");
            assert!(v.models.is_empty());
            let alone: Vec<&str> = v.model.as_deref().into_iter().collect();
            assert_eq!(v.requested().collect::<Vec<_>>(), alone);
        }
    }

    fn text() -> impl Strategy<Value = String> {
        "[a-z/ é\"\\\n\u{1F600}]{0,12}"
    }

    /// Request-like bodies: routing members of every type, messages, unknown members.
    fn body() -> impl Strategy<Value = Vec<u8>> {
        let value = prop_oneof![
            text().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<bool>().prop_map(serde_json::Value::from),
            Just(serde_json::Value::Null),
            proptest::collection::vec(text(), 0..3).prop_map(serde_json::Value::from),
            (text(), text()).prop_map(|(r, c)| serde_json::json!([{"role": r, "content": c}])),
            text().prop_map(|s| serde_json::json!({"sort": "price", "only": [s]})),
        ];
        let key = prop_oneof![
            Just("model"),
            Just("models"),
            Just("provider"),
            Just("messages"),
            Just("stream"),
            Just("max_tokens"),
            Just("session_id"),
            Just("service_tier"),
            Just("tools"),
            Just("temperature"),
            Just("route"),
            Just("x"),
        ];
        proptest::collection::vec((key, value), 0..6).prop_map(|m| {
            let members: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}:{v}", serde_json::json!(k)))
                .collect();
            format!("{{{}}}", members.join(",")).into_bytes()
        })
    }

    fn both(body: &[u8]) -> (String, String) {
        let failed = std::cell::Cell::new(None);
        let seed = || ViewSeed {
            body,
            failed_field: &failed,
            track_paths: false,
        };
        let show = |r: Result<RequestView<'_>, serde_json::Error>| match r {
            Ok(v) => format!("{v:?}"),
            Err(e) => format!("error: {e}"),
        };
        (show(seed().read(true)), show(seed().read(false)))
    }

    proptest! {
        #[test]
        fn reading_as_str_is_reading_bytes(b in body(), cut in any::<prop::sample::Index>()) {
            let (fast, slow) = both(&b);
            prop_assert_eq!(fast, slow);
            // Truncated bodies: errors must agree too.
            let cut = &b[..cut.index(b.len() + 1)];
            let (fast, slow) = both(cut);
            prop_assert_eq!(fast, slow);
        }
    }
}
