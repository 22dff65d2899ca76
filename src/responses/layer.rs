//! [`ResponsesLayer`] / [`Responses`]: an OpenAI Responses API endpoint in front of a
//! chat-completions service.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use serde_json::Value;
use tower_layer::Layer;
use tower_service::Service;

use crate::error::{ErrorType, GatewayError};
use crate::wire::responses::{
    chat_to_response, echo_fields, responses_to_chat, ResponsesSseTranslator,
};
use crate::BoxError;

/// Default request-body limit of [`ResponsesLayer`]: 10 MiB.
pub const DEFAULT_RESPONSES_BODY_LIMIT: usize = 10 * 1024 * 1024;

/// Limit for a non-streamed inner answer buffered for translation: 64 MiB.
const RESPONSE_LIMIT: usize = 64 * 1024 * 1024;

/// Layer that serves OpenAI Responses API requests with an inner chat-completions service.
///
/// See the [module docs](super) for an example.
#[derive(Clone, Debug)]
#[must_use]
pub struct ResponsesLayer {
    body_limit: usize,
}

impl Default for ResponsesLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponsesLayer {
    /// A layer with the default body limit ([`DEFAULT_RESPONSES_BODY_LIMIT`]).
    pub fn new() -> Self {
        ResponsesLayer {
            body_limit: DEFAULT_RESPONSES_BODY_LIMIT,
        }
    }

    /// Requests with a larger body are answered 413.
    pub fn body_limit(mut self, limit: usize) -> Self {
        self.body_limit = limit;
        self
    }
}

impl<S> Layer<S> for ResponsesLayer {
    type Service = Responses<S>;

    fn layer(&self, inner: S) -> Responses<S> {
        Responses {
            inner,
            body_limit: self.body_limit,
        }
    }
}

/// Middleware that translates a Responses API request for an inner chat-completions service,
/// and its answer (JSON or SSE) back; errors keep OpenRouter's envelope. Built by
/// [`ResponsesLayer`].
#[derive(Clone, Debug)]
pub struct Responses<S> {
    inner: S,
    body_limit: usize,
}

/// The response body of [`Responses`]: a complete JSON body, translated SSE, or an error
/// passed through.
pub type ResponsesBody<B> = crate::body::TranslatedBody<B, ResponsesSseTranslator>;

/// The future of [`Responses`].
pub type ResponsesFuture<B, E> =
    Pin<Box<dyn Future<Output = Result<Response<ResponsesBody<B>>, E>> + Send>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Responses<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    ReqBody: Body<Data = Bytes> + From<Bytes> + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<ResponsesBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponsesFuture<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        // The clone is the one that was driven to readiness.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limit = self.body_limit;
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let (chat, echo, model) = match translate_request(body, limit).await {
                Ok(t) => t,
                Err(e) => return Ok(e.into_response()),
            };
            let body = Bytes::from(chat.to_string());
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
            Ok(translate_response(res, model, echo).await)
        })
    }
}

/// Reads the Responses request (413 over `limit`) and translates it: the chat request, the
/// fields its answer echoes, and the requested model.
async fn translate_request<B>(body: B, limit: usize) -> Result<(Value, Value, String), GatewayError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let declared = body.size_hint().exact().or(body.size_hint().upper());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(GatewayError::payload_too_large(limit));
    }
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(GatewayError::payload_too_large(limit))
        }
        Err(e) => {
            return Err(GatewayError::new(
                ErrorType::InvalidRequest,
                format!("could not read the request body: {e}"),
            ))
        }
    };
    let req: Value = serde_json::from_slice(&bytes).map_err(|e| {
        GatewayError::new(
            ErrorType::InvalidRequest,
            format!("the request body is not valid JSON: {e}"),
        )
    })?;
    let chat = responses_to_chat(&req)?;
    let model = req
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    Ok((chat, echo_fields(&req), model))
}

/// Translates the inner service's answer: SSE is wrapped, a JSON completion is buffered and
/// rewritten, errors pass through in OpenRouter's envelope (an error inside a 200 body gets its
/// `code` as the status).
async fn translate_response<B>(
    res: Response<B>,
    model: String,
    echo: Value,
) -> Response<ResponsesBody<B>>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = res.into_parts();
    if !parts.status.is_success() {
        return Response::from_parts(parts, ResponsesBody::pass(body));
    }
    if is_sse(&parts) {
        parts.headers.remove(header::CONTENT_LENGTH);
        let body = ResponsesBody::translated(body, ResponsesSseTranslator::new(model, echo));
        return Response::from_parts(parts, body);
    }
    let out = match Limited::new(body, RESPONSE_LIMIT).collect().await {
        Ok(c) => match serde_json::from_slice::<Value>(&c.to_bytes()) {
            Ok(v) if v.get("error").is_none_or(Value::is_null) => {
                Ok((StatusCode::OK, chat_to_response(&v, &echo).to_string()))
            }
            Ok(v) => Err((in_band_status(&v), v.to_string())),
            Err(_) => Err(bad_gateway("the upstream response was not valid JSON")),
        },
        Err(e) => Err(bad_gateway(&format!(
            "could not read the upstream response: {e}"
        ))),
    };
    let (status, body) = out.unwrap_or_else(|e: (StatusCode, String)| e);
    let body = Bytes::from(body);
    parts.status = status;
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    Response::from_parts(parts, ResponsesBody::from(body))
}

/// 502 with an OpenRouter error body.
fn bad_gateway(message: &str) -> (StatusCode, String) {
    let e = GatewayError::new(ErrorType::ProviderUnavailable, message)
        .with_status(StatusCode::BAD_GATEWAY);
    (e.status(), e.to_json().to_string())
}

/// The status of an error found in a 200 body: its `code` when that is an error status, else 502.
fn in_band_status(v: &Value) -> StatusCode {
    v.get("error")
        .and_then(|e| e.get("code"))
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
        .filter(|c| c.is_client_error() || c.is_server_error())
        .unwrap_or(StatusCode::BAD_GATEWAY)
}

fn is_sse(parts: &http::response::Parts) -> bool {
    parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}
