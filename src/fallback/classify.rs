//! Judging one attempt: an upstream status and body become an answer or an [`AttemptError`].

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::policy::AttemptError;
use super::upstream::safe_message;
use crate::catalog::Secret;
use crate::error::ErrorType;
use crate::route::{skim, AnswerReader, AnswerReading};
use crate::stats::{Attempt, FailureKind, Outcome};
use crate::wire::Wire;

/// What a buffered upstream answer turned out to be.
pub(crate) enum Verdict {
    /// A valid answer, on the caller's wire (the reader's reading of it, when there is one, is in
    /// the caller's slot).
    Answer(Bytes),
    /// A failed attempt, with the provider's message when it is safe to show.
    Failed {
        error: AttemptError,
        message: Option<String>,
    },
}

/// Judges a buffered body: `status` is the upstream status, `broken` says the body failed or
/// went over its cap while being read. A `2xx` answer is judged by `reader`'s reading when it
/// takes the answer and finds no error in it (an error object is judged here, by its code); the
/// reading is left in `reading` (`None` on entry) for a valid answer, which it is then of (`None`
/// otherwise).
pub(crate) fn buffered(
    status: StatusCode,
    bytes: Bytes,
    broken: bool,
    (wire, reader, reading): (Wire, Option<AnswerReader>, &mut Option<AnswerReading>),
    secret: Option<&Secret>,
) -> Verdict {
    let judged = match (status.is_success(), broken) {
        (false, _) => Judged::Error(status.as_u16()),
        (true, true) => Judged::Invalid,
        (true, false) => match reader.and_then(|r| (r.0)(&bytes, reading)) {
            Some(read) if !read.error => Judged::Answer {
                message: read.message,
            },
            _ => {
                *reading = None;
                judge(&bytes)
            }
        },
    };
    let invalid = Verdict::Failed {
        error: AttemptError::InvalidResponse,
        message: None,
    };
    match judged {
        Judged::Invalid => invalid,
        // An error status, or a `2xx` whose body is an error (some providers send that).
        Judged::Error(status) => Verdict::Failed {
            error: AttemptError::Status(status),
            message: if broken {
                None
            } else {
                safe_message(&bytes, secret)
            },
        },
        Judged::Answer { message } => match wire.decode_answer(bytes, message, unix_now()) {
            Some(answer) => Verdict::Answer(answer),
            None => {
                *reading = None;
                invalid
            }
        },
    }
}

/// Seconds since the Unix epoch (the `created` of translated Anthropic answers).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What a non-streamed `2xx` body is.
#[derive(Debug, PartialEq, Eq)]
enum Judged {
    /// Empty, not JSON, or not an object.
    Invalid,
    /// An error object and no `choices`: the status in its `code` (4xx/5xx), else 502.
    Error(u16),
    /// Anything else; `message` when its `type` is `"message"` (the Anthropic wire's answer).
    Answer { message: bool },
}

/// Judges a non-streamed `2xx` body by the skimmer: `None` when the skimmer leaves the body to
/// serde (see [`skim`]) or when it is an error object, whose code serde reads.
fn judge_skimmed(b: &[u8]) -> Option<Judged> {
    // The skimmer checks UTF-8 too (see `skim`).
    let start = skim::ws(b, 0);
    if b.get(start) != Some(&b'{') {
        return None;
    }
    let (mut seen, mut error, mut choices, mut kind) = (0u8, false, false, None);
    let end = skim::members(b, start, 0, |key, at| {
        let end = skim::value(b, at, 1)?;
        let k = match key {
            b"error" => 0,
            b"choices" => 1,
            b"type" => 2,
            _ => return Some(end),
        };
        if seen & (1 << k) != 0 {
            return None;
        }
        seen |= 1 << k;
        // As serde reads an `Option`: `null` is absent.
        let v = Some(&b[at..end]).filter(|v| *v != b"null");
        match k {
            0 => error = v.is_some(),
            1 => choices = v.is_some(),
            _ => kind = v,
        }
        Some(end)
    })?;
    if skim::ws(b, end) != b.len() || (error && !choices) {
        return None;
    }
    Some(Judged::Answer {
        message: kind == Some(br#""message""#),
    })
}

/// Judges a non-streamed `2xx` body in one pass that skips everything but `error` (by the
/// skimmer when it can, else by serde).
fn judge(b: &[u8]) -> Judged {
    judge_skimmed(b).unwrap_or_else(|| judge_serde(b))
}

/// [`judge`] by serde, for what the skimmer leaves.
fn judge_serde(b: &[u8]) -> Judged {
    #[derive(serde::Deserialize)]
    struct Shape<'a> {
        #[serde(borrow, default)]
        error: Option<&'a serde_json::value::RawValue>,
        #[serde(default)]
        choices: Option<serde::de::IgnoredAny>,
        #[serde(borrow, default, rename = "type")]
        kind: Option<&'a serde_json::value::RawValue>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorCode {
        #[serde(default)]
        code: Option<Value>,
    }
    let Ok(shape) = serde_json::from_slice::<Shape<'_>>(b) else {
        return Judged::Invalid;
    };
    match shape.error {
        Some(e) if shape.choices.is_none() && e.get() != "null" => {
            let code = serde_json::from_str::<ErrorCode>(e.get())
                .ok()
                .and_then(|e| e.code)
                .and_then(|c| c.as_u64())
                .and_then(|c| u16::try_from(c).ok())
                .filter(|c| (400..600).contains(c));
            Judged::Error(code.unwrap_or(502))
        }
        _ => Judged::Answer {
            message: shape.kind.is_some_and(|k| k.get() == r#""message""#),
        },
    }
}

/// The error type a failed attempt maps to in its record.
pub(crate) fn error_type_of(e: AttemptError) -> ErrorType {
    match e {
        AttemptError::Status(429) => ErrorType::RateLimitExceeded,
        AttemptError::Status(401) => ErrorType::Authentication,
        AttemptError::Status(403) => ErrorType::PermissionDenied,
        AttemptError::Status(408) => ErrorType::Timeout,
        AttemptError::Status(503 | 529) => ErrorType::ProviderOverloaded,
        AttemptError::Status(504 | 524) => ErrorType::Timeout,
        AttemptError::Status(500..=599) => ErrorType::ProviderUnavailable,
        AttemptError::Status(_) => ErrorType::InvalidRequest,
        AttemptError::Timeout | AttemptError::FirstTokenTimeout => ErrorType::Timeout,
        _ => ErrorType::ProviderUnavailable,
    }
}

/// Whether the attempt reached the provider (skipped candidates did not).
pub(crate) fn was_sent(e: AttemptError) -> bool {
    !matches!(
        e,
        AttemptError::NotCallable | AttemptError::UnsupportedWireFormat
    )
}

/// The stats sample of a failed attempt (`head`: the response head, when one arrived).
pub(crate) fn stats_attempt(e: AttemptError, head: Option<&HeaderMap>) -> Attempt {
    match (e, head) {
        // With or without a head (an error status inside a `2xx` body has none): a `4xx` is the
        // request's fault, never the provider's health.
        (AttemptError::Status(_), h) => {
            let status =
                StatusCode::from_u16(e.status().unwrap_or(502)).unwrap_or(StatusCode::BAD_GATEWAY);
            Attempt::from_response(status, h.unwrap_or(&HeaderMap::new()))
        }
        (AttemptError::Connect, _) => Attempt::new(Outcome::Failure(FailureKind::Connect)),
        (AttemptError::Timeout | AttemptError::FirstTokenTimeout, _) => {
            Attempt::new(Outcome::Failure(FailureKind::Timeout))
        }
        _ => Attempt::new(Outcome::Failure(FailureKind::InvalidResponse)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The skimmer judges what serde judges, or leaves the body to it.
    #[test]
    fn skimmed_judgement_is_serde() {
        let bodies: [&[u8]; 9] = [
            br#"{"id":"x","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":1}}"#,
            br#" {"type":"message","content":[{"type":"text","text":"hi"}]} "#,
            br#"{"type": "message ", "error": null}"#,
            br#"{"error":{"code":429},"choices":[]}"#,
            br#"{"error":{"code":429}}"#,
            br#"{"choices":null,"type":null}"#,
            br#"{"type":"a","type":"b"}"#,
            br#"{"choices":[1,]}"#,
            b"[]",
        ];
        for b in bodies {
            if let Some(skimmed) = judge_skimmed(b) {
                assert_eq!(skimmed, judge_serde(b), "{}", String::from_utf8_lossy(b));
            }
        }
        assert!(judge_skimmed(bodies[0]).is_some() && judge_skimmed(bodies[1]).is_some());
        assert!(judge_skimmed(bodies[4]).is_none() && judge_skimmed(bodies[6]).is_none());
    }

    /// Item 7 of issue 17: a provider's 400 is never a health failure, whether the status came in
    /// the head or in an error object of a `2xx` body (no head).
    #[test]
    fn item7_provider_400_is_not_a_health_failure() {
        for head in [None, Some(&HeaderMap::new())] {
            let a = stats_attempt(AttemptError::Status(400), head);
            assert!(!a.outcome.is_counted(), "{head:?}: {a:?}");
            let a = stats_attempt(AttemptError::Status(500), head);
            assert!(a.outcome.is_counted());
        }
    }
}
