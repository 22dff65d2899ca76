//! AFL++ harness for [`tower_ai_gateway_fuzz::request_view`] (see the crate docs).

fn main() {
    afl::fuzz!(|data: &[u8]| tower_ai_gateway_fuzz::request_view(data));
}
