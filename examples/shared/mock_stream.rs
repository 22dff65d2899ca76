//! The stream `examples/mock_upstream.rs` answers with, shared with the icount bench
//! (`benches/common/mod.rs`, by `#[path]`), so that the bench's `stack/*+stream` scenarios read the
//! very bytes the gateway reads in `scripts/gateway-icount.sh … stream`.

use std::collections::VecDeque;

use bytes::Bytes;

/// The content chunks of a stream.
pub const CHUNKS: usize = 20;

/// The 22 SSE frames of one stream, one event per frame: [`CHUNKS`] content chunks, a finish
/// chunk carrying usage, `[DONE]`.
pub fn stream_frames() -> VecDeque<Bytes> {
    let mut frames = VecDeque::with_capacity(CHUNKS + 2);
    for i in 0..CHUNKS {
        frames.push_back(Bytes::from(format!(
            "data: {{\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\
             \"model\":\"mock-model\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"word{i} \"}},\
             \"finish_reason\":null}}]}}\n\n"
        )));
    }
    frames.push_back(Bytes::from_static(
        b"data: {\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\
\"model\":\"mock-model\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\
\"usage\":{\"prompt_tokens\":250,\"completion_tokens\":20,\"total_tokens\":270}}\n\n",
    ));
    frames.push_back(Bytes::from_static(b"data: [DONE]\n\n"));
    frames
}
