//! Compiles `proto/chat.proto` with protox (pure Rust) and generates the tonic service and client.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/chat.proto");
    let fds = protox::compile(["proto/chat.proto"], ["proto"])?;
    tonic_build::configure().compile_fds(fds)?;
    Ok(())
}
