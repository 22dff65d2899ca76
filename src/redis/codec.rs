//! The bytes of a [`CachedResponse`] in Redis: a small versioned, length-prefixed format.
//!
//! ```text
//! u8 version (1) · u8 flags (1: streamed, 2: created present, 4: source id present,
//!                             8: the body is on the Anthropic Messages wire)
//! i64 stored_at_ms · u64 ttl_ms · i64 created
//! u32 len + source id
//! u32 header count, then per header: u32 len + name, u32 len + value
//! u32 frame count, then per frame: u32 len + bytes
//! ```
//!
//! Integers are big-endian. Decoding checks every length against what is left, so a corrupt or
//! foreign value is `None` (a cache miss), never a panic.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::cache::CachedResponse;
use crate::wire::MessagesWire;

const VERSION: u8 = 1;
const STREAMED: u8 = 1;
const CREATED: u8 = 2;
const SOURCE: u8 = 4;
const MESSAGES_WIRE: u8 = 8;

fn put_bytes(out: &mut BytesMut, b: &[u8]) {
    out.put_u32(u32::try_from(b.len()).unwrap_or(u32::MAX));
    out.put_slice(b);
}

/// The bytes of `e`. Of its extensions only the Messages-wire mark is kept (the others are
/// per-process details a HIT can do without).
pub(crate) fn encode(e: &CachedResponse) -> Bytes {
    let size: usize = e.frames.iter().map(|f| f.len() + 4).sum::<usize>() + 256;
    let mut out = BytesMut::with_capacity(size);
    let mut flags = 0;
    for (on, bit) in [
        (e.streamed, STREAMED),
        (e.created.is_some(), CREATED),
        (e.source_id.is_some(), SOURCE),
        (e.extensions.get::<MessagesWire>().is_some(), MESSAGES_WIRE),
    ] {
        if on {
            flags |= bit;
        }
    }
    out.put_u8(VERSION);
    out.put_u8(flags);
    out.put_i64(e.stored_at_ms);
    out.put_u64(u64::try_from(e.ttl.as_millis()).unwrap_or(u64::MAX));
    out.put_i64(e.created.unwrap_or(0));
    put_bytes(&mut out, e.source_id.as_deref().unwrap_or("").as_bytes());
    out.put_u32(u32::try_from(e.headers.len()).unwrap_or(u32::MAX));
    for (name, value) in &e.headers {
        put_bytes(&mut out, name.as_str().as_bytes());
        put_bytes(&mut out, value.as_bytes());
    }
    out.put_u32(u32::try_from(e.frames.len()).unwrap_or(u32::MAX));
    for f in &e.frames {
        put_bytes(&mut out, f);
    }
    out.freeze()
}

/// A reader that refuses to read past the end.
struct Reader(Bytes);

impl Reader {
    fn u8(&mut self) -> Option<u8> {
        (self.0.remaining() >= 1).then(|| self.0.get_u8())
    }
    fn u32(&mut self) -> Option<u32> {
        (self.0.remaining() >= 4).then(|| self.0.get_u32())
    }
    fn u64(&mut self) -> Option<u64> {
        (self.0.remaining() >= 8).then(|| self.0.get_u64())
    }
    fn bytes(&mut self) -> Option<Bytes> {
        let len = usize::try_from(self.u32()?).ok()?;
        (self.0.remaining() >= len).then(|| self.0.split_to(len))
    }
}

/// The entry in `raw`, or `None` if it is not one this version wrote.
pub(crate) fn decode(raw: Bytes) -> Option<CachedResponse> {
    let mut r = Reader(raw);
    if r.u8()? != VERSION {
        return None;
    }
    let flags = r.u8()?;
    let stored_at_ms = r.u64()? as i64;
    let ttl = Duration::from_millis(r.u64()?);
    let created = r.u64()? as i64;
    let source = r.bytes()?;
    let mut headers = HeaderMap::new();
    for _ in 0..r.u32()? {
        let name = HeaderName::from_bytes(&r.bytes()?).ok()?;
        let value = HeaderValue::from_maybe_shared(r.bytes()?).ok()?;
        headers.append(name, value);
    }
    let count = r.u32()?;
    let mut frames = Vec::with_capacity(count.min(4096) as usize);
    for _ in 0..count {
        frames.push(r.bytes()?);
    }
    let mut extensions = http::Extensions::new();
    if flags & MESSAGES_WIRE != 0 {
        extensions.insert(MessagesWire);
    }
    Some(CachedResponse {
        headers,
        frames,
        source_id: (flags & SOURCE != 0)
            .then(|| std::str::from_utf8(&source).ok().map(Arc::from))
            .flatten(),
        created: (flags & CREATED != 0).then_some(created),
        stored_at_ms,
        ttl,
        streamed: flags & STREAMED != 0,
        extensions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> CachedResponse {
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            HeaderValue::from_static("text/event-stream"),
        );
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("2"));
        let mut extensions = http::Extensions::new();
        extensions.insert(MessagesWire);
        CachedResponse {
            headers,
            frames: vec![
                Bytes::from_static(b"data: {}\n\n"),
                Bytes::from_static(b"\xff\x00"),
            ],
            source_id: Some("gen-1".into()),
            created: Some(1_700_000_000),
            stored_at_ms: 1_795_315_920_000,
            ttl: Duration::from_secs(300),
            streamed: true,
            extensions,
        }
    }

    #[test]
    fn round_trip() {
        let e = entry();
        let d = decode(encode(&e)).unwrap();
        assert_eq!(d.headers, e.headers);
        assert_eq!(d.frames, e.frames);
        assert_eq!(d.source_id, e.source_id);
        assert_eq!(
            (d.created, d.stored_at_ms, d.ttl),
            (e.created, e.stored_at_ms, e.ttl)
        );
        assert!(d.streamed && d.extensions.get::<MessagesWire>().is_some());
        let plain = CachedResponse {
            source_id: None,
            created: None,
            streamed: false,
            extensions: http::Extensions::new(),
            ..entry()
        };
        let d = decode(encode(&plain)).unwrap();
        assert_eq!((d.source_id, d.created, d.streamed), (None, None, false));
        assert!(d.extensions.get::<MessagesWire>().is_none());
    }

    #[test]
    fn truncated_or_foreign_bytes_are_a_miss() {
        let full = encode(&entry());
        for n in 0..full.len() {
            assert!(decode(full.slice(..n)).is_none(), "{n} bytes");
        }
        assert!(decode(Bytes::from_static(b"{\"json\":1}")).is_none());
    }
}
