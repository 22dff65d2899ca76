//! Settlement: what is known about a request ([`Ctx`]), what its body showed ([`Obs`]), the budget
//! reservation it holds ([`Hold`]), and the one finish that turns them into a settled reservation,
//! a [`GenerationRecord`] for the sinks and a sample for the statistics ([`settle`]).
//!
//! Imports `config`, `content`, `cost`, `ledger`, `metadata` and `record` only.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use smallvec::SmallVec;
use tokio::time::Instant;

use super::config::Config;
use super::content;
use super::cost::{self, Cost, FinishReason, TokenUsage};
use super::ledger::{CallerKey, Ledger, Reservation};
use super::metadata::Plan;
use super::record::{App, GenerationId, GenerationRecord};
use crate::catalog::{Catalog, EndpointKey, Usd};
use crate::route::{AttemptRecord, ShortString};
use crate::stats::Generation;
use crate::telemetry;

/// A reservation that is released if nobody settles it (the request failed or was dropped).
pub(crate) struct Hold {
    ledger: Arc<dyn Ledger>,
    reservation: Option<Reservation>,
}

impl Hold {
    pub(crate) fn new(ledger: Arc<dyn Ledger>, reservation: Reservation) -> Self {
        Hold {
            ledger,
            reservation: Some(reservation),
        }
    }

    pub(crate) fn settle(mut self, actual: Usd) {
        if let Some(r) = self.reservation.take() {
            self.ledger.settle(r, actual);
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(r) = self.reservation.take() {
            self.ledger.release(r);
        }
    }
}

impl fmt::Debug for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hold")
            .field("reservation", &self.reservation)
            .finish_non_exhaustive()
    }
}

/// What is known about a request before its response: set in `call`, completed when the response
/// head arrives.
pub(crate) struct Ctx {
    pub(crate) cfg: Arc<Config>,
    pub(crate) id: GenerationId,
    pub(crate) created_ms: i64,
    pub(crate) start: Instant,
    pub(crate) key: Option<CallerKey>,
    pub(crate) requested_model: Option<Arc<str>>,
    pub(crate) catalog: Option<Catalog>,
    /// The first candidate endpoint's index (it stands in when no `ServedBy` arrives); `u32`, as
    /// `endpoint`, to keep the meter's allocation on the allocator's fast path (≤ 1,032 B).
    pub(crate) first_candidate: Option<u32>,
    pub(crate) request_ms: i64,
    pub(crate) prompt_estimate: u64,
    pub(crate) images: u64,
    pub(crate) hold: Option<Hold>,
    // Known once the response head arrived:
    /// The serving endpoint's index in the catalog (`u32`: see `first_candidate`).
    pub(crate) endpoint: Option<u32>,
    pub(crate) endpoint_key: Option<EndpointKey>,
    /// The serving model's id and its provider's name, shared with the catalog (empty until
    /// known).
    pub(crate) model: Arc<str>,
    pub(crate) provider_name: Arc<str>,
    pub(crate) streamed: bool,
    pub(crate) success: bool,
    pub(crate) rewrite: bool,
    /// The serving endpoint's own time to first content, measured by the layer that called it
    /// (`ServedBy::latency`): excludes failed attempts before it.
    pub(crate) served_latency: Option<std::time::Duration>,
    /// Upstream attempts (`ServedBy::attempts` that were sent), at least 1.
    pub(crate) attempts: u32,
    /// The served endpoint's service tier as a JSON string (`"priority"`), when it has one.
    pub(crate) service_tier: Option<String>,
    /// The provider's request id (`ServedBy::upstream_request_id`).
    pub(crate) upstream_request_id: Option<ShortString>,
    /// An embeddings request: it has no completion, so an answer without completion tokens is
    /// not an empty (insured) one.
    pub(crate) embeddings: bool,
    /// A legacy completions request (`prompt`): its content is `choices[].text`.
    pub(crate) completions: bool,
    /// The serving endpoint's tier for the generation record (`"default"` when it has none).
    pub(crate) served_tier: Option<&'static str>,
    /// The app that sent the request (attribution headers), when it named one: boxed, as most
    /// requests do not, so that the meter's core stays within the allocator's fast path.
    pub(crate) app: Option<Box<App>>,
    /// `session_id` from the body, else `x-session-id`.
    pub(crate) session_id: Option<String>,
    /// Every attempt (a copy of `ServedBy::attempts`; empty when there is none).
    pub(crate) provider_responses: SmallVec<[AttemptRecord; 1]>,
    /// The preset the request used (ModelRouting's `AppliedPreset`).
    pub(crate) preset: Option<Arc<str>>,
    /// The request's `gen_ai.request` span: closed when the meter finishes (it is dropped with
    /// the context).
    pub(crate) span: tracing::Span,
    /// `openrouter_metadata`, when the request asked for it (see `metadata`).
    pub(crate) metadata: Option<Box<Plan>>,
}

impl Ctx {
    /// Prices `usage` at the served endpoint (zero when it is unknown).
    pub(crate) fn price(&self, usage: &TokenUsage, insured: bool) -> Cost {
        let e = self
            .catalog
            .as_ref()
            .zip(self.endpoint)
            .and_then(|(c, i)| c.endpoint(i as usize));
        match e {
            Some(e) => cost::price(&e.pricing, usage, self.request_ms, self.images, insured),
            None => Cost::default(),
        }
    }
}

/// What the body showed so far (filled in by the readers in `edit`, read by [`settle`]).
#[derive(Debug, Default)]
pub(crate) struct Obs {
    pub(crate) first_data: Option<Instant>,
    pub(crate) first_content: Option<Instant>,
    pub(crate) last_content: Option<Instant>,
    pub(crate) content_bytes: u64,
    pub(crate) usage: Option<TokenUsage>,
    pub(crate) anthropic: Option<TokenUsage>,
    pub(crate) finish_reason: Option<FinishReason>,
    pub(crate) error: bool,
    pub(crate) upstream_id: Option<ShortString>,
    /// Offset of `"content":` in the previous event (chunks from one serializer repeat it).
    pub(crate) content_hint: usize,
    /// The last cost computed, and for what: the body's edit and the settlement price the same
    /// usage, so the second is a copy.
    pub(crate) priced: Option<(TokenUsage, bool, Cost)>,
    /// A stream's raw content, kept only when the operator records contents (`content`).
    pub(crate) output: Vec<u8>,
}

impl Obs {
    /// `usage` priced at the served endpoint, remembered for the next call with the same input.
    pub(crate) fn price(&mut self, ctx: &Ctx, usage: &TokenUsage, insured: bool) -> Cost {
        match self.priced {
            Some((u, i, c)) if u == *usage && i == insured => c,
            _ => {
                let c = ctx.price(usage, insured);
                self.priced = Some((*usage, insured, c));
                c
            }
        }
    }
}

/// How the body ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// End of stream, trailers, or `is_end_stream()` after a frame.
    Complete,
    /// The inner body failed.
    Error,
    /// The body was dropped before its end.
    Cancelled,
}

/// Finishes a request once its body ended: settles the reservation with the metered cost (an
/// error response releases it instead), feeds the statistics and sends the generation record to
/// the sinks. The last use of `ctx` and `obs`: what the record keeps is moved out of them.
pub(crate) fn settle(ctx: &mut Ctx, obs: &mut Obs, end: End) {
    if !ctx.success {
        // An error response: nothing was generated, the reservation is released (by the hold's
        // drop) and no generation is recorded.
        drop(ctx.hold.take());
        return;
    }
    let now = ctx.cfg.clock.now();
    let reported = obs.usage.or(obs.anthropic);
    // Missing usage is never free: the prompt estimate and a quarter of the content bytes.
    let tokens = reported
        .unwrap_or_else(|| TokenUsage::new(ctx.prompt_estimate, obs.content_bytes.div_ceil(4)));
    let insured = !ctx.embeddings && cost::insured(reported.as_ref(), obs.finish_reason.as_deref());
    let cost = obs.price(ctx, &tokens, insured);
    if let Some(hold) = ctx.hold.take() {
        hold.settle(cost.total);
    }
    let t = Timing::new(ctx.start, obs, now, tokens.completion);
    let usage_missing = reported.is_none();
    record_span(ctx, obs, &tokens, &cost, &t, end);
    if !usage_missing && end == End::Complete && !obs.error {
        if ctx.streamed {
            feed_stats(ctx, &t, now);
        } else {
            feed_throughput(ctx, tokens.completion, now);
        }
    }
    if ctx.cfg.sinks.is_empty() {
        return;
    }
    let record = Arc::new(GenerationRecord {
        id: ctx.id,
        created_unix_millis: ctx.created_ms,
        key: ctx.key.take(),
        requested_model: ctx.requested_model.take(),
        model: std::mem::take(&mut ctx.model),
        provider_name: std::mem::take(&mut ctx.provider_name),
        endpoint: ctx.endpoint_key.clone(),
        upstream_id: obs.upstream_id.take(),
        upstream_request_id: ctx.upstream_request_id.take(),
        tokens,
        cost: cost.total,
        prompt_cost: cost.prompt,
        completion_cost: cost.completion,
        latency: t.latency,
        ttft: t.ttft,
        generation_time: t.generation_time,
        throughput: t.generation.tokens_per_second(),
        finish_reason: obs.finish_reason.take(),
        streamed: ctx.streamed,
        cancelled: end == End::Cancelled,
        usage_missing,
        insured,
        error: end == End::Error || obs.error,
        attempts: ctx.attempts,
        provider_responses: std::mem::take(&mut ctx.provider_responses),
        app: ctx.app.take().map_or_else(App::default, |a| *a),
        session_id: ctx.session_id.take(),
        service_tier: ctx.served_tier,
        preset_id: ctx.preset.clone(),
    });
    for s in &ctx.cfg.sinks {
        s.record(&record);
    }
}

/// Puts what the body showed on the request's span (nothing to do when it is disabled).
fn record_span(ctx: &Ctx, obs: &Obs, tokens: &TokenUsage, cost: &Cost, t: &Timing, end: End) {
    let span = &ctx.span;
    if span.is_disabled() {
        return;
    }
    span.record("gen_ai.usage.input_tokens", telemetry::int(tokens.prompt));
    span.record(
        "gen_ai.usage.output_tokens",
        telemetry::int(tokens.completion),
    );
    span.record(
        "gen_ai.usage.cache_read.input_tokens",
        telemetry::int(tokens.cached),
    );
    span.record(
        "gen_ai.usage.cache_creation.input_tokens",
        tokens.cache_write,
    );
    span.record(
        "gen_ai.usage.reasoning.output_tokens",
        telemetry::int(tokens.reasoning),
    );
    span.record("gen_ai.usage.cost", cost.total.to_f64());
    if let Some(ttft) = t.ttft {
        span.record("gen_ai.response.time_to_first_chunk", ttft.as_secs_f64());
    }
    if let Some(f) = obs.finish_reason.as_deref() {
        span.record("gen_ai.response.finish_reasons", f);
    }
    if ctx.streamed {
        let f = obs.finish_reason.as_deref();
        content::record_stream_output(span, &obs.output, f, ctx.cfg.content_limit);
    }
    match end {
        End::Cancelled => telemetry::record_error(span, "cancelled"),
        End::Error => telemetry::record_error(span, "stream_error"),
        End::Complete if obs.error => telemetry::record_error(span, "provider_error"),
        End::Complete => {}
    }
}

/// The timings of a finished generation.
struct Timing {
    /// Request start → the finish.
    latency: Duration,
    /// Request start → first data event.
    ttft: Option<Duration>,
    /// First data event → the finish.
    generation_time: Duration,
    /// Completion tokens over first → last content event.
    generation: Generation,
}

impl Timing {
    /// The timings of a request that started at `start` and finished at `now`.
    fn new(start: Instant, obs: &Obs, now: Instant, completion_tokens: u64) -> Self {
        let ttft = obs.first_data.map(|t| t.saturating_duration_since(start));
        let generation_time = obs
            .first_data
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        // With the first data event between them (as it always is), the two parts add up to the
        // whole exactly: one subtraction fewer.
        let latency = match (obs.first_data, ttft) {
            (Some(f), Some(ttft)) if start <= f && f <= now => ttft + generation_time,
            _ => now.saturating_duration_since(start),
        };
        let content_time = match (obs.first_content, obs.last_content.unwrap_or(now)) {
            (Some(a), b) => b.saturating_duration_since(a),
            _ => Duration::ZERO,
        };
        Timing {
            latency,
            ttft,
            generation_time,
            generation: Generation::new(completion_tokens, content_time),
        }
    }
}

/// Gives the statistics the throughput of a non-streamed answer: completion tokens over the serving
/// endpoint's time to answer (its own, measured by the layer that called it, else request start →
/// now). No latency sample: ProviderFallback records the time to the answer as the attempt's.
fn feed_throughput(ctx: &Ctx, completion_tokens: u64, now: Instant) {
    if let (Some(stats), Some(key)) = (&ctx.cfg.stats, &ctx.endpoint_key) {
        let took = ctx
            .served_latency
            .unwrap_or_else(|| now.saturating_duration_since(ctx.start));
        stats.record_generation(key, Generation::new(completion_tokens, took), now);
    }
}

/// Gives the statistics the serving endpoint's TTFT (its own, measured by the layer that called
/// it, else request start → first data event) and throughput.
fn feed_stats(ctx: &Ctx, t: &Timing, now: Instant) {
    if let (Some(stats), Some(key), Some(ttft)) = (
        &ctx.cfg.stats,
        &ctx.endpoint_key,
        ctx.served_latency.or(t.ttft),
    ) {
        stats.record_generation(key, t.generation.ttft(ttft), now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The latency is request start → finish, measured, whatever the first data event's time
    /// (before the start, between, after the finish, or none).
    #[tokio::test(start_paused = true)]
    async fn latency_is_start_to_finish() {
        let base = Instant::now();
        let at = |ns: u64| base + Duration::from_nanos(ns);
        let times = [
            0,
            1,
            999_999_999,
            1_000_000_000,
            1_000_000_001,
            2_500_000_007,
        ];
        for &s in &times {
            for &n in &times {
                let firsts = times.iter().map(|&f| Some(at(f))).chain([None]);
                for first in firsts {
                    let obs = Obs {
                        first_data: first,
                        ..Obs::default()
                    };
                    let t = Timing::new(at(s), &obs, at(n), 0);
                    let whole = at(n).saturating_duration_since(at(s));
                    assert_eq!(t.latency, whole, "start {s} first {first:?} now {n}");
                }
            }
        }
    }
}
