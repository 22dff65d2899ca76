//! What a request asks of the cache: the key, the TTL, and the request headers that control it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::header::AsHeaderName;
use http::{HeaderMap, HeaderName};
use sha2::{Digest, Sha256};

/// `X-OpenRouter-Cache: true|false` — turns the cache on (or off, over an operator rule) for one
/// request.
pub const CACHE: &str = "x-openrouter-cache";
/// `X-OpenRouter-Cache-TTL: <seconds>` — how long the answer of a MISS stays cached.
pub const CACHE_TTL: &str = "x-openrouter-cache-ttl";
/// `X-OpenRouter-Cache-Clear: true` — drop the cached answer and store a fresh one.
pub const CACHE_CLEAR: &str = "x-openrouter-cache-clear";
/// `X-OpenRouter-Cache-Status: HIT|MISS` (response).
pub const CACHE_STATUS: &str = "x-openrouter-cache-status";
/// `X-OpenRouter-Cache-Age: <seconds>` — how old a HIT's answer is (response).
pub const CACHE_AGE: &str = "x-openrouter-cache-age";
/// `X-OpenRouter-Cache-Source-Id: <generation id>` — the generation a HIT replays (response).
pub const CACHE_SOURCE_ID: &str = "x-openrouter-cache-source-id";

/// The request headers above as parsed names: a lookup by a `&str` parses the name first.
pub(crate) const CACHE_NAME: HeaderName = HeaderName::from_static(CACHE);
pub(crate) const CACHE_TTL_NAME: HeaderName = HeaderName::from_static(CACHE_TTL);
pub(crate) const CACHE_CLEAR_NAME: HeaderName = HeaderName::from_static(CACHE_CLEAR);

/// The default TTL: 300 seconds.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// The shortest TTL: 1 second.
pub const MIN_TTL_SECS: u64 = 1;
/// The longest TTL: 86,400 seconds (one day).
pub const MAX_TTL_SECS: u64 = 86_400;

/// Identifies one cached answer: the caller's key, and a SHA-256 over the caller's key, the
/// requested model, the endpoint (request path), the stream mode and the whitespace-normalised
/// body.
///
/// The caller's key is kept beside the digest (and compared too), so two callers never share an
/// entry even in theory, and a remote store can namespace entries by caller.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    caller: Arc<str>,
    digest: [u8; 32],
}

impl CacheKey {
    /// The key of a request of `caller` for `model` at `endpoint` (the request path), streamed or
    /// not, with `body`.
    pub fn new(caller: &str, model: &str, endpoint: &str, stream: bool, body: &[u8]) -> Self {
        let mut h = Sha256::new();
        for part in [caller.as_bytes(), model.as_bytes(), endpoint.as_bytes()] {
            // Length-prefixed, so no two tuples hash the same input.
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.update([u8::from(stream)]);
        hash_normalised(&mut h, body);
        CacheKey {
            caller: Arc::from(caller),
            digest: h.finalize().into(),
        }
    }

    /// The caller's key.
    pub fn caller(&self) -> &str {
        &self.caller
    }

    /// The SHA-256 digest (which covers the caller's key too).
    pub fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// The digest as 64 lowercase hex digits (e.g. for a remote store's key names).
    pub fn hex(&self) -> String {
        use std::fmt::Write as _;
        self.digest
            .iter()
            .fold(String::with_capacity(64), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            })
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheKey")
            .field("caller", &self.caller)
            .field("digest", &self.hex())
            .finish()
    }
}

/// Feeds `body` to `h` without the JSON whitespace outside strings (spaces, tabs, line breaks),
/// without allocating: member order and everything inside strings still count.
pub(crate) fn hash_normalised(h: &mut Sha256, body: &[u8]) {
    let mut start = 0;
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'"' => i = string_end(body, i + 1),
            b' ' | b'\t' | b'\n' | b'\r' => {
                if start < i {
                    h.update(&body[start..i]);
                }
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < body.len() {
        h.update(&body[start..]);
    }
}

/// The index after the closing quote of the string whose content starts at `i` (or the end of
/// `body`): skips to the next quote or backslash with `memchr2`, so long strings cost little.
fn string_end(body: &[u8], mut i: usize) -> usize {
    while let Some(at) = memchr::memchr2(b'"', b'\\', &body[i.min(body.len())..]) {
        let at = i + at;
        if body[at] == b'"' {
            return at + 1;
        }
        // A backslash escapes the next byte, whatever it is.
        i = at + 2;
    }
    body.len()
}

/// Parses `X-OpenRouter-Cache-TTL` as OpenRouter does
/// (<https://openrouter.ai/docs/guides/features/response-caching>): the leading digits are read
/// (so `"12abc"` is 12 and `"3.9"` is 3), the result is clamped to 1–86,400 seconds, and a value
/// without leading digits is ignored (`None`: the default applies).
pub fn parse_ttl(value: &[u8]) -> Option<Duration> {
    let value = value.trim_ascii();
    let digits = value.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let secs = value[..digits].iter().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    });
    Some(Duration::from_secs(secs.clamp(MIN_TTL_SECS, MAX_TTL_SECS)))
}

/// A boolean request header: `Some(true)` for `true`, `Some(false)` for `false` (any case), `None`
/// when absent or anything else.
pub(crate) fn flag(headers: &HeaderMap, name: impl AsHeaderName) -> Option<bool> {
    let v = headers.get(name)?.as_bytes().trim_ascii();
    if v.eq_ignore_ascii_case(b"true") {
        Some(true)
    } else if v.eq_ignore_ascii_case(b"false") {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ttl(s: &str) -> Option<u64> {
        parse_ttl(s.as_bytes()).map(|d| d.as_secs())
    }

    #[test]
    fn ttl_parses_like_openrouter() {
        assert_eq!(ttl("300"), Some(300));
        assert_eq!(ttl("0"), Some(1), "clamped up to 1");
        assert_eq!(ttl("1"), Some(1));
        assert_eq!(ttl("86400"), Some(86_400));
        assert_eq!(ttl("86401"), Some(86_400), "clamped down");
        assert_eq!(ttl("12abc"), Some(12), "leading digits");
        assert_eq!(ttl("3.9"), Some(3), "decimals truncated");
        assert_eq!(ttl(" 42 "), Some(42));
        assert_eq!(ttl("99999999999999999999999"), Some(86_400), "no overflow");
        assert_eq!(ttl("abc"), None, "ignored");
        assert_eq!(ttl("-5"), None);
        assert_eq!(ttl(""), None);
        assert_eq!(ttl(".5"), None);
    }

    #[test]
    fn whitespace_outside_strings_does_not_change_the_key() {
        let a = CacheKey::new(
            "k",
            "m",
            "/v1/chat/completions",
            false,
            br#"{"a":1,"b":"x y"}"#,
        );
        let b = CacheKey::new(
            "k",
            "m",
            "/v1/chat/completions",
            false,
            b"{ \"a\" : 1,\n\t\"b\":\"x y\" }\r\n",
        );
        assert_eq!(a, b);
        let inside = CacheKey::new(
            "k",
            "m",
            "/v1/chat/completions",
            false,
            br#"{"a":1,"b":"xy"}"#,
        );
        assert_ne!(a, inside, "whitespace inside strings counts");
        let escaped = CacheKey::new(
            "k",
            "m",
            "/v1/chat/completions",
            false,
            br#"{"a":1,"b":"x\" y"}"#,
        );
        let escaped2 = CacheKey::new(
            "k",
            "m",
            "/v1/chat/completions",
            false,
            br#"{"a":1,"b":"x\"y"}"#,
        );
        assert_ne!(
            escaped, escaped2,
            "an escaped quote does not end the string"
        );
        let order = CacheKey::new(
            "k",
            "m",
            "/v1/chat/completions",
            false,
            br#"{"b":"x y","a":1}"#,
        );
        assert_ne!(a, order, "member order counts");
    }

    #[test]
    fn every_part_of_the_key_counts() {
        let base = CacheKey::new("k", "m", "/e", false, b"{}");
        assert_ne!(base, CacheKey::new("k2", "m", "/e", false, b"{}"));
        assert_ne!(base, CacheKey::new("k", "m2", "/e", false, b"{}"));
        assert_ne!(base, CacheKey::new("k", "m", "/e2", false, b"{}"));
        assert_ne!(base, CacheKey::new("k", "m", "/e", true, b"{}"));
        // Length prefixes: moving a byte from one part to the next changes the key.
        assert_ne!(
            CacheKey::new("ab", "c", "/e", false, b"{}"),
            CacheKey::new("a", "bc", "/e", false, b"{}")
        );
        assert_eq!(base.hex().len(), 64);
    }

    /// The normalised bytes, one byte at a time: what `hash_normalised` must hash.
    fn naive(body: &[u8]) -> Vec<u8> {
        let (mut out, mut in_string, mut escaped) = (Vec::new(), false, false);
        for &b in body {
            if in_string {
                in_string = escaped || b != b'"';
                escaped = !escaped && b == b'\\';
            } else if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                continue;
            } else {
                in_string = b == b'"';
            }
            out.push(b);
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn normalising_skips_exactly_the_whitespace_outside_strings(
            body in proptest::collection::vec(proptest::sample::select(
                b" \t\n\r\"\\ab{}:,1".to_vec()), 0..64)
        ) {
            let mut fast = Sha256::new();
            hash_normalised(&mut fast, &body);
            let mut slow = Sha256::new();
            slow.update(naive(&body));
            proptest::prop_assert_eq!(fast.finalize(), slow.finalize());
        }
    }

    #[test]
    fn flags() {
        let mut h = HeaderMap::new();
        assert_eq!(flag(&h, CACHE), None);
        h.insert(CACHE, "TRUE".parse().unwrap());
        assert_eq!(flag(&h, CACHE), Some(true));
        h.insert(CACHE, "false".parse().unwrap());
        assert_eq!(flag(&h, CACHE), Some(false));
        h.insert(CACHE, "yes".parse().unwrap());
        assert_eq!(flag(&h, CACHE), None);
    }
}
