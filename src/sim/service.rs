use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode, Uri};
use http_body::Body;
use http_body_util::BodyExt;
use tower_service::Service;

use super::body::SimBody;
use super::error::SimError;
use super::future::ResponseFuture;
use super::profile::{SimOutcome, SimProfile};
use super::request::{ChatRequest, RecordedRequest};
use super::response::{error_response, HeadWait, Plan};
use super::rng::SimRng;
use super::stats::{SimStats, Slot};
use super::tools::ToolCall;
use crate::BoxError;

/// The `created` timestamp of every answer unless [`SimulatedProviderBuilder::created`] says
/// otherwise (2025-06-15T16:00:00Z); a constant keeps answers byte-for-byte reproducible.
const DEFAULT_CREATED: u64 = 1_750_003_200;

/// An in-process OpenAI-compatible provider with seeded, scriptable latency and failures.
///
/// Cloning is cheap and clones share profiles, counters and scripts. See the
/// [module docs](super) for the behaviour and an example.
#[derive(Clone)]
pub struct SimulatedProvider {
    inner: Arc<Shared>,
}

struct Shared {
    seed: u64,
    created: u64,
    record: bool,
    slots: Vec<Arc<Slot>>,
    hosts: HashMap<String, HostEntry>,
    default: Option<usize>,
}

#[derive(Default)]
struct HostEntry {
    profile: Option<usize>,
    models: HashMap<String, usize>,
}

impl fmt::Debug for SimulatedProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimulatedProvider")
            .field("seed", &self.inner.seed)
            .field("profiles", &self.inner.slots)
            .finish_non_exhaustive()
    }
}

/// Builder for [`SimulatedProvider`], from [`SimulatedProvider::builder`].
#[derive(Debug)]
#[must_use]
pub struct SimulatedProviderBuilder {
    seed: u64,
    created: u64,
    record: bool,
    profiles: Vec<(Option<String>, Option<String>, SimProfile)>,
}

/// `host[:port]`, lower-cased, from either an authority or a base URL such as
/// `http://deepinfra.sim/v1`.
fn normalize_host(host: &str) -> String {
    let host = host.trim();
    if host.contains("://") {
        if let Ok(uri) = host.parse::<Uri>() {
            if let Some(a) = uri.authority() {
                return a.as_str().to_ascii_lowercase();
            }
        }
    }
    host.trim_end_matches('/').to_ascii_lowercase()
}

impl SimulatedProviderBuilder {
    /// Routes requests for `host` (`"deepinfra.sim"`, `"deepinfra.sim:8080"` or a base URL such as
    /// `"http://deepinfra.sim/v1"`, whose authority is used) to `profile`.
    pub fn host(mut self, host: &str, profile: SimProfile) -> Self {
        self.profiles
            .push((Some(normalize_host(host)), None, profile));
        self
    }

    /// Routes requests for `host` whose body names `model` to `profile` (takes precedence over
    /// the host's own profile).
    pub fn host_model(mut self, host: &str, model: &str, profile: SimProfile) -> Self {
        self.profiles
            .push((Some(normalize_host(host)), Some(model.to_owned()), profile));
        self
    }

    /// The profile for requests that match no host (without one, they get a 404).
    pub fn default_profile(mut self, profile: SimProfile) -> Self {
        self.profiles.push((None, None, profile));
        self
    }

    /// Sets the `created` timestamp of every answer (seconds since the Unix epoch).
    pub fn created(mut self, unix_secs: u64) -> Self {
        self.created = unix_secs;
        self
    }

    /// Whether to keep the last request of each profile (on by default; turn off for load tests to
    /// save a header-map copy per request).
    pub fn record_requests(mut self, enabled: bool) -> Self {
        self.record = enabled;
        self
    }

    /// Builds the provider. Registering the same route twice keeps the last profile.
    pub fn build(self) -> SimulatedProvider {
        let mut slots = Vec::with_capacity(self.profiles.len());
        let mut hosts: HashMap<String, HostEntry> = HashMap::new();
        let mut default = None;
        for (i, (host, model, profile)) in self.profiles.into_iter().enumerate() {
            let label = match (&host, &model) {
                (Some(h), Some(m)) => format!("{h} {m}"),
                (Some(h), None) => h.clone(),
                _ => String::from("default"),
            };
            slots.push(Arc::new(Slot::new(i as u64, label, profile)));
            match (host, model) {
                (Some(h), Some(m)) => {
                    hosts.entry(h).or_default().models.insert(m, i);
                }
                (Some(h), None) => hosts.entry(h).or_default().profile = Some(i),
                _ => default = Some(i),
            }
        }
        SimulatedProvider {
            inner: Arc::new(Shared {
                seed: self.seed,
                created: self.created,
                record: self.record,
                slots,
                hosts,
                default,
            }),
        }
    }
}

impl SimulatedProvider {
    /// A provider that answers every host with [`SimProfile::default`].
    pub fn new(seed: u64) -> Self {
        Self::builder(seed)
            .default_profile(SimProfile::default())
            .build()
    }

    /// A builder with no profiles.
    pub fn builder(seed: u64) -> SimulatedProviderBuilder {
        SimulatedProviderBuilder {
            seed,
            created: DEFAULT_CREATED,
            record: true,
            profiles: Vec::new(),
        }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.inner.seed
    }

    /// The profile registered for `host` (without a model), if any.
    pub fn handle(&self, host: &str) -> Option<ProfileHandle> {
        let idx = self.inner.hosts.get(&normalize_host(host))?.profile?;
        self.handle_at(idx)
    }

    /// The profile registered for `host` and `model`, if any.
    pub fn model_handle(&self, host: &str, model: &str) -> Option<ProfileHandle> {
        let idx = *self
            .inner
            .hosts
            .get(&normalize_host(host))?
            .models
            .get(model)?;
        self.handle_at(idx)
    }

    /// The default profile, if any.
    pub fn default_handle(&self) -> Option<ProfileHandle> {
        self.handle_at(self.inner.default?)
    }

    /// The profile a request for `host` (and `model`) would be routed to.
    pub fn route(&self, host: &str, model: Option<&str>) -> Option<ProfileHandle> {
        self.handle_at(self.inner.resolve(&normalize_host(host), model)?)
    }

    /// The counters of all profiles added up.
    pub fn total_stats(&self) -> SimStats {
        self.inner
            .slots
            .iter()
            .fold(SimStats::default(), |acc, s| acc + s.stats())
    }

    fn handle_at(&self, idx: usize) -> Option<ProfileHandle> {
        self.inner
            .slots
            .get(idx)
            .map(|slot| ProfileHandle { slot: slot.clone() })
    }
}

/// A view of one profile of a [`SimulatedProvider`]: its counters, its last request and its script.
#[derive(Clone, Debug)]
pub struct ProfileHandle {
    slot: Arc<Slot>,
}

impl ProfileHandle {
    /// A snapshot of the counters.
    pub fn stats(&self) -> SimStats {
        self.slot.stats()
    }

    /// The last request routed here (when recording is on).
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.slot.last()
    }

    /// Forces the outcomes of the next requests routed here, after any already scripted.
    pub fn push_script(&self, outcomes: impl IntoIterator<Item = SimOutcome>) {
        self.slot.push_script(outcomes);
    }

    /// How many scripted outcomes are left.
    pub fn script_len(&self) -> usize {
        self.slot.script_len()
    }

    /// The profile.
    pub fn profile(&self) -> &SimProfile {
        &self.slot.profile
    }

    /// `"host"`, `"host model"` or `"default"`.
    pub fn label(&self) -> &str {
        &self.slot.label
    }
}

impl Shared {
    /// An embeddings request: answered at once, deterministically (see `embeddings::answer`).
    fn embeddings(
        &self,
        host: &str,
        parts: &http::request::Parts,
        bytes: Bytes,
    ) -> Response<SimBody> {
        let model = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("model")?.as_str().map(str::to_owned));
        let Some(slot) = self
            .resolve(host, model.as_deref())
            .and_then(|i| self.slots.get(i))
        else {
            let msg = format!("no simulated provider for host `{host}`");
            return error_response(StatusCode::NOT_FOUND, Some(&msg), false);
        };
        let (_, guard) = slot.begin();
        let answer = super::embeddings::answer(&bytes);
        if self.record {
            slot.record(RecordedRequest {
                method: parts.method.clone(),
                uri: parts.uri.clone(),
                headers: parts.headers.clone(),
                body: bytes,
            });
        }
        guard.complete();
        match answer {
            Ok(body) => {
                let mut res = Response::new(SimBody::full(body));
                res.headers_mut().insert(
                    header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                res
            }
            Err(msg) => error_response(StatusCode::BAD_REQUEST, Some(&msg), false),
        }
    }

    fn resolve(&self, host: &str, model: Option<&str>) -> Option<usize> {
        let entry = self.hosts.get(host).or_else(|| {
            // `host:port` registered without the port, or odd case in the request.
            let bare = host.rsplit_once(':').map_or(host, |(h, _)| h);
            self.hosts
                .get(bare)
                .or_else(|| self.hosts.get(&bare.to_ascii_lowercase()))
        });
        if let Some(entry) = entry {
            if let Some(&i) = model.and_then(|m| entry.models.get(m)) {
                return Some(i);
            }
            if let Some(i) = entry.profile {
                return Some(i);
            }
        }
        self.default
    }

    async fn handle<B>(self: Arc<Self>, req: Request<B>) -> Result<Response<SimBody>, SimError>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = req.into_parts();
        let anthropic = parts.uri.path().ends_with("/messages");
        let embeddings = parts.uri.path().ends_with("/embeddings");
        let chat = parts.uri.path().ends_with("/chat/completions");
        let legacy = !chat && parts.uri.path().ends_with("/completions");
        if parts.method != Method::POST || !(anthropic || embeddings || chat || legacy) {
            let msg = format!("Invalid URL ({} {})", parts.method, parts.uri.path());
            return Ok(error_response(StatusCode::NOT_FOUND, Some(&msg), false));
        }
        let bytes = body
            .collect()
            .await
            .map_err(|e| SimError::request_body(e.into()))?
            .to_bytes();
        let host = parts
            .uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| parts.headers.get(header::HOST)?.to_str().ok())
            .unwrap_or("");

        if embeddings {
            return Ok(self.embeddings(host, &parts, bytes));
        }
        let parsed = ChatRequest::parse(&bytes, legacy);
        let model = parsed.as_ref().ok().and_then(|r| r.model.as_deref());
        let Some(slot) = self
            .resolve(host, model)
            .and_then(|i| self.slots.get(i))
            .cloned()
        else {
            let msg = format!("no simulated provider for host `{host}`");
            return Ok(error_response(StatusCode::NOT_FOUND, Some(&msg), anthropic));
        };
        let (n, guard) = slot.begin();
        if self.record {
            slot.record(RecordedRequest {
                method: parts.method.clone(),
                uri: parts.uri.clone(),
                headers: parts.headers.clone(),
                body: bytes.clone(),
            });
        }
        let plan = match parsed {
            Ok(req) => {
                let rng = SimRng::derive(self.seed, slot.index, n);
                let mut plan =
                    Plan::new(&slot.profile, rng, &req, slot.next_scripted(), self.created);
                plan.anthropic = anthropic;
                plan.legacy = legacy;
                if slot.profile.tool_calls && chat {
                    plan.set_tool_call(ToolCall::choose(&bytes));
                }
                plan
            }
            Err(msg) => {
                guard.complete();
                return Ok(error_response(
                    StatusCode::BAD_REQUEST,
                    Some(&msg),
                    anthropic,
                ));
            }
        };
        match plan.head_wait() {
            HeadWait::Now => {}
            HeadWait::After(d) => tokio::time::sleep(d).await,
            HeadWait::Never => std::future::pending::<()>().await,
        }
        plan.answer(guard)
    }
}

impl<B> Service<Request<B>> for SimulatedProvider
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<SimBody>;
    type Error = SimError;
    type Future = ResponseFuture;

    #[inline]
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        ResponseFuture::new(Box::pin(self.inner.clone().handle(req)))
    }
}
