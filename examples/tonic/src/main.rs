//! Serves [`ChatService`](tower_ai_gateway_tonic_example::ChatService) on 127.0.0.1:50051.
//!
//! ```text
//! cargo run --manifest-path examples/tonic/Cargo.toml
//! ```

use tower_ai_gateway_tonic_example::pb::chat_server::ChatServer;
use tower_ai_gateway_tonic_example::ChatService;

#[tokio::main]
async fn main() -> Result<(), tower_ai_gateway::BoxError> {
    let addr = "127.0.0.1:50051".parse()?;
    println!("gRPC chat on {addr} (gateway.v1.Chat: Complete, Stream)");
    tonic::transport::Server::builder()
        .add_service(ChatServer::new(ChatService::demo()?))
        .serve(addr)
        .await?;
    Ok(())
}
