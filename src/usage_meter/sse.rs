//! An incremental server-sent-events scanner that can edit events on the way through.
//!
//! Frames are split into lines as the SSE rules split them (at `\r\n`, `\n` or a lone `\r`, as the
//! caller's SSE parser will) and into events at blank lines. Complete events are handed to an
//! [`OnEvent`] and emitted at once; only the unfinished tail of the last event of a frame is held
//! back until the rest of it arrives, so that an event can be edited as a whole. A frame that
//! starts at an event boundary and that the owner knows for one whole event of a learned shape
//! ([`OnEvent::whole_event`]: the usual content chunk) is handled by the owner without a scan.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

/// What the scanner asks of its owner.
pub(crate) trait OnEvent {
    /// Observes one event (`name`: the `event:` field, empty if none; `data`: the `data:` lines
    /// joined by `\n`). Returns a replacement for `data` when the event is to be edited.
    fn on_event(&mut self, name: &[u8], data: &[u8]) -> Option<Vec<u8>>;

    /// True if emitted bytes must go through [`OnEvent::rewrite`].
    fn rewrites(&self) -> bool;

    /// Appends `src` to `out`, with the owner's byte-pattern replacements applied.
    fn rewrite(&mut self, src: &[u8], out: &mut BytesMut);

    /// Handles `frame`, which starts at an event boundary, without scanning it, when the owner
    /// recognises it as exactly one whole event it knows the shape of: returns the bytes to emit
    /// (built in `out` if edited), exactly what the scan would have emitted and observed the
    /// same. Gives the frame back otherwise.
    #[inline(always)]
    fn whole_event(&mut self, frame: Bytes, out: &mut BytesMut) -> Result<Bytes, Bytes> {
        let _ = out;
        Err(frame)
    }

    /// The length of the event at the start of `buf` (more events may follow it) when the owner
    /// recognises it as one whole event of a shape it knows and has observed it, exactly as
    /// [`OnEvent::on_event`] would have (with no replacement), [`OnEvent::rewrite`] being ready
    /// for it; `None` (nothing observed) otherwise. Lets the scan take the usual events of a frame
    /// that holds several without reading their lines.
    #[inline(always)]
    fn known_event(&mut self, buf: &[u8]) -> Option<usize> {
        let _ = buf;
        None
    }
}

/// The scanner's state between frames.
#[derive(Debug, Default)]
pub(crate) struct SseScanner {
    /// The unfinished event: bytes since the last event boundary.
    tail: BytesMut,
    /// Where to resume scanning lines, relative to the event start.
    line: usize,
    /// `data:` payload ranges of the current event, relative to its start.
    data: Vec<Range<usize>>,
    /// The `event:` value range, relative to the event start.
    name: Option<Range<usize>>,
    /// True once the current event has a field line (not only comments).
    fields: bool,
    /// The last line seen ended with a `\r` that ended the bytes scanned: a `\n` next belongs to it.
    after_cr: bool,
    /// Scratch space for joined multi-line data and edited events.
    scratch: Vec<u8>,
    /// Output being assembled.
    out: BytesMut,
}

impl SseScanner {
    /// Feeds one frame; returns the bytes to emit now (possibly empty). Inlined into the body's
    /// poll: the usual frame ([`OnEvent::whole_event`]) then costs no call of its own.
    #[inline(always)]
    pub(crate) fn feed(&mut self, frame: Bytes, h: &mut impl OnEvent) -> Bytes {
        if !self.tail.is_empty() {
            return self.feed_continued(frame, h);
        }
        match h.whole_event(frame, &mut self.out) {
            Ok(out) => {
                // As in `feed_at_boundary`: a frame that starts an event ends any pending CR's line.
                self.after_cr = false;
                out
            }
            Err(frame) => self.feed_at_boundary(frame, h),
        }
    }

    /// Feeds a frame that starts at an event boundary (the tail is empty).
    #[inline(never)]
    fn feed_at_boundary(&mut self, frame: Bytes, h: &mut impl OnEvent) -> Bytes {
        let mut copy = h.rewrites();
        let consumed = match single_data_event(&frame) {
            Some(data) => {
                // The usual frame: one event of one `data:` line, handled without the line
                // loop (the state is that of an event boundary, the tail being empty, and stays
                // so: no name, no field, no data range kept; a CR before it was a whole line
                // end, the frame starting with `data:`).
                self.after_cr = false;
                self.event(&frame, &[data], h, &mut copy, &[]);
                frame.len()
            }
            None => self.scan(&frame, h, &mut copy),
        };
        if consumed < frame.len() {
            self.tail.extend_from_slice(&frame[consumed..]);
        }
        if copy {
            self.out.split().freeze()
        } else if consumed == frame.len() {
            // The usual frame: whole events, passed on as they came.
            frame
        } else {
            frame.slice(..consumed)
        }
    }

    /// Feeds a frame that continues the unfinished event in the tail.
    #[inline(never)]
    fn feed_continued(&mut self, frame: Bytes, h: &mut impl OnEvent) -> Bytes {
        self.tail.extend_from_slice(&frame);
        let mut buf = std::mem::take(&mut self.tail);
        let (consumed, out) = self.scan_emit(&buf, h);
        if consumed < buf.len() {
            let _ = buf.split_to(consumed);
            self.tail = buf;
        } else {
            buf.clear();
            self.tail = buf;
        }
        out
    }

    /// Ends the stream: an unfinished last event is observed as if complete and emitted as it is.
    pub(crate) fn finish(&mut self, h: &mut impl OnEvent) -> Bytes {
        if self.tail.is_empty() {
            return Bytes::new();
        }
        let mut buf = std::mem::take(&mut self.tail);
        // Terminate the last line and the event so the scanner sees it whole.
        let added = if buf.ends_with(b"\n") { 1 } else { 2 };
        buf.extend_from_slice(&b"\n\n"[..added]);
        let (_, mut out) = self.scan_emit(&buf, h);
        // Drop the bytes we added (the edited output keeps the upstream's own ending).
        let cut = out.len().saturating_sub(added);
        if out.len() >= added && out[cut..].iter().all(|b| *b == b'\n') {
            out.truncate(cut);
        }
        out
    }

    /// Scans `buf` (whose first byte starts the current event): how much of it the complete
    /// events take, and the bytes to emit for them (copied, or as the owner rewrote them).
    fn scan_emit(&mut self, buf: &[u8], h: &mut impl OnEvent) -> (usize, Bytes) {
        let mut copy = h.rewrites();
        let consumed = self.scan(buf, h, &mut copy);
        let out = if copy {
            self.out.split().freeze()
        } else {
            Bytes::copy_from_slice(&buf[..consumed])
        };
        (consumed, out)
    }

    fn reset_event(&mut self) {
        self.line = 0;
        self.data.clear();
        self.name = None;
        self.fields = false;
    }

    /// Scans `buf`, whose first byte starts the current event; returns the length of the complete
    /// events in it. When `*copy`, output goes to `self.out`.
    fn scan(&mut self, buf: &[u8], h: &mut impl OnEvent, copy: &mut bool) -> usize {
        let mut ev = 0;
        let mut pos = self.line;
        if self.after_cr && pos < buf.len() {
            self.after_cr = false;
            pos += usize::from(buf[pos] == b'\n');
        }
        loop {
            if pos == ev && !self.fields {
                // An event starts here: the usual one is taken whole (see `known_event`).
                if let Some(n) = h.known_event(&buf[ev..]) {
                    self.after_cr = false;
                    if !*copy && h.rewrites() {
                        *copy = true;
                        out_put(&mut self.out, &buf[..ev]);
                    }
                    if *copy {
                        h.rewrite(&buf[ev..ev + n], &mut self.out);
                    }
                    ev += n;
                    pos = ev;
                    continue;
                }
            }
            let Some((end, next, cr_last)) = crate::body::line_end(buf, pos) else {
                break;
            };
            self.after_cr = cr_last;
            let line = &buf[pos..end];
            if line.is_empty() {
                let raw = &buf[ev..next];
                if self.fields {
                    let data = std::mem::take(&mut self.data);
                    self.event(raw, &data, h, copy, &buf[..ev]);
                    self.data = data;
                } else if *copy {
                    out_put(&mut self.out, raw);
                }
                self.reset_event();
                ev = next;
            } else if let Some(rest) = line.strip_prefix(b"data:") {
                let skip = usize::from(rest.first() == Some(&b' '));
                let start = end - rest.len() + skip;
                self.data.push(start - ev..end - ev);
                self.fields = true;
            } else if line[0] == b':' {
                // A comment (keep-alive).
            } else if let Some(rest) = line.strip_prefix(b"event:") {
                let skip = usize::from(rest.first() == Some(&b' '));
                let start = end - rest.len() + skip;
                self.name = Some(start - ev..end - ev);
                self.fields = true;
            } else {
                self.fields = true;
            }
            pos = next;
        }
        self.line = pos - ev;
        ev
    }

    /// Handles one complete event `raw` whose `data:` payloads are at `data`; `before` is what
    /// precedes it in the buffer (emitted verbatim if the output switches to copying now).
    fn event(
        &mut self,
        raw: &[u8],
        data: &[Range<usize>],
        h: &mut impl OnEvent,
        copy: &mut bool,
        before: &[u8],
    ) {
        let name = self.name.clone().map_or(&[][..], |r| &raw[r]);
        let replaced = match data.len() {
            0 => h.on_event(name, &[]),
            1 => h.on_event(name, &raw[data[0].clone()]),
            _ => {
                self.scratch.clear();
                for (i, r) in data.iter().enumerate() {
                    if i > 0 {
                        self.scratch.push(b'\n');
                    }
                    self.scratch.extend_from_slice(&raw[r.clone()]);
                }
                let joined = std::mem::take(&mut self.scratch);
                let r = h.on_event(name, &joined);
                self.scratch = joined;
                r
            }
        };
        if !*copy && (replaced.is_some() || h.rewrites()) {
            // Switch to copying: what came before this event goes out as it was.
            *copy = true;
            out_put(&mut self.out, before);
        }
        if !*copy {
            return;
        }
        match replaced {
            None => h.rewrite(raw, &mut self.out),
            Some(payload) => {
                self.scratch.clear();
                if data.len() == 1 && memchr::memchr2(b'\n', b'\r', &payload).is_none() {
                    let r = data[0].clone();
                    // One reservation (the scratch space's first, usually) for the whole event.
                    self.scratch
                        .reserve(r.start + payload.len() + (raw.len() - r.end));
                    self.scratch.extend_from_slice(&raw[..r.start]);
                    self.scratch.extend_from_slice(&payload);
                    self.scratch.extend_from_slice(&raw[r.end..]);
                } else {
                    if !name.is_empty() {
                        self.scratch.extend_from_slice(b"event: ");
                        self.scratch.extend_from_slice(name);
                        self.scratch.push(b'\n');
                    }
                    // One `data:` line per line of the payload: the event's data was its `data:`
                    // lines joined by `\n`, and so is the edit's (written as one line, the lines
                    // after the first would not be data to the caller).
                    for line in payload.split(|b| *b == b'\n') {
                        self.scratch.extend_from_slice(b"data: ");
                        self.scratch.extend_from_slice(line);
                        self.scratch.push(b'\n');
                    }
                    self.scratch.push(b'\n');
                }
                let edited = std::mem::take(&mut self.scratch);
                h.rewrite(&edited, &mut self.out);
                self.scratch = edited;
            }
        }
    }
}

/// The payload range of `frame` when it is exactly one event made of one `data:` line ended by
/// `\n\n` (no `\r`, no other line): what [`SseScanner::scan`] would find in it, with one search.
#[inline]
fn single_data_event(frame: &[u8]) -> Option<Range<usize>> {
    let body = frame.strip_suffix(b"\n\n")?;
    let rest = body.strip_prefix(b"data:")?;
    if memchr::memchr2(b'\n', b'\r', rest).is_some() {
        return None;
    }
    let start = frame.len() - 2 - rest.len() + usize::from(rest.first() == Some(&b' '));
    Some(start..body.len())
}

#[inline]
pub(crate) fn out_put(out: &mut BytesMut, b: &[u8]) {
    out_reserve(out, b.len());
    out.put_slice(b);
}

/// Makes room for `n` more bytes in `out`, growing it by at least 8 KiB at a time so that the
/// many small events of a stream share a few allocations.
#[inline]
pub(crate) fn out_reserve(out: &mut BytesMut, n: usize) {
    if out.capacity() - out.len() < n {
        out.reserve(n.max(8 * 1024));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect {
        events: Vec<(String, String)>,
    }

    impl OnEvent for Collect {
        fn on_event(&mut self, name: &[u8], data: &[u8]) -> Option<Vec<u8>> {
            self.events.push((
                String::from_utf8_lossy(name).into(),
                String::from_utf8_lossy(data).into(),
            ));
            (data == b"edit").then(|| b"EDITED".to_vec())
        }
        fn rewrites(&self) -> bool {
            false
        }
        fn rewrite(&mut self, src: &[u8], out: &mut BytesMut) {
            out.extend_from_slice(src);
        }
    }

    #[test]
    fn every_split() {
        let src: &[u8] =
            b": ka\r\n\r\nevent: x\r\ndata: a\r\ndata: b\r\n\r\ndata: edit\n\ndata: z\n\n";
        for cut in 0..=src.len() {
            let mut s = SseScanner::default();
            let mut c = Collect::default();
            let mut out = Vec::new();
            out.extend_from_slice(&s.feed(Bytes::copy_from_slice(&src[..cut]), &mut c));
            out.extend_from_slice(&s.feed(Bytes::copy_from_slice(&src[cut..]), &mut c));
            out.extend_from_slice(&s.finish(&mut c));
            assert_eq!(
                c.events,
                vec![
                    ("x".into(), "a\nb".into()),
                    (String::new(), "edit".into()),
                    (String::new(), "z".into())
                ],
                "cut {cut}"
            );
            let expect: &[u8] =
                b": ka\r\n\r\nevent: x\r\ndata: a\r\ndata: b\r\n\r\ndata: EDITED\n\ndata: z\n\n";
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(expect)
            );
        }
    }

    #[test]
    fn unterminated_last_event() {
        let mut s = SseScanner::default();
        let mut c = Collect::default();
        let a = s.feed(Bytes::from_static(b"data: 1\n\ndata: 2"), &mut c);
        assert_eq!(&a[..], b"data: 1\n\n");
        let b = s.finish(&mut c);
        assert_eq!(&b[..], b"data: 2");
        assert_eq!(c.events.len(), 2);
    }
}
