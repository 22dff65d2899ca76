//! What the attempts of one request share: the route, the order of the candidates, the body to
//! send, the history of failures and the deadline. The per-attempt data lives in the future's
//! states ([`super::future`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::response::Parts;
use http::{Extensions, HeaderMap, Request, Response};
use http_body_util::Full;
use smallvec::SmallVec;
use tokio::time::Instant;

use super::body::{Idle, ResponseBody};
use super::classify::{error_type_of, stats_attempt, was_sent};
use super::exhausted::{History, LastFailure};
use super::layer::{Config, CooldownMode};
use super::policy::{AttemptError, Decision, Failure};
use super::read::Prime;
use super::rewrite::{passthrough_body, upstream_body, Fit};
use super::upstream::{build_request, take_response_headers, CallerHeaders};
use crate::catalog::{EndpointKey, Secret};
use crate::error::{ErrorType, GatewayError};
use crate::health::HealthSource;
use crate::route::{
    AnswerReading, AttemptKind, AttemptRecord, Candidate, RequestView, Route, ServedBy,
};
use crate::stats::{Attempt as StatsAttempt, Outcome};
use crate::telemetry;
use crate::wire::OriginalMessages;
use crate::wire::Wire;
use crate::BoxError;
use tracing::Span;

/// One attempt: which candidate, on which wire, since when.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Attempt {
    /// Index into `route.candidates()`.
    ci: u32,
    /// The wire adapter, chosen once for the attempt.
    pub(crate) wire: Wire,
    /// When the attempt was started.
    pub(crate) start: Instant,
    /// 1 for the first request sent, 2 for the second, …
    pub(crate) number: u32,
    /// A stream's answer is being primed: its timer is the first-token timeout.
    pub(crate) priming: bool,
}

impl Attempt {
    /// The same attempt, now priming a stream.
    pub(crate) fn priming(self) -> Self {
        Attempt {
            priming: true,
            ..self
        }
    }
}

/// The chat body the attempts send.
enum Source {
    /// The route's own bytes, parsed once by ModelRouting (the usual case).
    Route,
    /// A layer between ModelRouting and ProviderFallback changed the body: its bytes, re-parsed.
    Edited(Box<(Bytes, RequestView<'static>)>),
}

/// The request-wide data of [`ResponseFuture`](super::ResponseFuture).
pub(crate) struct Run<S> {
    pub(crate) svc: S,
    pub(crate) config: Arc<Config>,
    /// The caller's headers, as the attempts need them.
    caller: CallerHeaders,
    /// The request's extension map, none of which goes upstream. The [`Route`] and the caller's
    /// Messages body ([`OriginalMessages`], for passed-through Messages attempts) are read from it
    /// in place: moved out of their boxes, they would make the future (which ModelRouting boxes)
    /// larger. Emptied, it carries the served answer's extensions when the answer brings none, so
    /// that its allocation is reused.
    extensions: Extensions,
    source: Source,
    /// The chat body asks for a stream.
    stream: bool,
    /// Indices into `route.candidates()`, with whether each is cooling down.
    order: Order,
    next: usize,
    history: History,
    pub(crate) deadline: Instant,
    sent: u32,
    /// The providers this request has sent to (their first attempt is exempt from the retry
    /// budget): for each, the index into `route.candidates()` of the first candidate sent.
    tried: SmallVec<[u32; 4]>,
    /// The current attempt's `gen_ai.attempt` span ([`telemetry`]).
    span: Span,
}

/// What a run starts from: the clock, the retry budget and the candidates' order, read before
/// the future that holds the run is written. Read while it was being written, they made the
/// compiler build the future aside and copy it (about a kilobyte, three times per request).
pub(crate) struct Start {
    order: Order,
    /// The overall deadline.
    pub(crate) deadline: Instant,
}

impl Start {
    /// The start of a run for a request whose `extensions` hold its [`Route`] (checked by the
    /// caller): its deadline, a deposit in the retry budget, the order of its candidates.
    #[inline]
    pub(crate) fn new(config: &Config, extensions: &Extensions) -> Self {
        let now = Instant::now();
        if let Some(b) = &config.budget {
            b.deposit_at(now);
        }
        Start {
            order: order(config, route(extensions), now),
            deadline: now + config.overall_timeout,
        }
    }
}

impl<S> Run<S> {
    /// A run for a request whose `extensions` hold its [`Route`], from its [`Start`].
    #[inline]
    pub(crate) fn new(
        svc: S,
        config: Arc<Config>,
        (headers, extensions): (HeaderMap, Extensions),
        start: Start,
    ) -> Self {
        Run {
            svc,
            deadline: start.deadline,
            config,
            caller: CallerHeaders::Map(headers),
            extensions,
            source: Source::Route,
            stream: false,
            order: start.order,
            next: 0,
            history: History::default(),
            sent: 0,
            tried: SmallVec::new(),
            span: Span::none(),
        }
    }

    /// Takes the body received from the layer above: the route's own bytes (same buffer, or
    /// equal), or an edited body, which must still parse.
    pub(crate) fn receive(&mut self, body: Bytes) -> Result<(), GatewayError> {
        let route = route(&self.extensions);
        let own = route.body();
        let same = (body.as_ptr() == own.as_ptr() && body.len() == own.len()) || body == *own;
        if same {
            self.stream = route.view().stream;
        } else {
            let view = RequestView::parse(&body)?.into_owned();
            self.stream = view.stream;
            self.source = Source::Edited(Box::new((body, view)));
        }
        Ok(())
    }

    /// The request's route.
    pub(crate) fn route(&self) -> &Route {
        route(&self.extensions)
    }

    /// Whether the request asks for a stream (known once the body is received).
    pub(crate) fn stream(&self) -> bool {
        self.stream
    }

    /// The key of the attempt's endpoint.
    pub(crate) fn endpoint_key(&self, a: Attempt) -> EndpointKey {
        let route = self.route();
        route
            .endpoint(&route.candidates()[a.ci as usize])
            .key()
            .clone()
    }

    pub(crate) fn secret(&self, a: Attempt) -> Option<&Secret> {
        secret(self.route(), a)
    }

    /// The next attempt and its request, or `None` when no candidate is left (or the deadline,
    /// the retry budget or the policy stopped).
    pub(crate) fn advance(&mut self) -> Option<(Attempt, Request<Full<Bytes>>)> {
        loop {
            let &(ci, cooling) = self.order.get(self.next)?;
            self.next += 1;
            // Looked up once for the attempt (each lookup hashes into the extension map).
            let route = route(&self.extensions);
            let original = self.extensions.get::<OriginalMessages>();
            let c = route.candidates()[ci as usize];
            let wire = Wire::choose(route.provider(&c).wire_format, original);
            let now = Instant::now();
            let attempt = Attempt {
                ci,
                wire: wire.unwrap_or(Wire::Chat),
                start: now,
                number: self.sent + 1,
                priming: false,
            };
            if cooling && self.config.cooldown == CooldownMode::FailFast {
                self.skip_cooling(&c);
                continue;
            }
            if now >= self.deadline {
                self.history.overall_expired = true;
                return None;
            }
            let sources = (route, original, &self.source);
            let built = wire
                .ok_or(AttemptError::UnsupportedWireFormat)
                .and_then(|w| build(sources, &mut self.caller, &self.config, &c, w));
            let mut req = match built {
                Ok(req) => req,
                Err(err) => {
                    if self.fail(attempt, err, None, None) == Decision::Return {
                        return None;
                    }
                    continue;
                }
            };
            if let Some(not_tried) = self.budget_refused(route, &c) {
                self.history.budget_exhausted = Some(not_tried);
                return None;
            }
            self.sent += 1;
            let slug = &route.provider(&c).slug;
            let model = route.endpoint(&c).upstream_model();
            self.span = telemetry::attempt_span(slug, model, attempt.number);
            telemetry::inject_context(&self.span, req.headers_mut());
            if !tried(route, &self.tried, slug) {
                self.tried.push(ci);
            }
            return Some((attempt, req));
        }
    }

    fn skip_cooling(&mut self, c: &Candidate) {
        let route = route(&self.extensions);
        self.history.records.push(AttemptRecord {
            provider: route.names(c).provider_name,
            endpoint: route.endpoint(c).key().clone(),
            status: None,
            error_type: Some(ErrorType::ProviderOverloaded),
            kind: AttemptKind::Cooldown,
            sent: false,
            duration: Duration::ZERO,
            retry_after: None,
        });
    }

    /// Whether `c` may not be sent: the providers not tried when so (to be recorded). The first
    /// attempt of a request and its first attempt at each provider are free (OpenRouter's
    /// contract is that fallbacks are tried); a repeated attempt at a provider already tried takes
    /// a retry from the budget, and is refused when the budget is empty.
    fn budget_refused(&self, route: &Route, c: &Candidate) -> Option<Vec<String>> {
        if self.sent == 0 || !tried(route, &self.tried, &route.provider(c).slug) {
            return None;
        }
        match &self.config.budget {
            Some(b) if !b.withdraw() => {
                let mut not_tried: Vec<String> = Vec::new();
                for &(ci, _) in &self.order[self.next - 1..] {
                    let name = &route.provider(&route.candidates()[ci as usize]).name;
                    if !not_tried.contains(name) {
                        not_tried.push(name.clone());
                    }
                }
                tracing::debug!(
                    not_tried = ?not_tried,
                    "retry budget exhausted; not retrying providers already tried"
                );
                Some(not_tried)
            }
            _ => None,
        }
    }

    /// The inner client failed before a response head: logged with the attempt, recorded as a
    /// connect failure.
    pub(crate) fn client_failed(&mut self, a: Attempt, error: BoxError) -> Decision {
        let route = self.route();
        let c = route.candidates()[a.ci as usize];
        tracing::debug!(
            endpoint = %route.endpoint(&c).key(),
            provider = %route.provider(&c).slug,
            attempt = a.number,
            %error,
            "the inner client failed"
        );
        self.fail(a, AttemptError::Connect, None, None)
    }

    /// The attempt (or the whole request) ran out of time.
    pub(crate) fn timed_out(&mut self, a: Attempt, error: AttemptError) -> Decision {
        if Instant::now() >= self.deadline {
            self.history.overall_expired = true;
        }
        self.fail(a, error, None, None)
    }

    /// Records a failed attempt (stats, attempts, trace) and asks the policy what next.
    pub(crate) fn fail(
        &mut self,
        a: Attempt,
        error: AttemptError,
        head: Option<&HeaderMap>,
        message: Option<String>,
    ) -> Decision {
        let now = Instant::now();
        let route = route(&self.extensions);
        let c = route.candidates()[a.ci as usize];
        let (e, p) = (route.endpoint(&c), route.provider(&c));
        let duration = now.saturating_duration_since(a.start);
        let sent = was_sent(error);
        let retry_after = head.and_then(crate::stats::parse_retry_after);
        let span = std::mem::replace(&mut self.span, Span::none());
        if let Some(status) = error.status() {
            telemetry::record_status(&span, status);
        }
        telemetry::record_error(&span, error.as_str());
        drop(span);
        if let Some(stats) = self.config.stats.as_ref().filter(|_| sent) {
            let mut s = stats_attempt(error, head);
            if let Some(r) = retry_after {
                s = s.retry_after(r);
            }
            stats.record_attempt(e.key(), s, now);
        }
        tracing::debug!(
            endpoint = %e.key(),
            provider = %p.slug,
            attempt = a.number,
            kind = error.as_str(),
            status = error.status(),
            elapsed_ms = duration.as_millis() as u64,
            "provider attempt failed"
        );
        self.history.records.push(AttemptRecord {
            provider: route.names(&c).provider_name,
            endpoint: e.key().clone(),
            status: error.status(),
            error_type: Some(error_type_of(error)),
            kind: error.kind(),
            sent,
            duration,
            retry_after,
        });
        let next = self
            .order
            .get(self.next)
            .map(|&(i, _)| route.candidates()[i as usize]);
        let failure = Failure {
            error,
            retry_after,
            endpoint: e,
            provider: p,
            position: self.next - 1,
            next_is_other_model: next.is_some_and(|n| n.model != c.model),
            has_next: next.is_some(),
        };
        let decision = self.config.policy.on_failure(&failure);
        let provider_name = p.name.clone();
        self.history.remember(LastFailure {
            error,
            sent,
            message,
            provider_name,
            decision,
        });
        decision
    }

    /// The answer when no candidate served the request.
    pub(crate) fn exhausted<B>(&mut self) -> Response<ResponseBody<B>> {
        self.history.answer(route(&self.extensions))
    }

    /// Success: the served-by record, with this attempt last, and the upstream's request id
    /// taken from the answer's `headers` (which are cleaned). A buffered answer's attempt ends
    /// here: its success goes to the statistics (with the route looked up once for both).
    fn served(
        &mut self,
        a: Attempt,
        (latency, how): (Duration, Answered<'_>),
        headers: &mut HeaderMap,
    ) -> ServedBy {
        let route = route(&self.extensions);
        let c = route.candidates()[a.ci as usize];
        let e = route.endpoint(&c);
        let names = route.names(&c);
        let (streamed, answer) = match how {
            Answered::Buffered(now, reading) => {
                if let Some(stats) = &self.config.stats {
                    let sample = StatsAttempt::new(Outcome::Success).latency(latency);
                    stats.record_attempt(e.key(), sample, now);
                }
                (false, reading.take())
            }
            Answered::Stream => (true, None),
        };
        let served = AttemptRecord {
            provider: names.provider_name.clone(),
            endpoint: e.key().clone(),
            status: Some(200),
            error_type: None,
            kind: AttemptKind::Ok,
            sent: true,
            duration: latency,
            retry_after: None,
        };
        // The failures before it (usually none) and this attempt: held inline when alone, else
        // in the history's list (no copy).
        let attempts: SmallVec<[AttemptRecord; 1]> = if self.history.records.is_empty() {
            SmallVec::from_buf([served])
        } else {
            let mut records = std::mem::take(&mut self.history.records);
            records.push(served);
            SmallVec::from_vec(records)
        };
        tracing::debug!(
            endpoint = %e.key(),
            provider = %names.provider_slug,
            attempts = attempts.len(),
            elapsed_ms = latency.as_millis() as u64,
            "provider served the request"
        );
        ServedBy {
            endpoint: e.key().clone(),
            provider_name: names.provider_name,
            provider_slug: names.provider_slug,
            upstream_model: names.upstream_model,
            streamed,
            latency: Some(latency),
            attempts,
            upstream_request_id: take_response_headers(headers, secret(route, a)),
            answer,
        }
    }

    /// The response for a served attempt: its [`ServedBy`] (made by [`Run::served`] from `head`'s
    /// headers, given `latency` and how it was answered) and the wire's mark added. The
    /// `ServedBy` is made here, next to its insert, rather than passed in through the callers (it
    /// is a few hundred bytes, copied at each move). No attempt follows a served one: an answer
    /// with no extensions gets the request's map, emptied, so that what the layers above add to it
    /// ([`ServedBy`]) reuses its allocation. (The request's header map went upstream with the
    /// first attempt.)
    fn respond<B>(
        &mut self,
        a: Attempt,
        mut head: Parts,
        answered: (Duration, Answered<'_>),
        body: ResponseBody<B>,
    ) -> Response<ResponseBody<B>> {
        let served = self.served(a, answered, &mut head.headers);
        if head.extensions.is_empty() {
            // Takes the route with it: nothing reads it after the answer.
            self.extensions.clear();
            head.extensions = std::mem::take(&mut self.extensions);
        }
        head.extensions.insert(served);
        a.wire.mark(&mut head.extensions);
        Response::from_parts(head, body)
    }

    /// A buffered answer that passed [`classify`](super::classify): one frame, exact size; the
    /// reader's reading of it goes to the layer that lent the reader in [`ServedBy`] (one
    /// extension for both), moved into it as it is made.
    pub(crate) fn answered<B>(
        &mut self,
        a: Attempt,
        head: Parts,
        (bytes, reading): (Bytes, &mut Option<AnswerReading>),
    ) -> Response<ResponseBody<B>> {
        let now = Instant::now();
        let latency = now.saturating_duration_since(a.start);
        telemetry::record_status(
            &std::mem::replace(&mut self.span, Span::none()),
            head.status.as_u16(),
        );
        let how = Answered::Buffered(now, reading);
        self.respond(a, head, (latency, how), ResponseBody::full(bytes))
    }

    /// A stream whose first content arrived: the held frames, then the rest of the stream.
    pub(crate) fn streamed<B>(
        &mut self,
        a: Attempt,
        head: Parts,
        prime: Prime<B>,
    ) -> Response<ResponseBody<B>> {
        let now = Instant::now();
        let latency = now.saturating_duration_since(a.start);
        let span = std::mem::replace(&mut self.span, Span::none());
        telemetry::record_status(&span, head.status.as_u16());
        if !span.is_disabled() {
            span.record("gen_ai.response.time_to_first_chunk", latency.as_secs_f64());
        }
        let mut stream = prime.stream;
        let s = stream.as_mut().project().state;
        let stream_latency = self.config.stream_latency.then_some(latency);
        s.recorder
            .arm(self.config.stats.clone(), stream_latency, span);
        let route = self.route();
        let c = &route.candidates()[a.ci as usize];
        s.provider_name = Some(match route.call(c) {
            Some(call) => call.name.clone(),
            None => Arc::from(route.provider(c).name.as_str()),
        });
        s.idle = Idle::since(self.config.stream_idle_timeout, now);
        if s.watch.bad() {
            // The frame that brought the first content also brought a bad event.
            stream.as_mut().end_bad();
        }
        self.respond(
            a,
            head,
            (latency, Answered::Stream),
            ResponseBody::stream(stream),
        )
    }
}

/// How a served attempt answered.
enum Answered<'r> {
    /// Whole, at the instant given (its attempt ends there), with the reader's reading of it for
    /// [`ServedBy`], if any.
    Buffered(Instant, &'r mut Option<AnswerReading>),
    /// A stream whose first content arrived (its recorder reports the attempt when it ends).
    Stream,
}

/// Indices into a route's candidates, with whether each is cooling down (inline: a request has a
/// handful of candidates).
/// (`u32`: a smaller future; no route has billions of candidates.)
type Order = SmallVec<[(u32, bool); 8]>;

/// The candidates in the order they are tried: as routed, cooling endpoints last
/// ([`CooldownMode::Defer`]).
fn order(config: &Config, route: &Route, now: Instant) -> Order {
    let health: Option<&dyn HealthSource> = match (&config.health, &config.stats) {
        _ if config.cooldown == CooldownMode::Ignore => None,
        (Some(h), _) => Some(&*h.0),
        // The stats know with one read when no endpoint at all is cooling down.
        (None, Some(s)) if s.any_cooling(now) => Some(s),
        _ => None,
    };
    let mut order: Order = (0..route.candidates().len() as u32)
        .map(|i| {
            let cooling = health.is_some_and(|h| {
                h.in_cooldown(route.endpoint(&route.candidates()[i as usize]).key(), now)
            });
            (i, cooling)
        })
        .collect();
    if config.cooldown == CooldownMode::Defer && order.iter().any(|(_, cooling)| *cooling) {
        // Stable: cooling endpoints keep their relative order, after all the others.
        order.sort_by_key(|(_, cooling)| *cooling);
    }
    order
}

/// The chat body to send, and its view: the route's, unless a layer edited the body.
fn chat<'a>(source: &'a Source, route: &'a Route) -> (&'a [u8], &'a RequestView<'static>) {
    match source {
        Source::Route => (route.body(), route.view()),
        Source::Edited(edited) => (&edited.0, &edited.1),
    }
}

/// The request of an attempt at `c` on `wire`, from the run's route, the caller's Messages body
/// (if any) and the body's source.
fn build(
    (route, original, source): (&Route, Option<&OriginalMessages>, &Source),
    caller: &mut CallerHeaders,
    config: &Config,
    c: &Candidate,
    wire: Wire,
) -> Result<Request<Full<Bytes>>, AttemptError> {
    let e = route.endpoint(c);
    let (body, view) = chat(source, route);
    // Embeddings and legacy completions exist on the OpenAI wire only.
    let path = if view.embeddings {
        Some("/embeddings")
    } else if view.completions {
        Some("/completions")
    } else {
        None
    };
    if path.is_some() && wire != Wire::Chat {
        return Err(AttemptError::UnsupportedWireFormat);
    }
    let body = match original.filter(|_| wire.passthrough()) {
        Some(m) => passthrough_body(m.body(), e.upstream_model(), m.max_tokens())
            .ok_or(AttemptError::NotCallable)?,
        None => {
            let chat = upstream_body(
                body,
                view,
                e.upstream_model(),
                e.provider_slug(),
                Fit {
                    supported: e.params(),
                    context_length: e.context_length,
                    ask_usage: view.stream && wire == Wire::Chat,
                },
            )
            .unwrap_or_else(|| view.splice_model(body, e.upstream_model()));
            wire.encode_chat(chat).ok_or(AttemptError::NotCallable)?
        }
    };
    build_request(route, c, caller, config, (wire, path), body)
}

/// The route in a run's extensions: [`ProviderFallback`](super::ProviderFallback) makes a run only
/// for a request that has one, and the map is emptied only when the answer is made, after which
/// the run is done.
fn route(extensions: &Extensions) -> &Route {
    extensions
        .get::<Route>()
        .expect("a run's extensions hold its route until the answer")
}

/// The credentials of the attempt's provider.
fn secret(route: &Route, a: Attempt) -> Option<&Secret> {
    route
        .provider(&route.candidates()[a.ci as usize])
        .credentials
        .secret()
}

/// Whether the provider `slug` was sent to already (`tried`: candidates sent to).
fn tried(route: &Route, tried: &[u32], slug: &str) -> bool {
    let candidates = route.candidates();
    tried
        .iter()
        .any(|&ci| *route.provider(&candidates[ci as usize]).slug == *slug)
}
