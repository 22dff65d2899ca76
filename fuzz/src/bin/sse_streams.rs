//! AFL++ harness for [`tower_ai_gateway_fuzz::sse_streams`] (see the crate docs).

fn main() {
    afl::fuzz!(|data: &[u8]| tower_ai_gateway_fuzz::sse_streams(data));
}
