//! Editing a JSON body without re-serialising it: byte ranges replaced by [`Piece`]s, written in
//! one pass into one reservation. ProviderFallback (the upstream body), UsageMeter (the answer)
//! and [`RequestView::splice_model`](super::RequestView::splice_model) all edit bodies this way.

use std::ops::Range;

/// A piece of a replacement, written straight into the edited body by [`splice`]. It only
/// borrows (bytes made for an edit live with its maker), so it is `Copy` and has no drop glue.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) enum Piece<'a> {
    /// Nothing (an unused slot, or a removal).
    #[default]
    Empty,
    /// Bytes as they are.
    Raw(&'a [u8]),
    /// The JSON string literal for the text.
    Quoted(&'a str),
}

impl Piece<'_> {
    /// The bytes it writes (exact, but for a quoted text that needs escapes).
    fn len(&self) -> usize {
        match self {
            Piece::Empty => 0,
            Piece::Raw(b) => b.len(),
            Piece::Quoted(s) => s.len() + 2,
        }
    }

    /// Appends it to `out`.
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Piece::Empty => {}
            Piece::Raw(b) => out.extend_from_slice(b),
            Piece::Quoted(s) => write_json_str(out, s),
        }
    }
}

/// Room for up to `N` pieces, of which only the ones pushed are written or looked at (an edit
/// with a variable number of pieces costs only the ones it uses).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pieces<'a, const N: usize> {
    used: usize,
    all: [Piece<'a>; N],
}

impl<'a, const N: usize> Pieces<'a, N> {
    /// The pieces `first` (`M` is at most `N`).
    pub(crate) fn new<const M: usize>(first: [Piece<'a>; M]) -> Self {
        const { assert!(M <= N) };
        let mut p = Pieces::default();
        first.into_iter().for_each(|f| p.push(f));
        p
    }

    /// Adds `p` after the others (there must be fewer than `N`: a release build leaves out any
    /// more).
    pub(crate) fn push(&mut self, p: Piece<'a>) {
        debug_assert!(self.used < N, "more than {N} pieces");
        if let Some(slot) = self.all.get_mut(self.used) {
            *slot = p;
            self.used += 1;
        }
    }
}

impl<const N: usize> Pieces<'_, N> {
    /// The bytes the pieces write (exact, but for a quoted text that needs escapes).
    pub(crate) fn len(&self) -> usize {
        self.as_ref().iter().map(Piece::len).sum()
    }

    /// Appends the pieces to `out`, as [`splice`] writes them.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        self.as_ref().iter().for_each(|p| p.write(out));
    }
}

impl<const N: usize> Default for Pieces<'_, N> {
    fn default() -> Self {
        Pieces {
            used: 0,
            all: [Piece::Empty; N],
        }
    }
}

impl<'a, const N: usize> AsRef<[Piece<'a>]> for Pieces<'a, N> {
    fn as_ref(&self) -> &[Piece<'a>] {
        &self.all[..self.used.min(N)]
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
    // Usually pushed in the body's order already: a check costs less than the sort.
    let key = |(r, _): &(Range<usize>, P)| (r.start, r.end);
    if !edits.is_sorted_by_key(key) {
        edits.sort_by_key(key);
    }
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

        /// Edits whose [`Pieces`] hold only the pieces pushed write what the same edits write as
        /// full arrays padded with empty pieces.
        #[test]
        fn counted_pieces_are_padded_arrays(
            body in "[a-z{}\"]{0,24}",
            edits in proptest::collection::vec(
                (0usize..30, 0usize..4, proptest::collection::vec(("[a-z\"\\\\]{0,3}", any::<bool>()), 0..=5)),
                0..6,
            ),
        ) {
            fn piece((t, quoted): &(String, bool)) -> Piece<'_> {
                if *quoted { Piece::Quoted(t) } else { Piece::Raw(t.as_bytes()) }
            }
            let mut counted = Vec::new();
            let mut padded = Vec::new();
            for (start, len, ps) in &edits {
                let mut c: Pieces<'_, 5> = Pieces::default();
                let mut p = [Piece::Empty; 5];
                for (slot, x) in p.iter_mut().zip(ps) {
                    c.push(piece(x));
                    *slot = piece(x);
                }
                counted.push((*start..start + len, c));
                padded.push((*start..start + len, p));
            }
            prop_assert_eq!(
                splice(body.as_bytes(), &mut counted),
                splice(body.as_bytes(), &mut padded)
            );
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
            (1..1, [Piece::Raw(b" "), Piece::Empty]),
        ];
        let out = splice(body, &mut edits);
        assert_eq!(String::from_utf8(out).unwrap(), "{ \"x\\\"y\":1,\"c\":2}");
    }
}
