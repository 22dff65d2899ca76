//! Editing a JSON body without re-serialising it: byte ranges replaced by [`Piece`]s, written in
//! one pass into one reservation. ProviderFallback (the upstream body), UsageMeter (the answer)
//! and [`RequestView::splice_model`](super::RequestView::splice_model) all edit bodies this way.

use std::ops::Range;

/// A piece of a replacement, written straight into the edited body by [`splice`].
#[derive(Debug, Default)]
pub(crate) enum Piece<'a> {
    /// Nothing (an unused slot, or a removal).
    #[default]
    Empty,
    /// Bytes as they are.
    Raw(&'a [u8]),
    /// The JSON string literal for the text.
    Quoted(&'a str),
    /// Bytes made for the edit.
    Owned(Vec<u8>),
}

impl Piece<'_> {
    /// The bytes it writes (exact, but for a quoted text that needs escapes).
    fn len(&self) -> usize {
        match self {
            Piece::Empty => 0,
            Piece::Raw(b) => b.len(),
            Piece::Quoted(s) => s.len() + 2,
            Piece::Owned(v) => v.len(),
        }
    }

    /// Appends it to `out`.
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Piece::Empty => {}
            Piece::Raw(b) => out.extend_from_slice(b),
            Piece::Quoted(s) => write_json_str(out, s),
            Piece::Owned(v) => out.extend_from_slice(v),
        }
    }
}

/// `body` with `edits` (byte range → the pieces that replace it) applied, in one pass into one
/// reservation of the result's length (exact unless a quoted text needs escapes). The edits are
/// sorted here (by start, then end: insertions at one place keep their order); an edit that
/// overlaps the one before it or reaches past the body is skipped.
pub(crate) fn splice<'a, P: AsRef<[Piece<'a>]>>(
    body: &[u8],
    edits: &mut [(Range<usize>, P)],
) -> Vec<u8> {
    edits.sort_by_key(|(r, _)| (r.start, r.end));
    let mut at = 0;
    let kept = |r: &Range<usize>, at: &mut usize| {
        let keep = r.start >= *at && r.start <= r.end && r.end <= body.len();
        if keep {
            *at = r.end;
        }
        keep
    };
    let mut len = body.len();
    for (r, p) in edits.iter() {
        if kept(r, &mut at) {
            len = len - r.len() + p.as_ref().iter().map(Piece::len).sum::<usize>();
        }
    }
    let mut out = Vec::with_capacity(len);
    at = 0;
    for (r, p) in edits.iter() {
        let from = at;
        if kept(r, &mut at) {
            out.extend_from_slice(&body[from..r.start]);
            p.as_ref().iter().for_each(|p| p.write(&mut out));
        }
    }
    out.extend_from_slice(&body[at..]);
    out
}

/// True if `s` needs no escaping in a JSON string (no quote, backslash or control character).
pub(crate) fn plain_json_str(s: &str) -> bool {
    // A reduction without early exit, which the compiler vectorises.
    !s.bytes().fold(false, |bad, b| {
        bad | (b < 0x20) | (b == b'"') | (b == b'\\')
    })
}

/// Writes `s` as a JSON string literal.
pub(crate) fn write_json_str(out: &mut Vec<u8>, s: &str) {
    if plain_json_str(s) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // serde_json's string escaping is exactly what is needed and cannot fail on a Vec.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Written plainly or by serde, the literal is serde's.
        #[test]
        fn json_str_is_serdes(s in any::<String>()) {
            let mut out = Vec::new();
            write_json_str(&mut out, &s);
            prop_assert_eq!(out, serde_json::to_vec(&s).unwrap());
        }
    }

    #[test]
    fn splice_sorts_and_skips_overlaps() {
        let body = b"{\"a\":1,\"b\":2}";
        let mut edits = [
            (7..10, [Piece::Raw(b"\"c\""), Piece::Empty]),
            (1..4, [Piece::Quoted("x\"y"), Piece::Empty]),
            // Overlaps the edit before it: skipped.
            (2..5, [Piece::Raw(b"!"), Piece::Empty]),
            (1..1, [Piece::Owned(b" ".to_vec()), Piece::Empty]),
        ];
        let out = splice(body, &mut edits);
        assert_eq!(String::from_utf8(out).unwrap(), "{ \"x\\\"y\":1,\"c\":2}");
    }
}
