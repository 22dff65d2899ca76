//! A strict JSON skimmer: where a value ends, found with `memchr` over strings and without
//! building anything, checking the grammar at least as strictly as serde_json does. It lets
//! UsageMeter split an answer into its members and ProviderFallback judge it cheaply: whatever
//! it rejects — bad grammar, but also what it does not bother with, such as escaped
//! keys, `\u` surrogates or nesting deeper than [`MAX_DEPTH`] — goes to the serde_json path, so
//! the result never differs from that path's.
//!
//! Works on bytes: a string with bytes above ASCII is checked to be UTF-8, and everything else
//! must be ASCII to pass the grammar, so whatever it accepts is UTF-8. Imports nothing.

/// Nesting depth beyond which the skimmer gives up (serde_json's own limit is 128).
pub(crate) const MAX_DEPTH: usize = 64;

/// The index of the first byte at or after `i` that is not JSON whitespace.
#[inline]
pub(crate) fn ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// `0x01` in every byte.
const ONES: u64 = 0x0101_0101_0101_0101;
/// `0x80` in every byte.
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of the bytes of `w` that end the plain run of a string (`"`, `\\`, a control
/// character). Exact for the lowest such byte (bytes above it may be marked too): a byte is zero,
/// or below `n`, exactly when `x - n…n & !x & 0x80…80` marks it, borrows aside.
#[inline(always)]
fn specials(w: u64) -> u64 {
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    zero(w ^ (ONES * u64::from(b'"')))
        | zero(w ^ (ONES * u64::from(b'\\')))
        | (w.wrapping_sub(ONES * 0x20) & !w & HIGHS)
}

/// The index of the first byte of `s` that ends its plain ASCII run: a `"`, a `\\` or a byte
/// above ASCII; `None` if there is none or a control character comes first.
#[inline]
fn stop(s: &[u8]) -> Option<usize> {
    // Short strings (keys, ids, finish reasons): eight bytes at a time, which costs less than
    // memchr's setup. The first byte that ends the run decides.
    const SHORT: usize = 32;
    let ends = |n: usize| (matches!(s[n], b'"' | b'\\') || s[n] >= 0x80).then_some(n);
    let mut at = 0;
    while at < SHORT {
        let Some(word) = s.get(at..at + 8) else {
            let n = s[at..]
                .iter()
                .position(|c| *c == b'"' || *c == b'\\' || !(0x20..0x80).contains(c))?;
            return ends(at + n);
        };
        let mut w = [0; 8];
        w.copy_from_slice(word);
        let w = u64::from_le_bytes(w);
        let m = specials(w) | (w & HIGHS);
        if m != 0 {
            return ends(at + (m.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let rest = &s[SHORT..];
    let k = memchr::memchr2(b'"', b'\\', rest)?;
    let (min, any) = min_and_bits(&rest[..k]);
    if any >= 0x80 {
        // Rare: the caller goes over the string again, UTF-8 aware.
        return rest.iter().position(|c| *c >= 0x80).map(|n| SHORT + n);
    }
    (min >= 0x20).then_some(SHORT + k)
}

/// How many bytes [`min_and_bits`] takes at a time.
const LANES: usize = 32;

/// The smallest byte of `s` (a control character?) and the bits of all of them (a byte above
/// ASCII?), in one pass: a reduction without early exit that the compiler vectorises, over
/// [`LANES`] bytes at a time. The last lanes overlap the ones before them rather than leave a
/// byte-by-byte tail (a byte seen twice changes neither result).
#[inline]
fn min_and_bits(s: &[u8]) -> (u8, u8) {
    let fold = |acc: (u8, u8), c: &[u8]| c.iter().fold(acc, |(m, o), c| (m.min(*c), o | *c));
    let Some(last) = s.len().checked_sub(LANES) else {
        return fold((u8::MAX, 0), s);
    };
    let (mut min, mut bits) = ([u8::MAX; LANES], [0u8; LANES]);
    let mut lanes = |chunk: &[u8]| {
        if let Ok(c) = <&[u8; LANES]>::try_from(chunk) {
            for k in 0..LANES {
                min[k] = min[k].min(c[k]);
                bits[k] |= c[k];
            }
        }
    };
    s.chunks_exact(LANES).for_each(&mut lanes);
    lanes(&s[last..]);
    let min = min.iter().fold(u8::MAX, |m, c| m.min(*c));
    (min, bits.iter().fold(0, |o, c| o | *c))
}

/// The string starting at `i` (`b[i]` is its opening quote): the index just past its closing
/// quote, and whether it has escapes. Most strings (keys, roles, ids) are short and plain: those
/// are found here, inline, in the first [`INLINE`] bytes; the rest go to [`any_string`].
#[inline]
pub(crate) fn string(b: &[u8], i: usize) -> Option<(usize, bool)> {
    let mut at = i + 1;
    while at <= i + INLINE {
        let Some(word) = b.get(at..at + 8) else {
            break;
        };
        let mut w = [0; 8];
        w.copy_from_slice(word);
        let w = u64::from_le_bytes(w);
        let m = specials(w) | (w & HIGHS);
        if m != 0 {
            let k = at + (m.trailing_zeros() / 8) as usize;
            if b[k] == b'"' {
                return Some((k + 1, false));
            }
            break;
        }
        at += 8;
    }
    // The bytes before `at` are plain ASCII: the rest of the string is read from there.
    any_string(b, i, at)
}

/// How far [`string`] looks inline for the closing quote.
const INLINE: usize = 16;

/// [`string`] for any string, read from `from` on (the bytes after the opening quote at `i` and
/// before `from` are plain ASCII): plain ASCII runs found by [`stop`], escapes checked, and a
/// string with a byte above ASCII left to [`wide_string`].
#[inline(never)]
fn any_string(b: &[u8], i: usize, from: usize) -> Option<(usize, bool)> {
    let mut j = from;
    let mut escaped = false;
    loop {
        let k = j + stop(b.get(j..)?)?;
        match b[k] {
            b'"' => return Some((k + 1, escaped)),
            b'\\' => {
                escaped = true;
                j = escape(b, k)?;
            }
            _ => return wide_string(b, i),
        }
    }
}

/// [`string`] for a string with bytes above ASCII: its runs are found by `memchr`, and its raw
/// text must be UTF-8 (escapes are ASCII, so checking it whole is checking its pieces).
#[cold]
fn wide_string(b: &[u8], i: usize) -> Option<(usize, bool)> {
    let mut j = i + 1;
    let mut escaped = false;
    loop {
        let s = b.get(j..)?;
        let n = memchr::memchr2(b'"', b'\\', s)?;
        if s[..n].iter().any(|c| *c < 0x20) {
            return None;
        }
        let k = j + n;
        if b[k] == b'"' {
            std::str::from_utf8(&b[i + 1..k]).ok()?;
            return Some((k + 1, escaped));
        }
        escaped = true;
        j = escape(b, k)?;
    }
}

/// The escape at `k` (`b[k]` is its backslash): the index after it. `\\u` surrogates (paired or
/// not) are left to serde_json.
#[inline]
fn escape(b: &[u8], k: usize) -> Option<usize> {
    Some(match *b.get(k + 1)? {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => k + 2,
        b'u' => {
            let hex = b.get(k + 2..k + 6)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            if matches!(hex[0], b'd' | b'D')
                && matches!(hex[1], b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F')
            {
                return None;
            }
            k + 6
        }
        _ => return None,
    })
}

/// `b[r]` as text. Everything the skimmer accepts is UTF-8 (its strings are checked, the rest must
/// be ASCII to pass its grammar), so this fails only for a range that is not one of its values.
#[inline]
pub(crate) fn text(b: &[u8], r: std::ops::Range<usize>) -> Option<&str> {
    std::str::from_utf8(b.get(r)?).ok()
}

/// The index after the digits starting at `i`.
#[inline]
fn digits(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    i
}

/// The end of the number starting at `i`, by JSON's grammar.
fn number(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + usize::from(b.get(i) == Some(&b'-'));
    j = match *b.get(j)? {
        b'0' => j + 1,
        b'1'..=b'9' => digits(b, j),
        _ => return None,
    };
    if b.get(j) == Some(&b'.') {
        let k = digits(b, j + 1);
        if k == j + 1 {
            return None;
        }
        j = k;
    }
    if matches!(b.get(j), Some(b'e' | b'E')) {
        j += 1;
        j += usize::from(matches!(b.get(j), Some(b'+' | b'-')));
        let k = digits(b, j);
        if k == j {
            return None;
        }
        j = k;
    }
    Some(j)
}

/// The end of `word` (`true`, `false`, `null`) at `i`.
#[inline]
fn literal(b: &[u8], i: usize, word: &[u8]) -> Option<usize> {
    b.get(i..)?.starts_with(word).then_some(i + word.len())
}

/// The end of the value starting at `i` (no leading whitespace), `depth` containers deep.
#[inline]
pub(crate) fn value(b: &[u8], i: usize, depth: usize) -> Option<usize> {
    // Strings, most of the values skimmed, without a call; the others out of line.
    if b.get(i) == Some(&b'"') {
        return string(b, i).map(|(end, _)| end);
    }
    other_value(b, i, depth)
}

/// [`value`] for a value that is not a string.
fn other_value(b: &[u8], i: usize, depth: usize) -> Option<usize> {
    match *b.get(i)? {
        b'{' => members(b, i, depth, |_, at| value(b, at, depth + 1)),
        b'[' => elements(b, i, depth, |at| value(b, at, depth + 1)),
        b't' => literal(b, i, b"true"),
        b'f' => literal(b, i, b"false"),
        b'n' => literal(b, i, b"null"),
        b'-' | b'0'..=b'9' => number(b, i),
        _ => None,
    }
}

/// The index after the byte `c` found at `i`, whitespace allowed before it; `None` if another
/// byte comes first. Compact JSON has `c` right at `i`: one look, no whitespace scan.
#[inline(always)]
fn after(b: &[u8], i: usize, c: u8) -> Option<usize> {
    match b.get(i) {
        Some(&x) if x == c => Some(i + 1),
        _ => {
            let j = ws(b, i);
            (b.get(j) == Some(&c)).then_some(j + 1)
        }
    }
}

/// Walks the object starting at `i` (`b[i] == b'{'`): `member(key, at)` is called for each member
/// with its key (unescaped keys only: an escaped key gives up) and where its value starts, and
/// returns where that value ends. Returns the index past the closing brace.
#[inline]
pub(crate) fn members<'a>(
    b: &'a [u8],
    i: usize,
    depth: usize,
    member: impl FnMut(&'a [u8], usize) -> Option<usize>,
) -> Option<usize> {
    resume_members(b, i, depth, None, member)
}

/// [`members`] for a reader that may have taken the object's first members itself: from
/// `resume` (just past the comma after them) when it did, else from the opening brace at `i`.
/// Always inlined, with one call of `member`: [`members`] is this loop, and its callers'
/// closures must stay inlined in it.
#[inline(always)]
pub(crate) fn resume_members<'a>(
    b: &'a [u8],
    i: usize,
    depth: usize,
    resume: Option<usize>,
    mut member: impl FnMut(&'a [u8], usize) -> Option<usize>,
) -> Option<usize> {
    let mut j = match resume {
        Some(j) => ws(b, j),
        None => {
            if depth >= MAX_DEPTH {
                return None;
            }
            let j = ws(b, i + 1);
            if b.get(j) == Some(&b'}') {
                return Some(j + 1);
            }
            j
        }
    };
    loop {
        if b.get(j) != Some(&b'"') {
            return None;
        }
        let (end, escaped) = string(b, j)?;
        if escaped {
            return None;
        }
        let key = &b[j + 1..end - 1];
        j = ws(b, member(key, ws(b, after(b, end, b':')?))?);
        match *b.get(j)? {
            b',' => j = ws(b, j + 1),
            b'}' => return Some(j + 1),
            _ => return None,
        }
    }
}

/// Walks the array starting at `i` (`b[i] == b'['`): `element(at)` is called with where each
/// element starts and returns where it ends. Returns the index past the closing bracket.
#[inline]
pub(crate) fn elements(
    b: &[u8],
    i: usize,
    depth: usize,
    mut element: impl FnMut(usize) -> Option<usize>,
) -> Option<usize> {
    if depth >= MAX_DEPTH {
        return None;
    }
    let mut j = ws(b, i + 1);
    if b.get(j) == Some(&b']') {
        return Some(j + 1);
    }
    loop {
        j = ws(b, element(j)?);
        match *b.get(j)? {
            b',' => j = ws(b, j + 1),
            b']' => return Some(j + 1),
            _ => return None,
        }
    }
}

/// A string-or-null value (its raw JSON text) as serde reads an `Option<Cow<str>>` borrowed from
/// the body: `Some(None)` for `null`, `Some(Some(s))` for a string without escapes, `None` (give
/// up, serde decides) for another type or a string with escapes.
pub(crate) fn plain_string(raw: &str) -> Option<Option<&str>> {
    Some(plain_bytes(raw.as_bytes())?.map(|s| &raw[1..=s.len()]))
}

/// [`plain_string`] on the value's bytes.
pub(crate) fn plain_bytes(raw: &[u8]) -> Option<Option<&[u8]>> {
    if raw == b"null" {
        return Some(None);
    }
    let s = raw.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    // A reduction without early exit, which the compiler vectorises: cheaper than `memchr`'s
    // setup for these short strings.
    (!s.iter().fold(false, |e, c| e | (*c == b'\\'))).then_some(Some(s))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Whole documents: accepted only if serde_json accepts them too.
    fn document(b: &[u8]) -> bool {
        let i = ws(b, 0);
        value(b, i, 0).is_some_and(|end| ws(b, end) == b.len())
    }

    #[test]
    fn grammar() {
        for ok in [
            &b"{}"[..],
            b" [1, -0.5e+3, true, false, null, \"a\\u00e9\\n\", {\"k\": []}] ",
            b"{\"a\":{\"b\":[{}]}}",
        ] {
            assert!(document(ok), "{}", String::from_utf8_lossy(ok));
        }
        for bad in [
            &b"{"[..],
            b"[1,]",
            b"{\"a\" 1}",
            b"01",
            b"1.",
            b"-",
            b"tru",
            b"\"a\x01\"",
            b"\"\\x\"",
            b"\"\\ud800\"",
            b"{\"\\u0061\":1}",
            b"[1] 2",
            b"{'a':1}",
        ] {
            assert!(!document(bad), "{}", String::from_utf8_lossy(bad));
        }
        // Long strings, with a control character anywhere, or none.
        for n in [0, 1, 5, 7, 8, 9, 15, 16, 17, 23, 24, 31, 32, 33, 40, 99] {
            let mut s = vec![b'a'; 100];
            s[0] = b'"';
            s[99] = b'"';
            assert!(document(&s));
            if n > 0 && n < 99 {
                s[n] = b'\n';
                assert!(!document(&s), "{n}");
                s[n] = 0x1f;
                assert!(!document(&s), "{n}");
                s[n] = 0x7f;
                assert!(document(&s), "{n}");
            }
        }
        // A string ended, or escaped, at every offset of the word-at-a-time and memchr parts.
        for n in 0..70 {
            let mut s = vec![b'a'; n + 2];
            s[0] = b'"';
            s[n + 1] = b'"';
            assert_eq!(string(&s, 0), Some((n + 2, false)), "{n}");
            if n >= 2 {
                s[n - 1] = b'\\';
                s[n] = b'"';
                assert_eq!(string(&s, 0), Some((n + 2, true)), "{n}");
                s[n] = b'x';
                assert_eq!(string(&s, 0), None, "{n}");
            }
        }
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(!document(deep.as_bytes()));
    }

    /// [`string`] the slow way, byte by byte: the reference for the differential test.
    fn string_by_bytes(b: &[u8], i: usize) -> Option<(usize, bool)> {
        let (mut j, mut escaped) = (i + 1, false);
        loop {
            match *b.get(j)? {
                b'"' => {
                    std::str::from_utf8(&b[i + 1..j]).ok()?;
                    return Some((j + 1, escaped));
                }
                b'\\' => {
                    escaped = true;
                    j = escape(b, j)?;
                }
                c if c < 0x20 => return None,
                _ => j += 1,
            }
        }
    }

    /// Escapes, good and bad, and a lone backslash.
    const ESCAPES: &[&[u8]] = &[b"\\n", b"\\\\", b"\\u00e9", b"\\ud800", b"\\x", b"\\"];
    /// Bytes that are not UTF-8: stray, cut short, a surrogate.
    const NOT_UTF8: &[&[u8]] = &[
        &[0xff],
        &[0x80],
        &[0xe2, 0x82],
        &[0xc3],
        &[0xed, 0xa0, 0x80],
    ];

    /// Pieces of string bodies: plain runs of every length around the word sizes, and each
    /// kind of byte that ends or breaks a run.
    fn piece() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => (0usize..40).prop_map(|n| vec![b'a'; n]),
            1 => Just(b"\"".to_vec()),
            1 => prop::sample::select(ESCAPES).prop_map(<[u8]>::to_vec),
            1 => prop::sample::select(&[0x00u8, 0x01, 0x1f, 0x7f][..]).prop_map(|c| vec![c]),
            1 => prop::sample::select(&["é", "€", "😀"][..]).prop_map(|c| c.as_bytes().to_vec()),
            1 => prop::sample::select(NOT_UTF8).prop_map(<[u8]>::to_vec),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// The word-at-a-time and `memchr` scans find the same end as a byte-by-byte reading,
        /// for strings at any offset, with quotes, escapes, control bytes, UTF-8 and not-UTF-8;
        /// and whatever they accept, serde_json accepts as a string.
        #[test]
        fn string_scan_is_byte_by_byte(
            lead in 0usize..20,
            pieces in prop::collection::vec(piece(), 0..12),
        ) {
            let mut b = vec![b' '; lead];
            b.push(b'"');
            pieces.iter().for_each(|p| b.extend_from_slice(p));
            let found = string(&b, lead);
            prop_assert_eq!(found, string_by_bytes(&b, lead), "{:?}", String::from_utf8_lossy(&b));
            if let Some((end, _)) = found {
                let json = &b[lead..end];
                prop_assert!(serde_json::from_slice::<String>(json).is_ok(), "{:?}", json);
            }
        }
    }

    proptest! {
        /// The lane-wise reduction of long runs is the plain fold, for any length (around the
        /// lane size and its multiples too) and any bytes.
        #[test]
        fn min_and_bits_is_the_fold(s in prop::collection::vec(any::<u8>(), 0..200)) {
            let fold = |s: &[u8]| s.iter().fold((u8::MAX, 0), |(m, o), c| (m.min(*c), o | *c));
            prop_assert_eq!(min_and_bits(&s), fold(&s));
            // One other byte in a plain run, first, in the middle or last.
            for at in [0, s.len() / 2, s.len().saturating_sub(1)] {
                let mut t = vec![b'a'; s.len()];
                if let Some(c) = t.get_mut(at) {
                    *c = s[at];
                    prop_assert_eq!(min_and_bits(&t), fold(&t));
                }
            }
        }

        /// Never more lenient than serde_json.
        #[test]
        fn stricter_than_serde(s in "[\\[\\]{}\",:0-9a-z.eE+\\- \\\\\u{1}]{0,24}") {
            if document(s.as_bytes()) {
                prop_assert!(serde_json::from_str::<serde::de::IgnoredAny>(&s).is_ok(), "{s}");
            }
        }
    }
}
