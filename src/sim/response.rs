use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use super::body::{SimBody, StreamEnd, StreamState};
use super::error::SimError;
use super::profile::{SimOutcome, SimProfile};
use super::request::ChatRequest;
use super::rng::SimRng;
use super::stats::FlightGuard;
use super::tools::ToolCall;

/// The vocabulary of generated answers; one word is one completion token.
const WORDS: [&str; 32] = [
    "the",
    "model",
    "routes",
    "tokens",
    "through",
    "a",
    "simulated",
    "provider",
    "and",
    "every",
    "answer",
    "is",
    "deterministic",
    "for",
    "its",
    "seed",
    "latency",
    "follows",
    "profile",
    "while",
    "throughput",
    "paces",
    "stream",
    "of",
    "chunks",
    "until",
    "usage",
    "arrives",
    "at",
    "end",
    "gateway",
    "tower",
];

/// Appends completion token number `index` (a word, space-separated from the previous one).
pub(crate) fn push_token(out: &mut String, rng: &mut SimRng, index: u32) {
    if index > 0 {
        out.push(' ');
    }
    out.push_str(WORDS[rng.below(WORDS.len() as u64) as usize]);
}

/// When the response head may be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeadWait {
    Now,
    After(Duration),
    Never,
}

/// Everything decided about one request before answering it.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) outcome: SimOutcome,
    pub(crate) stream: bool,
    pub(crate) ttft: Duration,
    /// Nanoseconds per token, 0 when unbounded.
    pub(crate) per_token_nanos: f64,
    pub(crate) tokens_per_event: u32,
    pub(crate) keep_alive: Option<Duration>,
    pub(crate) completion_tokens: u32,
    pub(crate) finish: &'static str,
    pub(crate) prompt_tokens: u64,
    pub(crate) fail_at: u32,
    pub(crate) content_rng: SimRng,
    pub(crate) id: u64,
    pub(crate) created: u64,
    pub(crate) model_json: String,
    /// Answer in the Anthropic Messages wire (the request's path ended in `/messages`).
    pub(crate) anthropic: bool,
    /// Answer in the legacy completions shape (`text_completion`, `choices[].text`; the
    /// request's path ended in `/completions` but not `/chat/completions`).
    pub(crate) legacy: bool,
    /// Answer with this tool call instead of text (set by the service when the profile makes
    /// tool calls and the request offers tools).
    pub(crate) tool_call: Option<ToolCall>,
    retry_after: Duration,
    retry_after_ms: bool,
    timeout_delay: Duration,
}

impl Plan {
    /// Draws the request's random choices. The draws happen in a fixed order whatever the outcome
    /// or the `stream` flag, so streamed and non-streamed requests agree on content and usage.
    pub(crate) fn new(
        profile: &SimProfile,
        mut rng: SimRng,
        req: &ChatRequest<'_>,
        scripted: Option<SimOutcome>,
        created: u64,
    ) -> Self {
        let u = rng.next_f64();
        let z = rng.standard_normal();
        let len = profile.output.pick(&mut rng);
        let content_rng = SimRng::new(rng.next_u64());
        let id = rng.next_u64();

        let outcome = scripted.unwrap_or_else(|| profile.outcome_for(u));
        let (completion_tokens, finish) = match req.cap() {
            Some(cap) if cap < u64::from(len) => (cap as u32, "length"),
            _ => (len, "stop"),
        };
        let per_token_nanos = profile.throughput().map_or(0.0, |t| 1e9 / t);
        let tokens_per_event = if per_token_nanos > 0.0 {
            let k = (profile.min_event_interval.as_nanos() as f64 / per_token_nanos).ceil();
            (k as u32).clamp(1, 4096)
        } else {
            8
        };
        let model = req.model.as_deref().unwrap_or_default();
        let model_json = serde_json::to_string(model).unwrap_or_else(|_| String::from("\"\""));
        Plan {
            outcome,
            stream: req.stream.unwrap_or(false),
            ttft: profile.ttft.at(z),
            per_token_nanos,
            tokens_per_event,
            keep_alive: profile.keep_alive,
            completion_tokens,
            finish,
            prompt_tokens: req.prompt_tokens(),
            fail_at: profile
                .fail_after_tokens
                .unwrap_or(completion_tokens / 2)
                .min(completion_tokens),
            content_rng,
            id,
            created,
            model_json,
            anthropic: false,
            legacy: false,
            tool_call: None,
            retry_after: profile.retry_after,
            retry_after_ms: profile.retry_after_ms,
            timeout_delay: profile.timeout_delay,
        }
    }

    /// Offset of token `index` from the first-token time.
    pub(crate) fn token_offset(per_token_nanos: f64, index: u32) -> Duration {
        Duration::from_nanos((f64::from(index) * per_token_nanos) as u64)
    }

    /// Time to generate the whole answer.
    fn generation_time(&self) -> Duration {
        let last = self.completion_tokens.saturating_sub(1);
        self.ttft
            .saturating_add(Self::token_offset(self.per_token_nanos, last))
    }

    pub(crate) fn head_wait(&self) -> HeadWait {
        let wait = match self.outcome {
            SimOutcome::Status(_) | SimOutcome::ConnectError => Duration::ZERO,
            SimOutcome::Stall => return HeadWait::Never,
            SimOutcome::Timeout if self.stream => self.timeout_delay,
            // A streamed tool call arrives whole at the first-token time.
            SimOutcome::Ok if self.stream && self.tool_call.is_some() => self.ttft,
            SimOutcome::Timeout => self.timeout_delay.saturating_add(self.generation_time()),
            _ if self.stream => Duration::ZERO,
            _ => self.generation_time(),
        };
        if wait.is_zero() {
            HeadWait::Now
        } else {
            HeadWait::After(wait)
        }
    }

    fn id_str(&self) -> String {
        if self.anthropic {
            format!("msg_{:016x}", self.id)
        } else {
            format!("chatcmpl-{:016x}", self.id)
        }
    }

    /// The Anthropic `stop_reason` for the finish reason.
    pub(crate) fn stop_reason(finish: &str) -> &'static str {
        if finish == "length" {
            "max_tokens"
        } else {
            "end_turn"
        }
    }

    /// The answer, once the head is due.
    pub(crate) fn respond(self, guard: FlightGuard) -> Result<Response<SimBody>, SimError> {
        match self.outcome {
            SimOutcome::ConnectError => {
                guard.complete();
                return Err(SimError::connect());
            }
            SimOutcome::Status(code) => {
                guard.complete();
                return Ok(self.status_response(code));
            }
            _ => {}
        }
        if self.stream {
            let end = match self.outcome {
                SimOutcome::MalformedJson => StreamEnd::Malformed,
                SimOutcome::Truncated => StreamEnd::Truncated,
                SimOutcome::MidStreamError => StreamEnd::MidStreamError,
                SimOutcome::BodyError => StreamEnd::BodyError,
                SimOutcome::StallBody => StreamEnd::Stall,
                _ => StreamEnd::Normal,
            };
            let prefix = if self.anthropic {
                self.message_start()
            } else {
                self.chunk_prefix()
            };
            let state = StreamState::new(&self, prefix, end);
            let mut res = Response::new(SimBody::stream(state, guard));
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            return Ok(res);
        }
        let body = match self.outcome {
            SimOutcome::MalformedJson if self.anthropic => {
                guard.complete();
                let text = format!(
                    "{{\"id\":\"{}\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[{{\"type\":\"text\",\"text\":\"",
                    self.id_str()
                );
                SimBody::full(Bytes::from(text))
            }
            SimOutcome::MalformedJson => {
                guard.complete();
                let text = format!(
                    "{{\"id\":\"{}\",\"object\":\"chat.completion\",\"choices\":[{{\"index\":0,\"message\":{{\"role\":\"assistant\",\"content\":\"",
                    self.id_str()
                );
                SimBody::full(Bytes::from(text))
            }
            SimOutcome::Truncated => {
                guard.complete();
                let full = self.completion_json(self.completion_tokens, None);
                let half = full.len() / 2;
                SimBody::full(full.slice(..half))
            }
            SimOutcome::MidStreamError if self.anthropic => {
                guard.complete();
                SimBody::full(Bytes::from_static(ANTHROPIC_MID_ERROR))
            }
            SimOutcome::MidStreamError => {
                guard.complete();
                SimBody::full(self.completion_json(self.fail_at, Some(502)))
            }
            SimOutcome::BodyError => SimBody::error(guard),
            SimOutcome::StallBody => SimBody::stall(guard),
            _ => {
                guard.complete();
                SimBody::full(self.completion_json(self.completion_tokens, None))
            }
        };
        let mut res = Response::new(body);
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Ok(res)
    }

    /// `{"id":…,"object":"chat.completion.chunk","created":…,"model":…,"choices":[`
    fn chunk_prefix(&self) -> String {
        let mut s = String::with_capacity(96 + self.model_json.len());
        let _ = write!(
            s,
            "data: {{\"id\":\"{}\",\"object\":\"{}\",\"created\":{},\"model\":{},\"choices\":[",
            self.id_str(),
            if self.legacy {
                "text_completion"
            } else {
                "chat.completion.chunk"
            },
            self.created,
            self.model_json
        );
        s
    }

    /// The first events of an Anthropic stream, as Anthropic sends them: `message_start` (with
    /// `usage.input_tokens`), `ping`, and `content_block_start` for the one text block.
    fn message_start(&self) -> String {
        format!(
            "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"id\":\"{}\",\"type\":\"message\",\"role\":\"assistant\",\"model\":{},\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{{\"input_tokens\":{},\"output_tokens\":1}}}}}}\n\nevent: ping\ndata: {{\"type\":\"ping\"}}\n\nevent: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{{\"type\":\"text\",\"text\":\"\"}}}}\n\n",
            self.id_str(),
            self.model_json,
            self.prompt_tokens
        )
    }

    /// A non-streamed Anthropic message with `tokens` tokens.
    fn message_json(&self, tokens: u32) -> Bytes {
        let mut s = String::with_capacity(256 + self.model_json.len() + tokens as usize * 8);
        let _ = write!(
            s,
            "{{\"id\":\"{}\",\"type\":\"message\",\"role\":\"assistant\",\"model\":{},\"content\":[{{\"type\":\"text\",\"text\":\"",
            self.id_str(),
            self.model_json
        );
        let mut rng = self.content_rng;
        for i in 0..tokens {
            push_token(&mut s, &mut rng, i);
        }
        let _ = write!(
            s,
            "\"}}],\"stop_reason\":\"{}\",\"stop_sequence\":null,\"usage\":{{\"input_tokens\":{},\"output_tokens\":{}}}}}",
            Self::stop_reason(self.finish),
            self.prompt_tokens,
            tokens
        );
        Bytes::from(s)
    }

    /// A non-streamed completion with `tokens` tokens; with `error`, a partial answer whose choice
    /// carries the error (OpenRouter's "error after partial output" shape).
    fn completion_json(&self, tokens: u32, error: Option<u16>) -> Bytes {
        if self.anthropic {
            return self.message_json(tokens);
        }
        let mut s = String::with_capacity(256 + self.model_json.len() + tokens as usize * 8);
        let (object, open) = if self.legacy {
            ("text_completion", "\"text\":\"")
        } else {
            (
                "chat.completion",
                "\"message\":{\"role\":\"assistant\",\"content\":\"",
            )
        };
        let _ = write!(
            s,
            "{{\"id\":\"{}\",\"object\":\"{object}\",\"created\":{},\"model\":{},\"system_fingerprint\":null,\"choices\":[{{\"index\":0,{open}",
            self.id_str(),
            self.created,
            self.model_json
        );
        let mut rng = self.content_rng;
        for i in 0..tokens {
            push_token(&mut s, &mut rng, i);
        }
        s.push_str(if self.legacy { "\"," } else { "\"}," });
        match error {
            None => {
                let _ = write!(s, "\"finish_reason\":\"{}\"}}],", self.finish);
            }
            Some(code) => {
                let _ = write!(
                    s,
                    "\"finish_reason\":\"error\",\"error\":{{\"code\":{code},\"message\":\"upstream provider error\"}}}}],"
                );
            }
        }
        let _ = write!(
            s,
            "\"usage\":{{\"prompt_tokens\":{},\"completion_tokens\":{},\"total_tokens\":{}}}}}",
            self.prompt_tokens,
            tokens,
            self.prompt_tokens + u64::from(tokens)
        );
        Bytes::from(s)
    }

    fn status_response(&self, code: u16) -> Response<SimBody> {
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut res = error_response(status, None, self.anthropic);
        if status == StatusCode::TOO_MANY_REQUESTS {
            let d = self.retry_after;
            let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            if self.retry_after_ms {
                let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
                res.headers_mut()
                    .insert("retry-after-ms", HeaderValue::from(ms));
            }
        }
        res
    }
}

/// The body of an Anthropic error that arrives with a 200 head (mid-stream failure).
pub(crate) const ANTHROPIC_MID_ERROR: &[u8] =
    b"{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"upstream provider error\"}}";

/// An error answer: OpenAI-style `{"error":{"message","type","param":null,"code"}}`, or with
/// `anthropic` the Messages wire's `{"type":"error","error":{"type","message"}}`.
pub(crate) fn error_response(
    status: StatusCode,
    message: Option<&str>,
    anthropic: bool,
) -> Response<SimBody> {
    let (ty, code, default_msg) = match status.as_u16() {
        400 => (
            "invalid_request_error",
            "invalid_request",
            "Invalid request",
        ),
        401 => (
            "authentication_error",
            "invalid_api_key",
            "Incorrect API key provided",
        ),
        403 => (
            "permission_error",
            "forbidden",
            "You are not allowed to use this model",
        ),
        404 => ("invalid_request_error", "not_found", "Not found"),
        429 => (
            "rate_limit_error",
            "rate_limit_exceeded",
            "Rate limit reached for requests",
        ),
        500 => (
            "server_error",
            "internal_error",
            "The server had an error while processing your request",
        ),
        502 => ("server_error", "bad_gateway", "Bad gateway"),
        503 => (
            "server_error",
            "service_unavailable",
            "The engine is currently overloaded, please try again later",
        ),
        529 => ("overloaded_error", "overloaded", "Overloaded"),
        s if s >= 500 => ("server_error", "server_error", "Upstream error"),
        _ => ("invalid_request_error", "error", "Request failed"),
    };
    let body = if anthropic {
        let ty = match status.as_u16() {
            400 | 404 | 413 => ty,
            429 => "rate_limit_error",
            529 | 503 => "overloaded_error",
            s if s >= 500 => "api_error",
            _ => ty,
        };
        serde_json::json!({
            "type": "error",
            "error": {"type": ty, "message": message.unwrap_or(default_msg)}
        })
    } else {
        serde_json::json!({
            "error": {
                "message": message.unwrap_or(default_msg),
                "type": ty,
                "param": null,
                "code": code,
            }
        })
    };
    let mut res = Response::new(SimBody::full(Bytes::from(body.to_string())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}
