//! `/api/v1/embeddings` (and `/v1/embeddings`) and the legacy `/api/v1/completions` (and
//! `/v1/completions`): the chat stack as it is — routing, price caps, data policies, fallback and
//! metering apply to embeddings requests (an `input` instead of `messages`) and to completions
//! requests (a `prompt`; ModelRouting answers 400 when a `/completions` body has none), which
//! ProviderFallback sends to the provider's `/embeddings` or `/completions`.

use axum::extract::{Request, State};
use axum::routing::post;
use axum::Router;

use super::{serve_on, AppState, Authed};

/// The embeddings and legacy completions routes, served by `state.stack`.
pub(super) fn routes() -> Router<AppState> {
    let handler = |route: &'static str| {
        move |State(state): State<AppState>, _: Authed, req: Request| async move {
            let stack = state.stack.clone();
            serve_on(&state, stack, route, req).await
        }
    };
    Router::new()
        .route("/api/v1/embeddings", post(handler("/api/v1/embeddings")))
        .route("/v1/embeddings", post(handler("/v1/embeddings")))
        .route("/api/v1/completions", post(handler("/api/v1/completions")))
        .route("/v1/completions", post(handler("/v1/completions")))
}
