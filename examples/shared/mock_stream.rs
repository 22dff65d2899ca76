//! The stream `examples/mock_upstream.rs` answers with, shared with the icount bench
//! (`benches/common/mod.rs`, by `#[path]`), so that the bench's `stack/*+stream` scenarios read the
//! very bytes the gateway reads in `scripts/gateway-icount.sh … stream`.

use std::collections::VecDeque;

use bytes::Bytes;

/// The content chunks of a stream (`examples/mock_upstream.rs` sends another number when its
/// `MOCK_CHUNKS` variable says so).
pub const CHUNKS: usize = 20;

/// The content chunks of the mock's streams: `MOCK_CHUNKS` (which the scripts pass on to the mock
/// and to the load generator alike), else [`CHUNKS`]; an error if it is not a number.
#[allow(dead_code)] // Not read by the icount bench, which includes this file too.
pub fn configured_chunks() -> Result<usize, String> {
    match std::env::var("MOCK_CHUNKS") {
        Ok(n) => n
            .parse()
            .map_err(|_| format!("MOCK_CHUNKS is a number of chunks, not {n:?}")),
        Err(_) => Ok(CHUNKS),
    }
}

/// The SSE frames of one stream of `chunks` content chunks, one event per frame: the content
/// chunks, a finish chunk carrying usage (`completion_tokens`: `chunks`), `[DONE]`.
pub fn stream_frames(chunks: usize) -> VecDeque<Bytes> {
    let mut frames = VecDeque::with_capacity(chunks + 2);
    for i in 0..chunks {
        frames.push_back(Bytes::from(format!(
            "data: {{\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\
             \"model\":\"mock-model\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"word{i} \"}},\
             \"finish_reason\":null}}]}}\n\n"
        )));
    }
    frames.push_back(Bytes::from(format!(
        "data: {{\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\
         \"model\":\"mock-model\",\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\"}}],\
         \"usage\":{{\"prompt_tokens\":250,\"completion_tokens\":{chunks},\"total_tokens\":{}}}}}\n\n",
        250 + chunks
    )));
    frames.push_back(Bytes::from_static(b"data: [DONE]\n\n"));
    frames
}
