use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use rand::RngCore;
use tower_service::Service;

use super::body::ResponseBody;
use super::config::Config;
use super::content;
use super::future::{refused, Estimate, ResponseFuture};
use super::ledger::CallerKey;
use super::metadata::{metadata_requested, Plan, LEGACY_METADATA_HEADER, METADATA_HEADER};
use super::meter::Pending;
use super::record::{
    header_str, App, GenerationId, HTTP_REFERER, X_OPENROUTER_TITLE, X_SESSION_ID, X_TITLE,
};
use super::settle::{Ctx, Hold};
use crate::catalog::Usd;
use crate::route::{AppliedPreset, Route};
use crate::telemetry;
use tracing::Span;

/// Middleware that meters every response, prices it at the endpoint that served it, records a
/// generation and enforces per-key budgets.
///
/// See the [module docs](super) for an example.
#[derive(Clone)]
pub struct UsageMeter<S> {
    pub(crate) inner: S,
    pub(crate) config: Arc<Config>,
}

// `new` and `layer` are defined beside the builder, in `layer.rs`.
impl<S> UsageMeter<S> {
    define_inner_service_accessors!();
}

impl<S: fmt::Debug> fmt::Debug for UsageMeter<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsageMeter")
            .field("inner", &self.inner)
            .field("config", &*self.config)
            .finish()
    }
}

/// The characters of a generation id's random part (those of `rand`'s `Alphanumeric`), indexed by
/// six random bits: the last two (bits 62 and 63) are never kept.
const ID_CHARS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789--";
/// How many of [`ID_CHARS`] an id uses.
const ID_ALPHABET: usize = 62;

/// A fresh generation id: `gen-<unix secs>-<20 random alphanumerics>`, written in place (no
/// allocation). Each character is six random bits, drawn again when they fall outside the
/// alphabet (so uniform), ten of them from each random word.
pub(crate) fn generation_id(unix_millis: i64) -> GenerationId {
    let mut secs = itoa::Buffer::new();
    let secs = secs.format(unix_millis.div_euclid(1000));
    let rng = &mut rand::thread_rng();
    let random = id_chars(|| rng.next_u64());
    let random = std::str::from_utf8(&random[..20]).unwrap_or_default();
    GenerationId::from_parts(&["gen-", secs, "-", random])
}

/// The random part of a generation id from the random words `next` gives: its first 20 bytes
/// (the rest is scratch room for a word's ten characters past the twentieth).
fn id_chars(mut next: impl FnMut() -> u64) -> [u8; 30] {
    let mut random = [0u8; 30];
    let mut n = 0;
    while n < 20 {
        // Every draw is written where the next character goes, and kept (the place moved on)
        // only when it is in the alphabet: no branch per character.
        let mut bits = next();
        for _ in 0..10 {
            let i = (bits & 63) as usize;
            random[n] = ID_CHARS[i];
            n += usize::from(i < ID_ALPHABET);
            bits >>= 6;
        }
    }
    random
}

/// Which of the optional request headers the meter reads are there, found in one pass over the
/// request's (few) header names: comparing names costs less than a hashed lookup of each one,
/// and the usual request sends none of them.
#[derive(Clone, Copy, Debug, Default)]
struct Present {
    /// `HTTP-Referer`, `X-OpenRouter-Title` or `X-Title` ([`App::from_headers`]).
    app: bool,
    /// Either `openrouter_metadata` header ([`metadata_requested`]).
    metadata: bool,
    /// `X-Session-Id`.
    session: bool,
}

impl Present {
    fn of(headers: &http::HeaderMap) -> Self {
        let mut p = Present::default();
        for name in headers.keys() {
            p.app |= *name == HTTP_REFERER || *name == X_OPENROUTER_TITLE || *name == X_TITLE;
            p.metadata |= *name == METADATA_HEADER || *name == LEGACY_METADATA_HEADER;
            p.session |= *name == X_SESSION_ID;
        }
        p
    }
}

/// What the meter takes from ModelRouting's `route`; the reservation's estimate when the
/// request has a budget to reserve against; the `openrouter_metadata` plan when asked.
fn read_route(
    ctx: &mut Ctx,
    route: &Route,
    (headers, present): (&http::HeaderMap, Present),
) -> Option<Estimate> {
    let view = route.view();
    let first = view.first_requested_model();
    // Shared with the route's first model when that is the same name (it usually is).
    ctx.requested_model = first.map(|name| match route.models().first() {
        Some(m) if *m.requested == *name => m.requested.clone(),
        _ => Arc::from(name),
    });
    ctx.catalog = Some(route.catalog().clone());
    ctx.first_candidate = route
        .candidates()
        .first()
        .and_then(|c| u32::try_from(c.index).ok());
    ctx.request_ms = route.unix_millis();
    ctx.prompt_estimate = route.prompt_tokens();
    ctx.embeddings = view.embeddings;
    ctx.completions = view.completions;
    // The image parts the parser counted in the messages (not every `"image_url":` of the
    // body, which a tool's schema may have too).
    ctx.images = view.image_parts;
    ctx.session_id = view.session_id.as_deref().map(str::to_owned);
    if ctx.rewrite && present.metadata && metadata_requested(headers) {
        ctx.metadata = Some(Plan::new(route));
    }
    (ctx.cfg.ledger.is_some() && ctx.key.is_some())
        .then(|| estimate(route, ctx.images, ctx.cfg.default_max_tokens))
}

/// The worst-case cost of `route`: the dearest candidate's price of the prompt's upper bound
/// ([`RequestView::prompt_bound`](crate::route::RequestView::prompt_bound)) plus the largest
/// allowed output.
fn estimate(route: &Route, images: u64, default_max: u64) -> Estimate {
    let prompt = route.view().prompt_bound();
    let requested = route.view().max_output();
    let mut best = Estimate {
        amount: Usd::ZERO,
        max_output: requested.unwrap_or(default_max),
        output_price: Usd::ZERO,
        fixed: Usd::ZERO,
    };
    for c in route.candidates() {
        let e = route.endpoint(c);
        let p = route.pricing(e);
        let out = requested.or(e.max_completion_tokens).unwrap_or(default_max);
        let out_price = p.completion.max(p.internal_reasoning).scale(p.multiplier);
        let fixed = p
            .prompt
            .times(prompt)
            .add(p.request)
            .add(p.image.times(images))
            .scale(p.multiplier);
        let amount = fixed.add(out_price.times(out));
        if amount > best.amount {
            best = Estimate {
                amount,
                max_output: out,
                output_price: out_price,
                fixed,
            };
        }
    }
    best
}

/// Opens the request's `gen_ai.request` span, with the conversation id and, when the operator
/// opted in, the prompt.
fn open_span<B>(ctx: &mut Ctx, req: &Request<B>) {
    ctx.span = telemetry::request_span(ctx.requested_model.as_deref());
    if ctx.span.is_disabled() {
        return;
    }
    telemetry::set_remote_parent(&ctx.span, req.headers());
    if let Some(s) = ctx.session_id.as_deref() {
        ctx.span.record("gen_ai.conversation.id", s);
    }
    if let Some(route) = req.extensions().get::<Route>() {
        content::record_input(&ctx.span, route.body(), ctx.cfg.content_limit);
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for UsageMeter<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: Body<Data = Bytes>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody, ResBody>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let cfg = self.config.clone();
        let start = cfg.clock.now();
        let created_ms = cfg.clock.unix_millis();
        let key = req.extensions().get::<CallerKey>().cloned();
        let present = Present::of(req.headers());
        let mut ctx = Ctx {
            cfg: cfg.clone(),
            id: req
                .extensions()
                .get::<GenerationId>()
                .map_or_else(|| generation_id(created_ms), |id| *id),
            created_ms,
            start,
            key,
            requested_model: None,
            catalog: None,
            first_candidate: None,
            request_ms: created_ms,
            prompt_estimate: 0,
            images: 0,
            hold: None,
            endpoint: None,
            endpoint_key: None,
            model: Arc::default(),
            provider_name: Arc::default(),
            streamed: false,
            success: false,
            rewrite: cfg.rewrite,
            served_latency: None,
            attempts: 1,
            upstream_request_id: None,
            service_tier: None,
            embeddings: false,
            completions: false,
            served_tier: None,
            app: present
                .app
                .then(|| Box::new(App::from_headers(req.headers()))),
            session_id: None,
            provider_responses: Default::default(),
            preset: req.extensions().get::<AppliedPreset>().map(|p| p.0.clone()),
            span: Span::none(),
            metadata: None,
        };
        let est = req
            .extensions()
            .get::<Route>()
            .and_then(|route| read_route(&mut ctx, route, (req.headers(), present)));
        if ctx.session_id.is_none() && present.session {
            ctx.session_id = header_str(req.headers(), &X_SESSION_ID).map(str::to_owned);
        }
        open_span(&mut ctx, &req);
        let span = ctx.span.clone();
        if let (Some(ledger), Some(key)) = (&cfg.ledger, &ctx.key) {
            let est = est.unwrap_or_default();
            match ledger.reserve_ready(key, est.amount, created_ms) {
                Some(Ok(reservation)) => ctx.hold = Some(Hold::new(ledger.clone(), reservation)),
                Some(Err(refusal)) => {
                    let error = refused(&refusal, &est, &span);
                    return ResponseFuture::rejected(error, Pending::new(ctx), span);
                }
                None => {
                    let fut = ledger.reserve(key, est.amount, created_ms);
                    // Clone-and-swap: the service that was polled ready is the one that is called.
                    let clone = self.inner.clone();
                    let svc = std::mem::replace(&mut self.inner, clone);
                    let ctx = Pending::new(ctx);
                    return ResponseFuture::reserving(
                        fut,
                        ledger.clone(),
                        svc,
                        req,
                        est,
                        ctx,
                        span,
                    );
                }
            }
        }
        // The context moves as a pointer from here on.
        let ctx = Pending::new(ctx);
        // Entered while the layers below build their futures. Built as the argument, not
        // returned from an `in_scope` closure: the future is kilobytes, each return a copy.
        let _entered = span.enter();
        ResponseFuture::calling(self.inner.call(req), ctx, span.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each optional header the meter reads is found (in any case, either name), and a request
    /// with none of them has none.
    #[test]
    fn present_headers() {
        let of = |names: &[&str]| {
            let mut h = http::HeaderMap::new();
            h.insert(http::header::AUTHORIZATION, "Bearer k".parse().unwrap());
            for n in names {
                h.append(
                    http::HeaderName::try_from(*n).unwrap(),
                    "v".parse().unwrap(),
                );
            }
            let p = Present::of(&h);
            (p.app, p.metadata, p.session)
        };
        assert_eq!(of(&[]), (false, false, false));
        assert_eq!(of(&["HTTP-Referer"]), (true, false, false));
        assert_eq!(of(&["X-OpenRouter-Title"]), (true, false, false));
        assert_eq!(of(&["x-title"]), (true, false, false));
        assert_eq!(of(&["X-OpenRouter-Metadata"]), (false, true, false));
        assert_eq!(
            of(&["x-openrouter-experimental-metadata"]),
            (false, true, false)
        );
        assert_eq!(of(&["X-Session-Id"]), (false, false, true));
        assert_eq!(of(&["x-title", "x-session-id"]), (true, false, true));
    }

    /// Ids are `gen-<secs>-` and 20 alphanumerics, every one of the 62 drawn.
    #[test]
    fn generation_ids() {
        let mut seen = std::collections::HashSet::new();
        for ms in [0, 1_763_780_000_123, -1_500, i64::MAX, i64::MIN] {
            for _ in 0..200 {
                let id = generation_id(ms);
                let prefix = format!("gen-{}-", ms.div_euclid(1000));
                let rest = id.strip_prefix(&prefix).expect("the prefix");
                assert_eq!(rest.len(), 20, "{id}");
                assert!(rest.bytes().all(|c| c.is_ascii_alphanumeric()), "{id}");
                seen.extend(rest.bytes());
            }
        }
        assert_eq!(seen.len(), 62);
    }

    /// A seeded SplitMix64: the tests' random words, the same on every run.
    fn splitmix(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let z = (state ^ (state >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
    }

    /// Every character is about as frequent as every other, at every position (seeded words).
    #[test]
    fn generation_id_chars_uniform() {
        // 40,000 characters: each of the 62 about 645 times (σ ≈ 25).
        let mut counts = [0u32; 62];
        let mut by_position = [[0u32; 62]; 20];
        let mut next = splitmix(7);
        for _ in 0..2000 {
            let chars = id_chars(&mut next);
            for (p, c) in chars[..20].iter().enumerate() {
                let i = ID_CHARS[..ID_ALPHABET]
                    .iter()
                    .position(|x| x == c)
                    .expect("an id character");
                counts[i] += 1;
                by_position[p][i] += 1;
            }
        }
        assert!(
            counts.iter().all(|&n| (450..=850).contains(&n)),
            "{counts:?}"
        );
        // About 32 per position and character (σ ≈ 5.6): none above 100.
        assert!(
            by_position.iter().flatten().all(|&n| n <= 100),
            "{by_position:?}"
        );
    }

    /// The characters are those of the draw that tests each six bits in turn and stops at the
    /// twentieth kept, for any words (rejected bits included).
    #[test]
    fn id_chars_as_drawn_one_by_one() {
        let by_hand = |words: &[u64]| {
            let mut out = Vec::new();
            for &w in words {
                for k in 0..10 {
                    let i = ((w >> (6 * k)) & 63) as usize;
                    if i < ID_ALPHABET && out.len() < 20 {
                        out.push(ID_CHARS[i]);
                    }
                }
            }
            out
        };
        let mut next = splitmix(0x9E37_79B9_7F4A_7C15);
        for round in 0..2000 {
            let mut words: Vec<u64> = (0..4).map(|_| next()).collect();
            // Runs of rejected bits (62 and 63) in some words.
            if round % 3 == 0 {
                words[0] |= 0x0FFF_F000_0000_0FFF;
            }
            if round % 5 == 0 {
                words[1] = u64::MAX;
            }
            let mut it = words.iter().copied();
            let fast = id_chars(|| it.next().expect("enough words"));
            assert_eq!(&fast[..20], &by_hand(&words)[..], "{words:x?}");
        }
    }
}
