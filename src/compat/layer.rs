//! [`MessagesLayer`] / [`Messages`]: an Anthropic Messages endpoint in front of a chat-completions
//! service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use serde_json::Value;
use tower_layer::Layer;
use tower_service::Service;

use crate::error::{ErrorType, GatewayError};
use crate::wire::messages::{
    anthropic_status, chat_body, chat_to_message, error_to_anthropic, messages_to_chat,
    split_tools, MessagesWire, OriginalMessages, SseTranslator,
};
use crate::BoxError;

/// Default request-body limit of [`MessagesLayer`]: 10 MiB.
pub const DEFAULT_MESSAGES_BODY_LIMIT: usize = 10 * 1024 * 1024;

/// Default limit for a non-streamed inner response that is buffered for translation: 64 MiB.
const RESPONSE_LIMIT: usize = 64 * 1024 * 1024;

/// Layer that serves Anthropic Messages requests with an inner chat-completions service.
///
/// See the [module docs](super) for an example.
#[derive(Clone)]
#[must_use]
pub struct MessagesLayer {
    body_limit: usize,
    max_tokens_cap: Option<MaxTokensCap>,
}

/// See [`MessagesLayer::max_tokens_cap`].
type MaxTokensCap = Arc<dyn Fn(&str) -> Option<u64> + Send + Sync>;

impl fmt::Debug for MessagesLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessagesLayer")
            .field("body_limit", &self.body_limit)
            .field("max_tokens_cap", &self.max_tokens_cap.is_some())
            .finish()
    }
}

impl Default for MessagesLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl MessagesLayer {
    /// A layer with the default body limit ([`DEFAULT_MESSAGES_BODY_LIMIT`]).
    pub fn new() -> Self {
        MessagesLayer {
            body_limit: DEFAULT_MESSAGES_BODY_LIMIT,
            max_tokens_cap: None,
        }
    }

    /// Clamps `max_tokens` to `cap(model)` when that is smaller.
    ///
    /// Anthropic clients send `max_tokens` as a ceiling (Claude Code always asks for 32000), while
    /// chat-completions routing treats it as a requirement and skips endpoints with a smaller
    /// output limit. A gateway can pass the largest output limit among a model's endpoints here
    /// so that such models stay usable.
    pub fn max_tokens_cap(
        mut self,
        cap: impl Fn(&str) -> Option<u64> + Send + Sync + 'static,
    ) -> Self {
        self.max_tokens_cap = Some(Arc::new(cap));
        self
    }

    /// Requests with a larger body are answered 413 (in Anthropic's error shape).
    pub fn body_limit(mut self, limit: usize) -> Self {
        self.body_limit = limit;
        self
    }
}

impl<S> Layer<S> for MessagesLayer {
    type Service = Messages<S>;

    fn layer(&self, inner: S) -> Messages<S> {
        Messages {
            inner,
            config: self.clone(),
        }
    }
}

/// Middleware that translates an Anthropic Messages request for an inner chat-completions
/// service, and its answer (JSON, SSE or error) back. Built by [`MessagesLayer`].
#[derive(Clone, Debug)]
pub struct Messages<S> {
    inner: S,
    config: MessagesLayer,
}

impl<S> Messages<S> {
    /// Wraps `inner` with the default body limit.
    pub fn new(inner: S) -> Self {
        MessagesLayer::new().layer(inner)
    }
}

/// The response body of [`Messages`]: a complete JSON body, translated SSE, or an answer
/// already on the Messages wire, passed through.
pub type MessagesBody<B> = crate::body::TranslatedBody<B, SseTranslator>;

/// A JSON response with `status`.
fn json_response<B>(status: StatusCode, body: &Value) -> Response<MessagesBody<B>> {
    let mut res = Response::new(MessagesBody::full(Bytes::from(body.to_string())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// A [`GatewayError`] as an Anthropic-shaped error response.
pub fn anthropic_error_response<B>(e: &GatewayError) -> Response<MessagesBody<B>> {
    json_response(
        e.status(),
        &error_to_anthropic(e.status().as_u16(), &e.to_json()),
    )
}

/// The future of [`Messages`].
pub type MessagesFuture<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<MessagesBody<B>>, E>> + Send>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Messages<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    ReqBody: Body<Data = Bytes> + From<Bytes> + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<MessagesBody<ResBody>>;
    type Error = S::Error;
    type Future = MessagesFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The clone is the one that was driven to readiness.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limit = self.config.body_limit;
        let cap = self.config.max_tokens_cap.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let too_large = || anthropic_error_response(&GatewayError::payload_too_large(limit));
            let declared = body.size_hint().exact().or(body.size_hint().upper());
            if declared.is_some_and(|n| n > limit as u64) {
                return Ok(too_large());
            }
            let bytes = match Limited::new(body, limit).collect().await {
                Ok(c) => c.to_bytes(),
                Err(e) => {
                    if e.downcast_ref::<http_body_util::LengthLimitError>()
                        .is_some()
                    {
                        return Ok(too_large());
                    }
                    let e = GatewayError::new(
                        ErrorType::InvalidRequest,
                        format!("could not read the request body: {e}"),
                    );
                    return Ok(anthropic_error_response(&e));
                }
            };
            // The tools' schemas (most of a Claude Code request) are translated as raw JSON.
            let translated = split_tools(&bytes)
                .map_err(|e| {
                    GatewayError::new(
                        ErrorType::InvalidRequest,
                        format!("the request body is not valid JSON: {e}"),
                    )
                })
                .and_then(|(v, tools)| Ok((messages_to_chat(&v)?, tools)));
            let (mut chat, tools) = match translated {
                Ok(c) => c,
                Err(e) => return Ok(anthropic_error_response(&e)),
            };
            let model = chat
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let mut original = OriginalMessages::new(bytes);
            if let Some(cap) = cap.as_deref().and_then(|f| f(&model)) {
                if chat
                    .get("max_tokens")
                    .and_then(Value::as_u64)
                    .is_some_and(|m| m > cap)
                {
                    chat["max_tokens"] = Value::from(cap);
                    original = original.with_max_tokens(cap);
                }
            }
            parts.extensions.insert(original);
            let body = Bytes::from(chat_body(&chat, tools.as_deref()));
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            parts.headers.remove(header::TRANSFER_ENCODING);
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
            let res = inner
                .call(Request::from_parts(parts, ReqBody::from(body)))
                .await?;
            Ok(translate_response(res, model).await)
        })
    }
}

/// Translates the inner service's response: SSE is wrapped, JSON is buffered and rewritten.
async fn translate_response<B>(res: Response<B>, model: String) -> Response<MessagesBody<B>>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = res.into_parts();
    if parts.extensions.get::<MessagesWire>().is_some() {
        return Response::from_parts(parts, MessagesBody::pass(body));
    }
    if parts.status.is_success() && is_sse_parts(&parts) {
        parts.headers.remove(header::CONTENT_LENGTH);
        let body = MessagesBody::translated(body, SseTranslator::new(model));
        return Response::from_parts(parts, body);
    }
    let status = parts.status;
    let bytes = match Limited::new(body, RESPONSE_LIMIT).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            let e = GatewayError::new(
                ErrorType::ProviderUnavailable,
                format!("could not read the upstream response: {e}"),
            );
            let mut out = anthropic_error_response(&e);
            out.extensions_mut().extend(parts.extensions);
            return out;
        }
    };
    let parsed = serde_json::from_slice::<Value>(&bytes).ok();
    let (status, out) = match parsed {
        Some(v) if status.is_success() && v.get("error").is_none_or(Value::is_null) => {
            (status, chat_to_message(&v))
        }
        Some(v) => {
            let status = if status.is_success() {
                // An error in a 200 body: use its code.
                v.get("error")
                    .and_then(|e| e.get("code"))
                    .and_then(Value::as_u64)
                    .and_then(|c| u16::try_from(c).ok())
                    .and_then(|c| StatusCode::from_u16(c).ok())
                    .filter(|c| c.is_client_error() || c.is_server_error())
                    .unwrap_or(StatusCode::BAD_GATEWAY)
            } else {
                status
            };
            let mut e = error_to_anthropic(status.as_u16(), &v);
            // Past routing the error has a generation id: it is the request id.
            if let Some(id) = parts
                .headers
                .get("x-generation-id")
                .and_then(|v| v.to_str().ok())
            {
                e["request_id"] = Value::from(id);
            }
            (anthropic_status(status, &e), e)
        }
        None => {
            let status = if status.is_success() {
                StatusCode::BAD_GATEWAY
            } else {
                status
            };
            let msg = if status == StatusCode::BAD_GATEWAY {
                "the upstream response was not valid JSON"
            } else {
                "upstream error"
            };
            (
                status,
                error_to_anthropic(
                    status.as_u16(),
                    &serde_json::json!({"error": {"message": msg}}),
                ),
            )
        }
    };
    let body = Bytes::from(out.to_string());
    parts.status = status;
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    Response::from_parts(parts, MessagesBody::full(body))
}

fn is_sse_parts(parts: &http::response::Parts) -> bool {
    parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}
