use std::collections::VecDeque;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::error::SimError;
use super::response::{push_token, Plan};
use super::rng::SimRng;
use super::stats::FlightGuard;

const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";
const DONE: &[u8] = b"data: [DONE]\n\n";
const MESSAGE_STOP: &[u8] = b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

/// Response body of a [`SimulatedProvider`](super::SimulatedProvider).
///
/// A whole JSON document for non-streamed answers and errors; for streams, a state machine that
/// produces one SSE event per frame, paced by a single reusable tokio [`Sleep`] that is allocated
/// on the first wait (never for zero-latency profiles). Keeping the `Sleep` boxed makes `SimBody`
/// [`Unpin`], so callers can use `body.frame().await` directly. Dropping it before the end counts
/// as a cancellation in the profile's [`SimStats`](super::SimStats).
#[derive(Debug)]
pub struct SimBody {
    inner: Inner,
    sleep: Option<Pin<Box<Sleep>>>,
    guard: Option<FlightGuard>,
}

#[derive(Debug)]
enum Inner {
    Full {
        data: Option<Bytes>,
        after: After,
    },
    Stream(StreamState),
    /// Prepared SSE events (a simulated tool call).
    Frames(VecDeque<Bytes>),
}

/// What a full body does once its data is out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum After {
    End,
    Error,
    Stall,
}

impl SimBody {
    pub(crate) fn full(data: Bytes) -> Self {
        Self::new(
            Inner::Full {
                data: Some(data),
                after: After::End,
            },
            None,
        )
    }

    pub(crate) fn error(guard: FlightGuard) -> Self {
        let inner = Inner::Full {
            data: None,
            after: After::Error,
        };
        Self::new(inner, Some(guard))
    }

    pub(crate) fn stall(guard: FlightGuard) -> Self {
        let inner = Inner::Full {
            data: None,
            after: After::Stall,
        };
        Self::new(inner, Some(guard))
    }

    /// Whole SSE events, one frame each, then the end.
    pub(crate) fn frames(events: Vec<Bytes>, guard: FlightGuard) -> Self {
        Self::new(Inner::Frames(events.into()), Some(guard))
    }

    pub(crate) fn stream(state: StreamState, guard: FlightGuard) -> Self {
        Self::new(Inner::Stream(state), Some(guard))
    }

    fn new(inner: Inner, guard: Option<FlightGuard>) -> Self {
        SimBody {
            inner,
            sleep: None,
            guard,
        }
    }
}

fn finish(guard: &mut Option<FlightGuard>) {
    if let Some(g) = guard.take() {
        g.complete();
    }
}

fn data(bytes: Bytes) -> Poll<Option<Result<Frame<Bytes>, SimError>>> {
    Poll::Ready(Some(Ok(Frame::data(bytes))))
}

impl Body for SimBody {
    type Data = Bytes;
    type Error = SimError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, SimError>>> {
        let this = self.get_mut();
        match &mut this.inner {
            Inner::Full { data: d, after } => {
                if let Some(bytes) = d.take() {
                    if *after == After::End {
                        finish(&mut this.guard);
                    }
                    return data(bytes);
                }
                match *after {
                    After::End => {
                        finish(&mut this.guard);
                        Poll::Ready(None)
                    }
                    After::Error => {
                        *after = After::End;
                        finish(&mut this.guard);
                        Poll::Ready(Some(Err(SimError::aborted())))
                    }
                    After::Stall => Poll::Pending,
                }
            }
            Inner::Frames(events) => match events.pop_front() {
                Some(bytes) => {
                    if events.is_empty() {
                        finish(&mut this.guard);
                    }
                    data(bytes)
                }
                None => {
                    finish(&mut this.guard);
                    Poll::Ready(None)
                }
            },
            Inner::Stream(s) => s.poll_frame(&mut this.sleep, &mut this.guard, cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Full { data, after } => data.is_none() && *after == After::End,
            Inner::Frames(events) => events.is_empty(),
            Inner::Stream(s) => s.phase == Phase::End,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Full {
                data,
                after: After::End,
            } => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            _ => SizeHint::default(),
        }
    }
}

/// How a stream ends after its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamEnd {
    /// finish chunk, usage chunk, `[DONE]`.
    Normal,
    /// Like `Normal`, with one invalid `data:` line at the failure point.
    Malformed,
    /// Ends (body returns `None`) at the failure point.
    Truncated,
    /// An error event at the failure point, then the end.
    MidStreamError,
    /// An `Err` frame at the failure point.
    BodyError,
    /// Nothing more after the failure point, ever.
    Stall,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Waiting { keep_alives: u32 },
    Content,
    Tail,
    Usage,
    Done,
    End,
}

/// The streaming state machine.
#[derive(Debug)]
pub(crate) struct StreamState {
    /// `data: {"id":…,"object":"chat.completion.chunk",…,"choices":[`, or for the Anthropic wire
    /// the `message_start` and `content_block_start` events.
    prefix: String,
    /// Anthropic Messages events instead of chat-completion chunks.
    anthropic: bool,
    /// Legacy completions chunks (`choices[].text`) instead of chat-completion chunks.
    legacy: bool,
    rng: SimRng,
    /// When the head was delivered; `None` for zero-latency profiles, which never wait.
    t0: Option<Instant>,
    /// The latest offset already waited for.
    reached: Duration,
    ttft: Duration,
    per_token_nanos: f64,
    per_event: u32,
    keep_alive: Option<Duration>,
    total: u32,
    fail_at: u32,
    emitted: u32,
    malformed_sent: bool,
    end: StreamEnd,
    finish: &'static str,
    prompt_tokens: u64,
    phase: Phase,
}

impl StreamState {
    pub(crate) fn new(plan: &Plan, prefix: String, end: StreamEnd) -> Self {
        let timed = !plan.ttft.is_zero() || plan.per_token_nanos > 0.0;
        StreamState {
            prefix,
            anthropic: plan.anthropic,
            legacy: plan.legacy,
            rng: plan.content_rng,
            t0: timed.then(Instant::now),
            reached: Duration::ZERO,
            ttft: plan.ttft,
            per_token_nanos: plan.per_token_nanos,
            per_event: plan.tokens_per_event.max(1),
            keep_alive: plan.keep_alive,
            total: plan.completion_tokens,
            fail_at: plan.fail_at,
            emitted: 0,
            malformed_sent: false,
            end,
            finish: plan.finish,
            prompt_tokens: plan.prompt_tokens,
            phase: Phase::Waiting { keep_alives: 0 },
        }
    }

    /// Waits until `offset` after the head, reusing one `Sleep`.
    fn wait(
        &mut self,
        sleep: &mut Option<Pin<Box<Sleep>>>,
        offset: Duration,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        let Some(t0) = self.t0 else {
            return Poll::Ready(());
        };
        if offset <= self.reached {
            return Poll::Ready(());
        }
        let deadline = t0 + offset;
        let s = match sleep {
            Some(s) => {
                if s.deadline() != deadline {
                    s.as_mut().reset(deadline);
                }
                s
            }
            None => sleep.insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        ready!(s.as_mut().poll(cx));
        self.reached = offset;
        Poll::Ready(())
    }

    /// Content tokens this stream sends before its end.
    fn limit(&self) -> u32 {
        match self.end {
            StreamEnd::Normal | StreamEnd::Malformed => self.total,
            _ => self.fail_at,
        }
    }

    fn event(&self, capacity: usize) -> String {
        if self.anthropic {
            return String::with_capacity(capacity + 48);
        }
        let mut s = String::with_capacity(self.prefix.len() + capacity);
        s.push_str(&self.prefix);
        s
    }

    /// What goes before and after the text of a content event, in this stream's dialect.
    fn content_event(&self) -> (&'static str, &'static str) {
        if self.anthropic {
            ("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"", "\"}}\n\n")
        } else if self.legacy {
            (
                "{\"index\":0,\"text\":\"",
                "\",\"finish_reason\":null}]}\n\n",
            )
        } else {
            (
                "{\"index\":0,\"delta\":{\"content\":\"",
                "\"},\"finish_reason\":null}]}\n\n",
            )
        }
    }

    fn poll_frame(
        &mut self,
        sleep: &mut Option<Pin<Box<Sleep>>>,
        guard: &mut Option<FlightGuard>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, SimError>>> {
        loop {
            match self.phase {
                Phase::Waiting { keep_alives } => {
                    if let Some(ka) = self.keep_alive {
                        let next = ka.saturating_mul(keep_alives.saturating_add(1));
                        if next < self.ttft {
                            ready!(self.wait(sleep, next, cx));
                            self.phase = Phase::Waiting {
                                keep_alives: keep_alives + 1,
                            };
                            return data(Bytes::from_static(KEEP_ALIVE));
                        }
                    }
                    ready!(self.wait(sleep, self.ttft, cx));
                    self.phase = Phase::Content;
                    if self.anthropic {
                        return data(Bytes::from(std::mem::take(&mut self.prefix)));
                    }
                    let mut s = self.event(96);
                    s.push_str(if self.legacy {
                        "{\"index\":0,\"text\":\"\",\"finish_reason\":null}]}\n\n"
                    } else {
                        "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n"
                    });
                    return data(Bytes::from(s));
                }
                Phase::Content => {
                    let malformed_due = self.end == StreamEnd::Malformed && !self.malformed_sent;
                    if malformed_due && self.emitted >= self.fail_at {
                        self.malformed_sent = true;
                        let mut s = self.event(48);
                        if self.anthropic {
                            s.push_str("event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\n\n");
                        } else if self.legacy {
                            s.push_str("{\"index\":0,\"text\":\n\n");
                        } else {
                            s.push_str("{\"index\":0,\"delta\":{\"content\":\n\n");
                        }
                        return data(Bytes::from(s));
                    }
                    let limit = self.limit();
                    if self.emitted < limit {
                        let mut upto = self.emitted.saturating_add(self.per_event).min(limit);
                        if malformed_due {
                            upto = upto.min(self.fail_at);
                        }
                        let at = self
                            .ttft
                            .saturating_add(Plan::token_offset(self.per_token_nanos, upto - 1));
                        ready!(self.wait(sleep, at, cx));
                        let mut s = self.event(80 + 14 * (upto - self.emitted) as usize);
                        let (open, close) = self.content_event();
                        s.push_str(open);
                        for i in self.emitted..upto {
                            push_token(&mut s, &mut self.rng, i);
                        }
                        s.push_str(close);
                        self.emitted = upto;
                        return data(Bytes::from(s));
                    }
                    self.phase = Phase::Tail;
                }
                Phase::Tail => match self.end {
                    StreamEnd::Normal | StreamEnd::Malformed => {
                        self.phase = Phase::Usage;
                        let mut s = self.event(64);
                        if self.anthropic {
                            let _ = write!(
                                s,
                                "event: content_block_stop\ndata: {{\"type\":\"content_block_stop\",\"index\":0}}\n\nevent: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"{}\",\"stop_sequence\":null}},\"usage\":{{\"output_tokens\":{}}}}}\n\n",
                                Plan::stop_reason(self.finish),
                                self.total
                            );
                            return data(Bytes::from(s));
                        }
                        let open = if self.legacy {
                            "\"text\":\"\""
                        } else {
                            "\"delta\":{}"
                        };
                        let _ = write!(
                            s,
                            "{{\"index\":0,{open},\"finish_reason\":\"{}\"}}]}}\n\n",
                            self.finish
                        );
                        return data(Bytes::from(s));
                    }
                    StreamEnd::Truncated => {
                        self.phase = Phase::End;
                    }
                    StreamEnd::MidStreamError => {
                        self.phase = Phase::End;
                        finish(guard);
                        if self.anthropic {
                            let mut s = String::from("event: error\ndata: ");
                            s.push_str(
                                std::str::from_utf8(super::response::ANTHROPIC_MID_ERROR)
                                    .unwrap_or_default(),
                            );
                            s.push_str("\n\n");
                            return data(Bytes::from(s));
                        }
                        let mut s = self.event(160);
                        s.push_str(if self.legacy {
                            "{\"index\":0,\"text\":\"\","
                        } else {
                            "{\"index\":0,\"delta\":{\"content\":\"\"},"
                        });
                        s.push_str("\"finish_reason\":\"error\"}],\"error\":{\"code\":502,\"message\":\"upstream provider error\"}}\n\n");
                        return data(Bytes::from(s));
                    }
                    StreamEnd::BodyError => {
                        self.phase = Phase::End;
                        finish(guard);
                        return Poll::Ready(Some(Err(SimError::aborted())));
                    }
                    StreamEnd::Stall => return Poll::Pending,
                },
                Phase::Usage => {
                    self.phase = Phase::Done;
                    if self.anthropic {
                        self.phase = Phase::End;
                        finish(guard);
                        return data(Bytes::from_static(MESSAGE_STOP));
                    }
                    let mut s = self.event(96);
                    let completion = u64::from(self.total);
                    let _ = write!(
                        s,
                        "],\"usage\":{{\"prompt_tokens\":{},\"completion_tokens\":{},\"total_tokens\":{}}}}}\n\n",
                        self.prompt_tokens,
                        completion,
                        self.prompt_tokens + completion
                    );
                    return data(Bytes::from(s));
                }
                Phase::Done => {
                    self.phase = Phase::End;
                    finish(guard);
                    return data(Bytes::from_static(DONE));
                }
                Phase::End => {
                    finish(guard);
                    return Poll::Ready(None);
                }
            }
        }
    }
}
