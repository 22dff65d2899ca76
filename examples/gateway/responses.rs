//! The OpenAI Responses API routes (`/api/v1/responses`, `/v1/responses`): the stack behind
//! `ResponsesLayer`, with the same auth and request metrics as chat.

use axum::extract::{Request, State};
use axum::routing::post;
use axum::Router;
use tower::{Layer, ServiceExt};
use tower_ai_gateway::responses::ResponsesLayer;

use super::{serve_on, AppState, Authed, Stack};

/// The Responses routes, served by `state.stack` behind a `ResponsesLayer`.
pub(super) fn routes(state: &AppState) -> Router<AppState> {
    let svc = ResponsesLayer::new()
        .body_limit(state.body_limit)
        .layer(state.stack.clone());
    let stack = Stack::new(ServiceExt::<Request>::map_response(svc, |res| {
        res.map(axum::body::Body::new)
    }));
    let handler = move |route: &'static str| {
        let stack = stack.clone();
        move |State(state): State<AppState>, _: Authed, req: Request| {
            let stack = stack.clone();
            async move { serve_on(&state, stack, route, req).await }
        }
    };
    Router::new()
        .route("/api/v1/responses", post(handler("/api/v1/responses")))
        .route("/v1/responses", post(handler("/v1/responses")))
}
