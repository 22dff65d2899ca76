//! `middle-out` context compression ([`RequestView::compresses_for`]).

use std::ops::Range;

use serde_json::value::RawValue;

use super::RequestView;

/// Endpoints with at most this context (tokens) compress by default (`middle_out` not set).
pub const MIDDLE_OUT_DEFAULT_CONTEXT: u64 = 8192;

/// Whether compression is on for an endpoint with `context_length` (0: unknown) given the
/// request's `middle_out` choice.
pub(crate) fn compresses(middle_out: Option<bool>, context_length: u64) -> bool {
    middle_out.unwrap_or(context_length > 0 && context_length <= MIDDLE_OUT_DEFAULT_CONTEXT)
}

impl RequestView<'_> {
    /// Whether middle-out compression (<https://openrouter.ai/docs/guides/features/message-transforms>)
    /// is on for an endpoint with `context_length`.
    ///
    /// Asked for with `transforms: ["middle-out"]` or the `context-compression` plugin, turned off with
    /// `transforms: []`, and on by default for endpoints whose context is at most
    /// [`MIDDLE_OUT_DEFAULT_CONTEXT`] tokens. When it is on for an endpoint:
    ///
    /// - routing admits the endpoint when its context is at least half of the prompt estimate plus the
    ///   requested output (instead of all of it);
    /// - the body sent to it has messages removed from the middle of `messages` (never the first nor
    ///   the last) until the prompt estimate plus the requested output fits its context. Messages are
    ///   removed whole, by byte splice; when even the first and last alone do not fit, the body is sent
    ///   as it is and the provider's answer decides.
    ///
    /// Unlike OpenRouter, the gateway does not fall back to the largest-context model when no endpoint
    /// has half the context needed (those requests are a 404 `context_length` as without compression)
    /// and does not truncate inside a message.
    pub fn compresses_for(&self, context_length: u64) -> bool {
        compresses(self.middle_out, context_length)
    }
}

/// The spans (in `body`) of the messages to remove so that the request fits `context_length`:
/// `messages` is the byte range of the `messages` array in `body`, `needed` the prompt estimate
/// plus the requested output. A message is counted as a quarter of its bytes in tokens. Empty
/// when the request fits or nothing can be removed.
pub(crate) fn middle_out_cuts(
    body: &[u8],
    messages: Range<usize>,
    needed: u64,
    context_length: u64,
) -> Vec<Range<usize>> {
    if context_length == 0 || needed <= context_length {
        return Vec::new();
    }
    let Some(text) = body.get(messages).and_then(|b| std::str::from_utf8(b).ok()) else {
        return Vec::new();
    };
    let Ok(elements) = serde_json::from_str::<Vec<&RawValue>>(text) else {
        return Vec::new();
    };
    let n = elements.len();
    if n <= 2 {
        return Vec::new();
    }
    // Middle-out order: the middle message first, then alternately outwards.
    let mid = n / 2;
    let order = (0..n).map(|k| {
        if k % 2 == 0 {
            mid + k / 2
        } else {
            mid - k.div_ceil(2)
        }
    });
    let mut excess = needed - context_length;
    let mut cut: Vec<usize> = Vec::new();
    for i in order.filter(|&i| i > 0 && i < n - 1) {
        let tokens = (elements[i].get().len() as u64).div_ceil(4);
        cut.push(i);
        excess = excess.saturating_sub(tokens);
        if excess == 0 {
            break;
        }
    }
    if excess > 0 {
        return Vec::new();
    }
    cut.sort_unstable();
    cut.iter()
        .filter_map(|&i| super::span_of(body, elements[i].get()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_on_for_small_contexts_only() {
        assert!(compresses(None, 8192));
        assert!(!compresses(None, 8193));
        assert!(!compresses(None, 0));
        assert!(compresses(Some(true), 1_000_000));
        assert!(!compresses(Some(false), 4096));
    }

    #[test]
    fn cuts_from_the_middle_until_it_fits() {
        let msgs: Vec<String> = (0..5)
            .map(|i| {
                format!(
                    r#"{{"role":"user","content":"{}"}}"#,
                    i.to_string().repeat(370)
                )
            })
            .collect();
        let body = format!(r#"{{"messages":[{}]}}"#, msgs.join(","));
        let span = 12..body.len() - 1;
        // Each message is 400 bytes: 100 tokens. 500 needed, 300 available: two cuts, middle first.
        let cuts = middle_out_cuts(body.as_bytes(), span.clone(), 500, 300);
        let cut: Vec<&str> = cuts.iter().map(|r| &body[r.clone()]).collect();
        assert_eq!(cut, [msgs[1].as_str(), msgs[2].as_str()]);
        assert!(middle_out_cuts(body.as_bytes(), span.clone(), 300, 300).is_empty());
        // Even first + last do not fit: nothing is cut.
        assert!(middle_out_cuts(body.as_bytes(), span, 500, 100).is_empty());
    }
}
