//! The gRPC service over loopback with tonic's client: unary and server-streaming chat, with the
//! usage and cost the gateway metered.

use tokio_stream::StreamExt;
use tower_ai_gateway_tonic_example::pb::chat_client::ChatClient;
use tower_ai_gateway_tonic_example::pb::chat_server::ChatServer;
use tower_ai_gateway_tonic_example::pb::ChatRequest;
use tower_ai_gateway_tonic_example::ChatService;

/// A server on a free loopback port, and a client connected to it.
async fn connect() -> ChatClient<tonic::transport::Channel> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ChatServer::new(ChatService::demo().unwrap()))
            .serve_with_incoming(incoming),
    );
    ChatClient::connect(format!("http://{addr}")).await.unwrap()
}

fn request(model: &str) -> ChatRequest {
    ChatRequest {
        model: model.into(),
        prompt: "Say hello".into(),
        max_tokens: 8,
    }
}

#[tokio::test]
async fn unary_chat_is_metered() {
    let mut client = connect().await;
    let reply = client
        .complete(request("openai/gpt-4o-mini"))
        .await
        .unwrap()
        .into_inner();
    assert!(reply.id.starts_with("gen-"), "{reply:?}");
    assert_eq!(reply.model, "openai/gpt-4o-mini");
    assert!(!reply.provider.is_empty());
    assert!(!reply.content.is_empty());
    let usage = reply.usage.expect("usage");
    assert_eq!(usage.completion_tokens, 8);
    assert!(usage.cost > 0.0, "{usage:?}");
}

#[tokio::test]
async fn streamed_chat_ends_with_the_usage() {
    let mut client = connect().await;
    let mut stream = client
        .stream(request("anthropic/claude-sonnet-4.5"))
        .await
        .unwrap()
        .into_inner();
    let mut text = String::new();
    let mut last = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        text.push_str(&chunk.content);
        if chunk.usage.is_some() {
            last = chunk.usage;
        }
    }
    assert!(!text.is_empty());
    let usage = last.expect("the last chunk carries the usage");
    assert_eq!(usage.completion_tokens, 8);
    assert!(usage.cost > 0.0, "{usage:?}");
}

#[tokio::test]
async fn gateway_errors_become_grpc_statuses() {
    let mut client = connect().await;
    let status = client
        .complete(request("nobody/nothing"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("nobody/nothing"), "{status:?}");
}
