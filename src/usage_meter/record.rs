//! The generation record and where it goes.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrayvec::ArrayString;
use serde_json::{json, Value};
use smallvec::SmallVec;

use super::cost::TokenUsage;
use super::ledger::{civil_from_days, CallerKey};
use crate::catalog::{EndpointKey, Usd};
use crate::hash::FastMap;
use crate::route::{AttemptRecord, ShortString};

/// The longest attribution header kept (longer values are cut at a character boundary).
const MAX_APP_HEADER: usize = 256;

/// A header's value, when it is present and visible ASCII.
pub(crate) fn header_str<'h>(
    headers: &'h http::HeaderMap,
    name: &http::HeaderName,
) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `HTTP-Referer` (a constant: looking a `&str` name up parses it on every request).
pub(crate) const HTTP_REFERER: http::HeaderName = http::HeaderName::from_static("http-referer");
/// `X-OpenRouter-Title`.
pub(crate) const X_OPENROUTER_TITLE: http::HeaderName =
    http::HeaderName::from_static("x-openrouter-title");
/// `X-Title`.
pub(crate) const X_TITLE: http::HeaderName = http::HeaderName::from_static("x-title");
/// `X-Session-Id`.
pub(crate) const X_SESSION_ID: http::HeaderName = http::HeaderName::from_static("x-session-id");

/// The app that sent a request, from OpenRouter's attribution headers
/// (<https://openrouter.ai/docs/app-attribution>): `HTTP-Referer` (the app's URL) and
/// `X-OpenRouter-Title` (or the legacy `X-Title`; the new name wins when both are sent). Each is
/// kept up to 256 bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct App {
    /// `HTTP-Referer`.
    pub referer: Option<String>,
    /// `X-OpenRouter-Title`, else `X-Title`.
    pub title: Option<String>,
}

impl App {
    /// Reads the attribution headers.
    pub fn from_headers(headers: &http::HeaderMap) -> Self {
        let keep = |v: &str| {
            let mut end = v.len().min(MAX_APP_HEADER);
            while !v.is_char_boundary(end) {
                end -= 1;
            }
            v[..end].to_owned()
        };
        if headers.is_empty() {
            return App::default();
        }
        App {
            referer: header_str(headers, &HTTP_REFERER).map(keep),
            title: header_str(headers, &X_OPENROUTER_TITLE)
                .or_else(|| header_str(headers, &X_TITLE))
                .map(keep),
        }
    }
}

/// A generation id, `gen-<unix secs>-<20 random alphanumerics>`: the id the meter gives a
/// request (the response's `id`, `X-Generation-Id`, [`GenerationRecord::id`] and the
/// [`GenerationStore`]'s key).
///
/// Held inline (no allocation; `Copy`), and read as a `&str` ([`as_str`](Self::as_str), or
/// through `Deref`): it compares, hashes and borrows as its text, so a map keyed by it is looked
/// up by a `&str`.
///
/// A layer above the meter that answers before the meter does (the
/// [`KeepAlive`](crate::keep_alive) head, which carries `X-Generation-Id`) puts one in the
/// request's extensions, and the meter adopts it instead of drawing its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GenerationId(ArrayString<{ GenerationId::MAX_LEN }>);

impl GenerationId {
    /// The longest id: `gen-`, the Unix seconds of an `i64` of milliseconds (at most 17
    /// characters, `-9223372036854776`), `-` and 20 characters.
    pub(crate) const MAX_LEN: usize = 42;

    /// A fresh id, `gen-<unix secs>-<20 random alphanumerics>`, for a request made at
    /// `unix_millis`.
    pub fn new(unix_millis: i64) -> Self {
        super::service::generation_id(unix_millis)
    }

    /// The id made of `parts`, joined (cut to [`MAX_LEN`](Self::MAX_LEN) bytes, at a character
    /// boundary).
    pub(crate) fn from_parts(parts: &[&str]) -> Self {
        let mut id = ArrayString::new();
        for p in parts {
            if id.try_push_str(p).is_err() {
                // Too long: what fits, cut at a character boundary.
                let mut end = id.remaining_capacity();
                while !p.is_char_boundary(end) {
                    end -= 1;
                }
                id.push_str(&p[..end]);
                break;
            }
        }
        GenerationId(id)
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as a header value (`X-Generation-Id`). Its bytes are cut from a block of a few
    /// kilobytes that the thread shares between the ids it writes, rather than allocated for
    /// each: one allocation per fifty-odd responses instead of one per response. A block is freed
    /// when the last value cut from it is dropped, which is when the response heads that carry
    /// them have been written (a value kept longer keeps its block: hence the small block).
    pub(crate) fn header_value(&self) -> Option<http::HeaderValue> {
        thread_local! {
            static BLOCK: std::cell::RefCell<bytes::BytesMut> =
                std::cell::RefCell::new(bytes::BytesMut::new());
        }
        let id = self.0.as_bytes();
        let bytes = BLOCK.with_borrow_mut(|block| {
            if block.capacity() < id.len() {
                *block = bytes::BytesMut::with_capacity(ID_BLOCK);
            }
            block.extend_from_slice(id);
            block.split().freeze()
        });
        http::HeaderValue::from_maybe_shared(bytes).ok()
    }
}

/// The size of the blocks [`GenerationId::header_value`] cuts ids from: 2 KiB, about fifty ids.
const ID_BLOCK: usize = 2048;

impl std::ops::Deref for GenerationId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for GenerationId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for GenerationId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for GenerationId {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for GenerationId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for GenerationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// One metered request: what OpenRouter's `GET /api/v1/generation?id=` reports
/// ([`GenerationRecord::to_openrouter_json`] gives that shape).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct GenerationRecord {
    /// `gen-<unix secs>-<random>`; also the response's `id` and `X-Generation-Id`.
    pub id: GenerationId,
    /// When the request arrived (Unix milliseconds, UTC).
    pub created_unix_millis: i64,
    /// The caller, if the request carried a [`CallerKey`].
    pub key: Option<CallerKey>,
    /// The model as the request named it (first of `model` / `models`).
    pub requested_model: Option<Arc<str>>,
    /// The catalog model that served it (shared with the catalog).
    pub model: Arc<str>,
    /// The serving provider's display name (shared with the catalog).
    pub provider_name: Arc<str>,
    /// The serving endpoint, when known.
    pub endpoint: Option<EndpointKey>,
    /// The upstream's own response id (held inline up to 40 bytes).
    pub upstream_id: Option<ShortString>,
    /// The provider's request id from its response headers (`x-request-id`, `cf-ray`, …), kept
    /// here because provider headers never reach the caller.
    pub upstream_request_id: Option<ShortString>,
    /// Token counts: reported by the upstream, or estimated when [`usage_missing`](Self::usage_missing).
    pub tokens: TokenUsage,
    /// What the request cost (the estimate's price when usage is missing).
    pub cost: Usd,
    /// Prompt part of [`cost`](Self::cost).
    pub prompt_cost: Usd,
    /// Completion part of [`cost`](Self::cost).
    pub completion_cost: Usd,
    /// Request start to the end of the response body.
    pub latency: Duration,
    /// Request start to the first data frame (the first SSE data event for streams).
    pub ttft: Option<Duration>,
    /// First data frame to the end of the body.
    pub generation_time: Duration,
    /// Completion tokens per second between the first and the last content, when measurable.
    pub throughput: Option<f64>,
    /// The first choice's finish reason (the usual ones, `stop`, `length`, `tool_calls`, …,
    /// borrowed: no allocation).
    pub finish_reason: Option<Cow<'static, str>>,
    /// True for SSE responses.
    pub streamed: bool,
    /// True when the client dropped the body before its end.
    pub cancelled: bool,
    /// True when the upstream reported no usage (or the body ended before it): `tokens` and `cost`
    /// are then estimates.
    pub usage_missing: bool,
    /// True when zero-completion insurance waived the token charge.
    pub insured: bool,
    /// True when the body ended with an error (a body error, an error event or finish reason).
    pub error: bool,
    /// Upstream attempts sent (from `ServedBy::attempts`; 1 when the serving layer gives none).
    pub attempts: u32,
    /// Every attempt of the request, the serving one last (a copy of `ServedBy::attempts`, the
    /// usual single attempt held inline; empty when the serving layer gives none):
    /// `provider_responses` in the `/generation` shape.
    pub provider_responses: SmallVec<[AttemptRecord; 1]>,
    /// The app that sent the request (attribution headers).
    pub app: App,
    /// `session_id` from the body, else the `x-session-id` header.
    pub session_id: Option<String>,
    /// The service tier that served the request (`default` unless the endpoint is a tier's).
    pub service_tier: Option<&'static str>,
    /// The preset the request used (`@preset/NAME` or `preset`), if any.
    pub preset_id: Option<Arc<str>>,
}

impl GenerationRecord {
    /// `created_at` as RFC 3339 (`2026-11-22T02:52:00.000Z`).
    pub fn created_at(&self) -> String {
        rfc3339(self.created_unix_millis)
    }

    /// The record in OpenRouter's `/api/v1/generation` shape (the object under `data`,
    /// <https://openrouter.ai/docs/api/reference/overview>).
    pub fn to_openrouter_json(&self) -> Value {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let num = |u: Usd| -> Value {
            serde_json::from_str(&u.to_string()).unwrap_or_else(|_| json!(u.to_f64()))
        };
        json!({
            "id": &*self.id,
            "created_at": self.created_at(),
            "model": &*self.model,
            "api_type": "completions",
            "provider_name": &*self.provider_name,
            "upstream_id": self.upstream_id,
            "upstream_request_id": self.upstream_request_id,
            "streamed": self.streamed,
            "cancelled": self.cancelled,
            "finish_reason": self.finish_reason,
            "native_finish_reason": self.finish_reason,
            "latency": ms(self.latency),
            "generation_time": ms(self.generation_time),
            "moderation_latency": null,
            "tokens_prompt": self.tokens.prompt,
            "tokens_completion": self.tokens.completion,
            "native_tokens_prompt": self.tokens.prompt,
            "native_tokens_completion": self.tokens.completion,
            "native_tokens_reasoning": self.tokens.reasoning,
            "native_tokens_cached": self.tokens.cached,
            "num_search_results": self.tokens.web_searches,
            "total_cost": num(self.cost),
            "usage": num(self.cost),
            "upstream_inference_cost": null,
            "is_byok": false,
            "usage_missing": self.usage_missing,
            "provider_responses": self.provider_responses_json(),
            "http_referer": self.app.referer,
            "app_name": self.app.title,
            "session_id": self.session_id,
            "service_tier": self.service_tier,
            "preset_id": self.preset_id.as_deref(),
            "router": null,
            "response_cache_source_id": null,
        })
    }

    /// `provider_responses`: one object per attempt (skipped candidates included, with a null
    /// `status`), or null when the serving layer reported none.
    fn provider_responses_json(&self) -> Value {
        if self.provider_responses.is_empty() {
            return Value::Null;
        }
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.provider_responses
            .iter()
            .map(|a| {
                json!({
                    "provider_name": &*a.provider,
                    "endpoint_id": a.endpoint.to_string(),
                    "model_permaslug": a.endpoint.model(),
                    "status": a.status,
                    "latency": ms(a.duration),
                    "is_byok": false,
                    "sent": a.sent,
                    "error_class": a.kind.as_str(),
                    "error_type": a.error_type.map(|e| e.as_str()),
                })
            })
            .collect()
    }
}

/// RFC 3339 UTC with milliseconds, from Unix milliseconds.
pub(crate) fn rfc3339(unix_millis: i64) -> String {
    let day = unix_millis.div_euclid(86_400_000);
    let ms_of_day = unix_millis.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(day);
    let secs = ms_of_day / 1000;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60,
        ms_of_day % 1000
    )
}

/// Where finished generations go. Called once per metered request, synchronously, where the
/// response body finishes (possibly in a `Drop`): implementations must be quick and must not block
/// or panic.
pub trait GenerationSink: Send + Sync + 'static {
    /// Receives one finished generation.
    fn record(&self, record: &Arc<GenerationRecord>);
}

impl<F> GenerationSink for F
where
    F: Fn(&GenerationRecord) + Send + Sync + 'static,
{
    fn record(&self, record: &Arc<GenerationRecord>) {
        self(record)
    }
}

/// An in-memory store of the latest generations, looked up by id (the backing of a
/// `/api/v1/generation?id=` endpoint). Holds at most `capacity` records, evicting the oldest.
#[derive(Clone)]
pub struct GenerationStore {
    inner: Arc<Mutex<StoreInner>>,
}

#[derive(Default)]
struct StoreInner {
    capacity: usize,
    order: VecDeque<GenerationId>,
    /// Keyed by generation id: the meter draws ids at random (`gen-<secs>-<20 random
    /// characters>`), callers cannot choose them, so the fast non-keyed hasher is safe here.
    by_id: FastMap<GenerationId, Arc<GenerationRecord>>,
}

impl GenerationStore {
    /// A store keeping the latest `capacity` records (at least 1).
    pub fn new(capacity: usize) -> Self {
        GenerationStore {
            inner: Arc::new(Mutex::new(StoreInner {
                capacity: capacity.max(1),
                ..Default::default()
            })),
        }
    }

    /// The record with `id`, if still stored.
    pub fn get(&self, id: &str) -> Option<Arc<GenerationRecord>> {
        self.inner.lock().ok()?.by_id.get(id).cloned()
    }

    /// How many records are stored.
    pub fn len(&self) -> usize {
        self.inner.lock().map_or(0, |s| s.by_id.len())
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The stored records, oldest first.
    pub fn records(&self) -> Vec<Arc<GenerationRecord>> {
        let Ok(s) = self.inner.lock() else {
            return Vec::new();
        };
        s.order
            .iter()
            .filter_map(|id| s.by_id.get(id).cloned())
            .collect()
    }
}

impl GenerationSink for GenerationStore {
    fn record(&self, record: &Arc<GenerationRecord>) {
        let Ok(mut s) = self.inner.lock() else {
            return;
        };
        while s.order.len() >= s.capacity {
            if let Some(old) = s.order.pop_front() {
                s.by_id.remove(&old);
            }
        }
        s.order.push_back(record.id);
        s.by_id.insert(record.id, record.clone());
    }
}

impl fmt::Debug for GenerationStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenerationStore")
            .field("len", &self.len())
            .finish()
    }
}

/// Sends each record on a tokio channel. A full channel drops the record (counted by
/// [`ChannelSink::dropped`]) rather than block the response.
#[derive(Debug, Clone)]
pub struct ChannelSink {
    tx: tokio::sync::mpsc::Sender<Arc<GenerationRecord>>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
}

impl ChannelSink {
    /// A sink sending on `tx`.
    pub fn new(tx: tokio::sync::mpsc::Sender<Arc<GenerationRecord>>) -> Self {
        ChannelSink {
            tx,
            dropped: Arc::default(),
        }
    }

    /// A sink and the receiving end of a channel of `capacity` records.
    pub fn channel(capacity: usize) -> (Self, tokio::sync::mpsc::Receiver<Arc<GenerationRecord>>) {
        let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
        (Self::new(tx), rx)
    }

    /// Records dropped because the channel was full or closed.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl GenerationSink for ChannelSink {
    fn record(&self, record: &Arc<GenerationRecord>) {
        if self.tx.try_send(record.clone()).is_err() {
            self.dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// Emits each record as a `tracing` event (target `tower_ai_gateway::usage`, level INFO) with
/// OpenTelemetry GenAI semantic-convention attribute names.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingSink;

impl GenerationSink for TracingSink {
    fn record(&self, r: &Arc<GenerationRecord>) {
        tracing::event!(
            target: "tower_ai_gateway::usage",
            tracing::Level::INFO,
            gen_ai.operation.name = "chat",
            gen_ai.system = %r.provider_name,
            gen_ai.provider.name = %r.provider_name,
            gen_ai.request.model = r.requested_model.as_deref().unwrap_or(""),
            gen_ai.response.model = %r.model,
            gen_ai.response.id = &*r.id,
            gen_ai.response.finish_reasons = r.finish_reason.as_deref().unwrap_or(""),
            gen_ai.usage.input_tokens = r.tokens.prompt,
            gen_ai.usage.output_tokens = r.tokens.completion,
            gen_ai.usage.reasoning_tokens = r.tokens.reasoning,
            gen_ai.usage.cache_read_input_tokens = r.tokens.cached,
            gen_ai.usage.cache_creation_input_tokens = r.tokens.cache_write,
            gen_ai.usage.cost = %r.cost,
            gen_ai.usage.missing = r.usage_missing,
            gen_ai.caller = r.key.as_ref().map_or("", |k| k.as_str()),
            gen_ai.server.time_to_first_token = r.ttft.map_or(0.0, |d| d.as_secs_f64()),
            gen_ai.streamed = r.streamed,
            gen_ai.cancelled = r.cancelled,
            "generation",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Header values cut from the thread's blocks carry their own id, across several blocks
    /// (ids of every length), and stay intact after the block they came from was replaced.
    #[test]
    fn generation_id_header_values() {
        let ids: Vec<GenerationId> = (0..400)
            .map(|i| match i % 3 {
                0 => GenerationId::new(1_763_780_000_123 + i),
                1 => GenerationId::new(i64::MIN + i),
                _ => GenerationId::from_parts(&["gen-", &"x".repeat(i as usize % 50)]),
            })
            .collect();
        let values: Vec<http::HeaderValue> =
            ids.iter().map(|id| id.header_value().unwrap()).collect();
        for (id, v) in ids.iter().zip(&values) {
            assert_eq!(v.to_str().unwrap(), id.as_str());
        }
        let total: usize = ids.iter().map(|id| id.len()).sum();
        assert!(total > 4 * ID_BLOCK, "several blocks: {total} bytes");
    }

    fn rec(id: &str) -> Arc<GenerationRecord> {
        Arc::new(GenerationRecord {
            id: GenerationId::from_parts(&[id]),
            created_unix_millis: 0,
            key: None,
            requested_model: None,
            model: "m".into(),
            provider_name: "p".into(),
            endpoint: None,
            upstream_id: None,
            upstream_request_id: None,
            tokens: TokenUsage::default(),
            cost: Usd::ZERO,
            prompt_cost: Usd::ZERO,
            completion_cost: Usd::ZERO,
            latency: Duration::ZERO,
            ttft: None,
            generation_time: Duration::ZERO,
            throughput: None,
            finish_reason: None,
            streamed: false,
            cancelled: false,
            usage_missing: false,
            insured: false,
            error: false,
            attempts: 1,
            provider_responses: SmallVec::new(),
            app: App::default(),
            session_id: None,
            service_tier: None,
            preset_id: None,
        })
    }

    #[test]
    fn store_evicts_the_oldest() {
        let store = GenerationStore::new(2);
        for id in ["a", "b", "c"] {
            store.record(&rec(id));
        }
        assert_eq!(store.len(), 2);
        assert!(store.get("a").is_none());
        assert!(store.get("b").is_some() && store.get("c").is_some());
        let ids: Vec<String> = store.records().iter().map(|r| r.id.to_string()).collect();
        assert_eq!(ids, ["b", "c"]);
    }

    /// A generation id is its text: equal, hashed and borrowed as the `&str` (the store is
    /// looked up by one), shown as it; `from_parts` joins and cuts at the longest id.
    #[test]
    fn generation_id_is_its_text() {
        use std::hash::BuildHasher;
        let id = GenerationId::from_parts(&["gen-", "1795315920", "-", "abcdefghijABCDEFGHIJ"]);
        let text = "gen-1795315920-abcdefghijABCDEFGHIJ";
        assert_eq!(id.as_str(), text);
        assert_eq!(id, text);
        assert_eq!(id, *text);
        assert_eq!(id.to_string(), text);
        assert_eq!(format!("{id:>40}"), format!("{text:>40}"));
        assert_eq!(format!("{id:?}"), format!("GenerationId({text:?})"));
        let hasher = std::hash::BuildHasherDefault::<crate::hash::FastHasher>::default();
        assert_eq!(hasher.hash_one(id), hasher.hash_one(text));
        let long = "x".repeat(60);
        assert_eq!(
            GenerationId::from_parts(&[&long]).len(),
            GenerationId::MAX_LEN
        );
        // Cut at a character boundary: a two-byte character after the last byte but one.
        let cut = GenerationId::from_parts(&[&long[..GenerationId::MAX_LEN - 1], "é"]);
        assert_eq!(cut.as_str(), &long[..GenerationId::MAX_LEN - 1]);
        // The longest id a clock can give fits whole.
        let min = GenerationId::new(i64::MIN);
        assert!(min.starts_with("gen--9223372036854776-"), "{min}");
        assert_eq!(min.len(), "gen--9223372036854776-".len() + 20);
    }

    /// The `/api/v1/generation` shape of a full record, member by member (the finish reason
    /// borrowed or owned, and the attempts shared with `ServedBy`, serialise the same).
    #[test]
    fn openrouter_json_shape() {
        use crate::route::AttemptKind;
        let endpoint = EndpointKey::new("acme/chat-1", "acme");
        let attempt = AttemptRecord {
            provider: "Acme".into(),
            endpoint: endpoint.clone(),
            status: Some(200),
            error_type: None,
            kind: AttemptKind::Ok,
            sent: true,
            duration: Duration::from_millis(120),
            retry_after: None,
        };
        let mut r = (*rec("gen-1795315920-abcdefghijABCDEFGHIJ")).clone();
        r.created_unix_millis = 1_795_315_920_123;
        r.endpoint = Some(endpoint.clone());
        r.upstream_id = Some("chatcmpl-1".into());
        r.tokens = TokenUsage::new(10, 5);
        r.cost = Usd::parse("0.000027").unwrap();
        r.latency = Duration::from_millis(250);
        r.generation_time = Duration::from_millis(200);
        r.finish_reason = Some(Cow::Borrowed("stop"));
        r.provider_responses = SmallVec::from_buf([attempt]);
        r.app.referer = Some("https://app.test".into());
        r.session_id = Some("s-1".into());
        r.service_tier = Some("default");
        let expected = json!({
            "id": "gen-1795315920-abcdefghijABCDEFGHIJ",
            "created_at": "2026-11-22T02:52:00.123Z",
            "model": "m",
            "api_type": "completions",
            "provider_name": "p",
            "upstream_id": "chatcmpl-1",
            "upstream_request_id": null,
            "streamed": false,
            "cancelled": false,
            "finish_reason": "stop",
            "native_finish_reason": "stop",
            "latency": 250,
            "generation_time": 200,
            "moderation_latency": null,
            "tokens_prompt": 10,
            "tokens_completion": 5,
            "native_tokens_prompt": 10,
            "native_tokens_completion": 5,
            "native_tokens_reasoning": 0,
            "native_tokens_cached": 0,
            "num_search_results": 0,
            "total_cost": 0.000027,
            "usage": 0.000027,
            "upstream_inference_cost": null,
            "is_byok": false,
            "usage_missing": false,
            "provider_responses": [{
                "provider_name": "Acme",
                "endpoint_id": endpoint.to_string(),
                "model_permaslug": "acme/chat-1",
                "status": 200,
                "latency": 120,
                "is_byok": false,
                "sent": true,
                "error_class": "ok",
                "error_type": null,
            }],
            "http_referer": "https://app.test",
            "app_name": null,
            "session_id": "s-1",
            "service_tier": "default",
            "preset_id": null,
            "router": null,
            "response_cache_source_id": null,
        });
        assert_eq!(r.to_openrouter_json(), expected);
        r.finish_reason = Some(Cow::Owned("stop".to_owned()));
        assert_eq!(r.to_openrouter_json(), expected);
        r.provider_responses = SmallVec::new();
        assert_eq!(r.to_openrouter_json()["provider_responses"], Value::Null);
    }

    #[test]
    fn rfc3339_from_millis() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_315_920_123), "2026-11-22T02:52:00.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999Z");
    }
}
