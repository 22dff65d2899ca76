//! The meter of one response: routes its bytes to the right reader (SSE scanner, JSON body
//! editor, or none), holds what they need between frames, and finishes exactly once — through
//! [`Meter::finish`] or, if the body is dropped first, from `Drop` (as cancelled).
//!
//! Imports `edit`, `settle` and `sse`.

use std::fmt;

use bytes::{Bytes, BytesMut};

use super::edit::{self, Handler, StreamEdits};
use super::settle::{self, Ctx, End, Obs};
use super::sse::SseScanner;
use crate::route::AnswerReading;

/// How the response is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `text/event-stream`: scanned event by event, passed through at once.
    Sse,
    /// A complete JSON body: edited whole (see [`Meter::whole`]) or accumulated up to the
    /// configured limit and edited at its end.
    Json,
    /// Observed only (error responses).
    Pass,
}

/// Where a non-streamed body stands.
#[derive(Debug)]
enum JsonState {
    /// Frames accumulated so far (none yet, or several frames).
    Accumulating(BytesMut),
    /// Larger than the limit: passed through untouched, counted only.
    Overflow,
    /// Edited whole already ([`Meter::whole`]): nothing left to emit.
    Edited,
}

/// The meter of one response (see the [module docs](self)).
pub(crate) struct Meter {
    core: Option<Box<Core>>,
}

/// The state of a meter that has not finished.
struct Core {
    ctx: Ctx,
    obs: Obs,
    mode: Mode,
    /// An event stream's reader (`Some` in [`Mode::Sse`] only): boxed, so that the core of every
    /// other response stays small enough for the allocator's fast path.
    sse: Option<Box<Stream>>,
    json: JsonState,
}

/// What reading an event stream keeps between frames.
#[derive(Default)]
struct Stream {
    scanner: SseScanner,
    edits: StreamEdits,
}

impl fmt::Debug for Meter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.core {
            Some(c) => f
                .debug_struct("Meter")
                .field("id", &c.ctx.id)
                .field("mode", &c.mode)
                .finish_non_exhaustive(),
            None => f.write_str("Meter(finished)"),
        }
    }
}

/// The meter of a request whose response has not arrived: its context, already in the meter's
/// one allocation, so that the response future and the response's head edits move a pointer, not
/// the context. Dropped unstarted, it drops the context (a reservation it holds is released).
pub(crate) struct Pending(Box<Core>);

impl Pending {
    /// The meter-to-be of the request `ctx` (its mode is set when the response arrives).
    // Inlined into `call`, the context is copied once, into the allocation (not first into a
    // `Core` on the stack).
    #[inline(always)]
    pub(crate) fn new(ctx: Ctx) -> Self {
        Pending(Box::new(Core {
            ctx,
            obs: Obs::default(),
            mode: Mode::Pass,
            sse: None,
            json: JsonState::Accumulating(BytesMut::new()),
        }))
    }

    /// The request's context.
    pub(crate) fn ctx(&self) -> &Ctx {
        &self.0.ctx
    }

    /// The request's context, to complete (the reservation, then the response head).
    pub(crate) fn ctx_mut(&mut self) -> &mut Ctx {
        &mut self.0.ctx
    }

    /// The meter of the response, read in `mode`.
    pub(crate) fn start(mut self, mode: Mode) -> Meter {
        self.0.mode = mode;
        if mode == Mode::Sse {
            self.0.sse = Some(Box::default());
        }
        Meter { core: Some(self.0) }
    }
}

impl Meter {
    pub(crate) fn mode(&self) -> Mode {
        self.core.as_ref().map_or(Mode::Pass, |c| c.mode)
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.core.is_none()
    }

    /// The largest non-streamed body this meter edits.
    pub(crate) fn json_limit(&self) -> usize {
        self.core.as_ref().map_or(0, |c| c.ctx.cfg.json_limit)
    }

    /// Observes a data frame; returns what to emit now (may be empty). An event stream's frame
    /// is handled inline (the usual content chunk takes [`SseScanner::feed`]'s fast path without
    /// a call); the other modes out of line.
    #[inline(always)]
    pub(crate) fn data(&mut self, data: Bytes) -> Bytes {
        match self.core.as_deref_mut() {
            Some(Core {
                ctx,
                obs,
                sse: Some(s),
                ..
            }) => {
                let mut h = Handler::new(ctx, obs, &mut s.edits);
                s.scanner.feed(data, &mut h)
            }
            Some(core) => core.other_data(data),
            None => data,
        }
    }

    /// The bytes of a non-streamed body accumulated so far ([`Meter::data`] in [`Mode::Json`]).
    pub(crate) fn accumulated(&self) -> usize {
        match self.core.as_deref() {
            Some(Core {
                json: JsonState::Accumulating(buf),
                ..
            }) => buf.len(),
            _ => 0,
        }
    }

    /// Edits a complete non-streamed body: `body`, one that arrived in one piece (edited without
    /// a copy first), or, when `None`, the frames [`Meter::data`] accumulated. `answer` is the
    /// reading that came with the response, used if it is a reading of these bytes. Returns the
    /// edited body. The meter then has nothing more to emit; it still finishes through
    /// [`Meter::finish`] or its drop.
    pub(crate) fn whole(
        &mut self,
        body: Option<Bytes>,
        answer: Option<&mut AnswerReading>,
    ) -> Bytes {
        let Some(core) = self.core.as_deref_mut() else {
            return body.unwrap_or_default();
        };
        let JsonState::Accumulating(buf) = &mut core.json else {
            return body.unwrap_or_default();
        };
        let body = match body {
            Some(body) => {
                debug_assert!(core.mode == Mode::Json && buf.is_empty());
                body
            }
            None => std::mem::take(buf).freeze(),
        };
        if core.obs.first_data.is_none() {
            core.obs.first_data = Some(core.ctx.cfg.clock.now());
        }
        core.json = JsonState::Edited;
        edit::edit_body(&core.ctx, &mut core.obs, body, answer)
    }

    /// Ends the body: returns the bytes still to emit (the edited JSON body, an unfinished last
    /// SSE event) and finishes the meter.
    pub(crate) fn finish(&mut self, end: End) -> Bytes {
        let Some(mut core) = self.core.take() else {
            return Bytes::new();
        };
        let out = if end == End::Cancelled {
            if let JsonState::Accumulating(b) = &core.json {
                core.obs.content_bytes += b.len() as u64;
            }
            Bytes::new()
        } else {
            core.flush()
        };
        settle::settle(&mut core.ctx, &mut core.obs, end);
        out
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        // Never panics: finishing only does arithmetic, a mutex-guarded ledger update and sinks.
        let _ = self.finish(End::Cancelled);
    }
}

impl Core {
    /// A frame of a body that is not an event stream: its time noted, then accumulated (JSON) or
    /// passed on.
    #[inline(never)]
    fn other_data(&mut self, data: Bytes) -> Bytes {
        if self.obs.first_data.is_none() && !data.is_empty() {
            self.obs.first_data = Some(self.ctx.cfg.clock.now());
        }
        match self.mode {
            Mode::Json => self.json_data(data),
            Mode::Pass | Mode::Sse => data,
        }
    }

    /// A frame of a non-streamed body: accumulated up to the limit, then passed through.
    #[inline]
    fn json_data(&mut self, data: Bytes) -> Bytes {
        let JsonState::Accumulating(buf) = &mut self.json else {
            self.obs.content_bytes += data.len() as u64;
            return data;
        };
        if buf.len() + data.len() <= self.ctx.cfg.json_limit {
            buf.extend_from_slice(&data);
            return Bytes::new();
        }
        // Too big to edit: let it through untouched from here on.
        self.obs.content_bytes += (buf.len() + data.len()) as u64;
        let mut all = std::mem::take(buf);
        all.extend_from_slice(&data);
        self.json = JsonState::Overflow;
        all.freeze()
    }

    /// What is left to emit at the end of the body.
    fn flush(&mut self) -> Bytes {
        match self.mode {
            Mode::Pass => Bytes::new(),
            Mode::Sse => match self.sse.as_deref_mut() {
                Some(s) => {
                    let mut h = Handler::new(&self.ctx, &mut self.obs, &mut s.edits);
                    s.scanner.finish(&mut h)
                }
                None => Bytes::new(),
            },
            Mode::Json => match &mut self.json {
                JsonState::Accumulating(buf) => {
                    let body = std::mem::take(buf).freeze();
                    // Accumulated: the reading of one frame, if any, is not a reading of these
                    // bytes.
                    edit::edit_body(&self.ctx, &mut self.obs, body, None)
                }
                JsonState::Overflow | JsonState::Edited => Bytes::new(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    /// The meter's one allocation stays on glibc's per-thread cache (blocks up to 1,032 B): a
    /// bigger one takes malloc's slow path, ~1,000 instructions per request.
    #[test]
    fn the_core_fits_the_allocator_cache() {
        let core = std::mem::size_of::<super::Core>();
        let ctx = std::mem::size_of::<super::Ctx>();
        assert!(core <= 1032, "Core {core} B (its context {ctx} B)");
    }
}
