//! Byte scanners over SSE event payloads: `memchr` / `memmem` searches that find the few members
//! the meter cares about (`"usage"`, `"error"`, `"finish_reason"`, `"content"`) without parsing
//! JSON. Each answers one question about one event; none keeps state beyond a caller's offset hint.
//!
//! Imports nothing from the rest of `usage_meter`.

use std::sync::LazyLock;

use memchr::memmem::Finder;

static USAGE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"usage\""));
static ERROR: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"error\""));
static FINISH: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"finish_reason\":"));
static OPEN_OBJECT: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\":{"));
static CONTENT: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"content\":"));
static TEXT: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"text\":"));
static SPACED_COLON: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\": "));
static ID_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"id\""));
static MODEL_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"model\""));
static PROVIDER_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"provider\""));
static TIER_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"service_tier\""));

/// `b` without its leading ASCII whitespace.
pub(crate) fn trim_start(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

/// The searcher of the quoted key (`"id"`) of a member that a stream's rules rewrite (`id`,
/// `model`, `provider`, `service_tier`), built once per process; `None` for another key.
pub(crate) fn member_key(key: &str) -> Option<&'static Finder<'static>> {
    Some(match key {
        "id" => &*ID_KEY,
        "model" => &*MODEL_KEY,
        "provider" => &*PROVIDER_KEY,
        "service_tier" => &*TIER_KEY,
        _ => return None,
    })
}

/// True if `d` has a space after a member's key and colon (`": `): its JSON is not compact.
pub(crate) fn spaced(d: &[u8]) -> bool {
    SPACED_COLON.find(d).is_some()
}

/// True if `d` has a `"usage"` or `"error"` member with a value other than `null`.
///
/// `compact` says that the stream's JSON has no space after `:` (learned from its first event):
/// then one search for `":{` answers it (see [`usage_or_error_compact`]).
pub(crate) fn usage_or_error(d: &[u8], compact: bool) -> bool {
    if compact {
        usage_or_error_compact(d)
    } else {
        non_null(&USAGE, d) || non_null(&ERROR, d)
    }
}

/// True if `d` has the member `finder` looks for (`"usage"`) with a value other than `null`.
fn non_null(finder: &Finder<'_>, d: &[u8]) -> bool {
    let mut from = 0;
    while let Some(i) = finder.find(&d[from..]) {
        let at = from + i + finder.needle().len();
        let rest = trim_start(&d[at..]);
        if let Some(v) = rest.strip_prefix(b":") {
            if !trim_start(v).starts_with(b"null") {
                return true;
            }
        }
        from = at;
    }
    false
}

/// The string value after the first `"finish_reason":` of `d`, if it is a string.
fn finish_reason(d: &[u8]) -> Option<&[u8]> {
    let i = FINISH.find(d)?;
    string_at(&d[i + FINISH.needle().len()..])
}

/// The string that `rest` starts with (after whitespace), without its quotes.
fn string_at(rest: &[u8]) -> Option<&[u8]> {
    let rest = trim_start(rest).strip_prefix(b"\"")?;
    let end = memchr::memchr(b'"', rest)?;
    Some(&rest[..end])
}

/// The finish reason of an event whose content string ends at `after`: the first one after the
/// content (where OpenAI chunks put it), else the first one before it.
///
/// Same result as `finish_reason(&d[after..]).or_else(|| finish_reason(&d[..after]))`, in one
/// search of the whole event in the usual case: when the first occurrence in `d` is past `after`,
/// it is also the first one of `d[after..]` and `d[..after]` has none.
pub(crate) fn finish_reason_around(d: &[u8], after: usize) -> Option<&[u8]> {
    let first = FINISH.find(d)?;
    if first >= after {
        return string_at(&d[first + FINISH.needle().len()..]);
    }
    finish_reason(&d[after..]).or_else(|| finish_reason(&d[..after]))
}

/// True if compact JSON `d` has a `"usage":{` or `"error":{` member. An ordinary chunk has one
/// `":{` (`"delta":{`), so this is about one search of the event.
fn usage_or_error_compact(d: &[u8]) -> bool {
    OPEN_OBJECT.find_iter(d).any(|i| {
        // `d[..=i]` ends with the member's closing quote.
        let key = &d[..=i];
        key.ends_with(b"\"usage\"") || key.ends_with(b"\"error\"")
    })
}

/// Bytes of the string value after `"content":` (or `"text":` in a legacy completions chunk, when
/// `text`; escapes counted as written), and the offset where the scan stopped.
pub(crate) fn content_len(d: &[u8], hint: &mut usize, text: bool) -> (u64, usize) {
    let finder: &Finder<'static> = if text { &TEXT } else { &CONTENT };
    let needle = finder.needle();
    let at_hint = hint
        .checked_add(needle.len())
        .and_then(|end| d.get(*hint..end))
        == Some(needle);
    let i = if at_hint {
        *hint
    } else {
        let Some(i) = finder.find(d) else {
            return (0, 0);
        };
        *hint = i;
        i
    };
    let start = i + needle.len();
    let rest = trim_start(&d[start..]);
    let base = d.len() - rest.len() + 1;
    let Some(s) = rest.strip_prefix(b"\"") else {
        return (0, start);
    };
    let mut at = 0;
    while let Some(j) = memchr::memchr2(b'"', b'\\', &s[at..]) {
        if s[at + j] == b'\\' {
            at += j + 2;
            if at >= s.len() {
                return (s.len() as u64, d.len());
            }
        } else {
            return ((at + j) as u64, base + at + j);
        }
    }
    (s.len() as u64, d.len())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Events made of the pieces the scanners look for, in any order and in any number.
    fn event() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(&b"\"finish_reason\":"[..]),
            Just(&b"\"finish_reason\": \"stop\""[..]),
            Just(&b"\"finish_reason\":null"[..]),
            Just(&b"\"usage\":{"[..]),
            Just(&b"\"error\":{"[..]),
            Just(&b"\"usage\":"[..]),
            Just(&b"\":{"[..]),
            Just(&b"\"content\":\"a\\\"b\""[..]),
            Just(&b"{\"delta\":{"[..]),
            Just(&b"\""[..]),
            Just(&b"usage"[..]),
            Just(&b"}]}"[..]),
            Just(&b","[..]),
            Just(&b" "[..]),
        ];
        proptest::collection::vec(piece, 0..12).prop_map(|p| p.concat())
    }

    /// The compact check as first written: every `{`, looking back for the member's key.
    fn usage_or_error_compact_slow(d: &[u8]) -> bool {
        memchr::memchr_iter(b'{', d).any(|i| {
            let before = &d[..i];
            before.ends_with(b"\"usage\":") || before.ends_with(b"\"error\":")
        })
    }

    proptest! {
        #[test]
        fn finish_reason_around_is_the_two_searches(d in event(), cut in any::<prop::sample::Index>()) {
            let after = cut.index(d.len() + 1);
            let slow = finish_reason(&d[after..]).or_else(|| finish_reason(&d[..after]));
            prop_assert_eq!(finish_reason_around(&d, after), slow);
        }

        #[test]
        fn compact_check_is_the_brace_scan(d in event()) {
            prop_assert_eq!(usage_or_error_compact(&d), usage_or_error_compact_slow(&d));
        }
    }

    #[test]
    fn text_or_content() {
        let d = br#"{"choices":[{"index":0,"text":"hey","finish_reason":null}]}"#;
        let mut hint = 0;
        assert_eq!(content_len(d, &mut hint, true).0, 3);
        let mut hint = 0;
        assert_eq!(content_len(d, &mut hint, false).0, 0);
    }
}
