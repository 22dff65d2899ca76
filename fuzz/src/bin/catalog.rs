//! AFL++ harness for [`tower_ai_gateway_fuzz::catalog`] (see the crate docs).

fn main() {
    afl::fuzz!(|data: &[u8]| tower_ai_gateway_fuzz::catalog(data));
}
