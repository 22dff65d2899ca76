//! SSE line splitting by the SSE rules: a line ends at CRLF, at LF or at a lone CR.

/// Splits SSE bytes, cut anywhere, into lines. A line ends at `\r\n`, `\n` or a lone `\r` (the
/// rules every SSE client follows: the WHATWG parser, and the SDKs' decoders); a `\r` that ends
/// one call's bytes and a `\n` that starts the next are one line end. Only an unterminated line
/// is held between calls.
#[derive(Debug, Default)]
pub(crate) struct SseLines {
    partial: Vec<u8>,
    /// The last byte seen was a `\r`: a `\n` next is the rest of that line end.
    after_cr: bool,
}

impl SseLines {
    /// Calls `each(line, end)` for every whole line of `bytes`, the first joined to what earlier
    /// calls held, without its line end; `end` is the offset in `bytes` just past the line end.
    /// When `each` returns false the rest of `bytes` is dropped.
    pub(crate) fn feed(&mut self, bytes: &[u8], mut each: impl FnMut(&[u8], usize) -> bool) {
        let mut at = 0;
        if self.after_cr && !bytes.is_empty() {
            self.after_cr = false;
            at = usize::from(bytes[0] == b'\n');
        }
        while let Some((end, next, cr_last)) = line_end(bytes, at) {
            self.after_cr = cr_last;
            let go = if self.partial.is_empty() {
                each(&bytes[at..end], next)
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&bytes[at..end]);
                let go = each(&line, next);
                line.clear();
                self.partial = line;
                go
            };
            at = next;
            if !go {
                return;
            }
        }
        self.partial.extend_from_slice(&bytes[at..]);
    }

    /// True if the next bytes start a line: nothing is held, and no `\r` just ended one (a `\n`
    /// first would be the rest of its line end).
    pub(crate) fn at_line_start(&self) -> bool {
        self.partial.is_empty() && !self.after_cr
    }

    /// The unterminated last line (the stream ended without a line end), if any.
    pub(crate) fn take_rest(&mut self) -> Option<Vec<u8>> {
        (!self.partial.is_empty()).then(|| std::mem::take(&mut self.partial))
    }

    /// Forgets the held line (the stream was cut off).
    pub(crate) fn clear(&mut self) {
        self.partial = Vec::new();
        self.after_cr = false;
    }
}

/// The next line end in `bytes` at or after `at`: where the line ends, the offset just past its line
/// end, and whether that line end is a `\r` ending `bytes` (a `\n` starting the next bytes then
/// belongs to it).
pub(crate) fn line_end(bytes: &[u8], at: usize) -> Option<(usize, usize, bool)> {
    let end = at + memchr::memchr2(b'\n', b'\r', bytes.get(at..)?)?;
    if bytes[end] == b'\n' {
        return Some((end, end + 1, false));
    }
    Some(match bytes.get(end + 1) {
        Some(b'\n') => (end, end + 2, false),
        Some(_) => (end, end + 1, false),
        None => (end, end + 1, true),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lines(pieces: &[&[u8]]) -> Vec<String> {
        let mut s = SseLines::default();
        let mut out = Vec::new();
        for p in pieces {
            s.feed(p, |l, _| {
                out.push(String::from_utf8_lossy(l).into_owned());
                true
            });
        }
        out.extend(
            s.take_rest()
                .map(|l| String::from_utf8_lossy(&l).into_owned()),
        );
        out
    }

    #[test]
    fn every_line_end() {
        let want = ["a", "b", "", "c", "d", "", "e"];
        assert_eq!(lines(&[b"a\nb\r\n\r\nc\rd\r\re"]), want);
        // A CRLF cut between its two bytes is one line end.
        assert_eq!(lines(&[b"a\nb\r", b"\n\r", b"\nc\r", b"d\r", b"\re"]), want);
        // An empty call between them changes nothing.
        assert_eq!(lines(&[b"a\nb\r", b"", b"\n\r\nc\rd\r\re"]), want);
    }

    #[test]
    fn ends_are_offsets_past_the_line_end() {
        let mut s = SseLines::default();
        let mut ends = Vec::new();
        s.feed(b"ab\r\ncd\ref\n", |_, e| {
            ends.push(e);
            true
        });
        assert_eq!(ends, [4, 7, 10]);
    }

    proptest! {
        #[test]
        fn any_split_same_lines(text in "[ab\r\n]{0,40}", cuts in proptest::collection::vec(0usize..41, 0..6)) {
            let bytes = text.as_bytes();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut at = 0;
            for c in cuts.into_iter().chain([bytes.len()]) {
                pieces.push(&bytes[at..c]);
                at = c;
            }
            // The rules, applied to the whole text at once.
            let norm = text.replace("\r\n", "\n").replace('\r', "\n");
            let mut want: Vec<String> = norm.split('\n').map(str::to_owned).collect();
            if want.last().is_some_and(|l| l.is_empty()) {
                want.pop();
            }
            prop_assert_eq!(lines(&pieces), want);
        }
    }
}
