//! Building the upstream request and sanitising what comes back.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, HeaderName, Request};
use http_body_util::Full;

use super::layer::{Config, NEVER_FORWARD};
use super::policy::AttemptError;
use crate::catalog::{ProviderCall, Secret};
use crate::route::{Candidate, Route};
use crate::wire::Wire;

/// The request for one candidate: `POST {base_url}{path}` (the wire's path unless `path` names
/// another: `/embeddings`, `/completions`), `body` (already in the attempt's wire format), the allowed caller headers and those `wire` forwards, the provider's extra headers,
/// the wire's required headers, then the provider's credentials.
pub(crate) fn build_request(
    route: &Route,
    c: &Candidate,
    caller: &HeaderMap,
    config: &Config,
    (wire, path): (Wire, Option<&str>),
    body: Vec<u8>,
) -> Result<Request<Full<Bytes>>, AttemptError> {
    let e = route.endpoint(c);
    let p = route.provider(c);
    let owned;
    let call = match route.call(c) {
        Some(call) => call,
        None => {
            owned = ProviderCall::new(p);
            &owned
        }
    };
    let uri = match (path, &call.uri) {
        (None, Some(uri)) => uri.clone(),
        _ => {
            let base = p.base_url.as_deref().ok_or(AttemptError::NotCallable)?;
            let path = path.unwrap_or(p.wire_format.path());
            p.uri(base, path).ok_or(AttemptError::NotCallable)?
        }
    };
    let mut req = Request::new(Full::new(Bytes::from(body)));
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = uri;
    let headers = req.headers_mut();
    // One pass over the caller's (few) headers rather than a hashed lookup per forwarded name;
    // the values of one name keep their order.
    for (name, v) in caller {
        if config.forward.contains(name) {
            headers.append(name.clone(), v.clone());
        }
    }
    wire.forward_caller_headers(caller, headers);
    for (k, v) in &p.extra_headers {
        headers.insert(k.clone(), v.clone());
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    wire.required_headers(headers);
    config.policy.prepare(&mut req, e, p);
    // Whatever the policy or the extra headers did, credential-bearing and hop-by-hop headers are
    // only ever what this layer sets.
    let headers = req.headers_mut();
    remove_where(headers, |k| {
        k != header::CONTENT_TYPE
            && NEVER_FORWARD.contains(&k.as_str())
            && !p.extra_headers.iter().any(|(e, _)| e == k)
    });
    match &call.auth {
        Ok(Some((name, value))) => {
            headers.insert(name.clone(), value.clone());
        }
        Ok(None) => {}
        Err(()) => return Err(AttemptError::NotCallable),
    }
    Ok(req)
}

/// Removes the headers whose name satisfies `drop`. A message has a handful of headers: scanning
/// them is much cheaper than removing every listed name, which parses and hashes each one.
fn remove_where(headers: &mut HeaderMap, drop: impl Fn(&HeaderName) -> bool) {
    if headers.keys().any(&drop) {
        let names: Vec<HeaderName> = headers.keys().filter(|k| drop(k)).cloned().collect();
        for k in names {
            headers.remove(k);
        }
    }
}

/// The provider response headers that reach the caller; every other one (`server`,
/// `openai-organization`, `x-ratelimit-*`, request ids, cookies, hop-by-hop and length headers) is
/// dropped. The gateway adds its own (`X-Generation-Id`, `Retry-After` it computed) after this.
const PASSED_RESPONSE_HEADERS: &[&str] = &["content-type", "content-encoding"];

/// Response headers the provider names its request id with, most specific first (constants: a
/// `&str` name is parsed on every lookup).
const REQUEST_ID_HEADERS: [HeaderName; 7] = [
    HeaderName::from_static("x-request-id"),
    HeaderName::from_static("request-id"),
    HeaderName::from_static("openai-request-id"),
    HeaderName::from_static("x-amzn-requestid"),
    HeaderName::from_static("apim-request-id"),
    HeaderName::from_static("x-goog-request-id"),
    HeaderName::from_static("cf-ray"),
];

/// The provider's request id from its response headers, if it names one (at most 200 bytes of
/// visible ASCII, so a record never holds a provider's garbage).
pub(crate) fn upstream_request_id(headers: &HeaderMap) -> Option<String> {
    if headers.is_empty() {
        return None;
    }
    REQUEST_ID_HEADERS.iter().find_map(|name| {
        let v = headers.get(name)?.to_str().ok()?.trim();
        (!v.is_empty() && v.len() <= 200).then(|| v.to_owned())
    })
}

/// Response headers: only [`PASSED_RESPONSE_HEADERS`] pass, and not even those when they mention
/// the provider's key.
pub(crate) fn clean_response_headers(headers: &mut HeaderMap, secret: Option<&Secret>) {
    remove_where(headers, |k| !PASSED_RESPONSE_HEADERS.contains(&k.as_str()));
    if let Some(s) = secret {
        let key = s.expose().as_bytes();
        if !key.is_empty() {
            let leaking: Vec<header::HeaderName> = headers
                .iter()
                .filter(|(_, v)| contains(v.as_bytes(), key))
                .map(|(k, _)| k.clone())
                .collect();
            for k in leaking {
                headers.remove(k);
            }
        }
    }
}

/// The upstream error's `error.message` (or top-level `message`), if it is a short string that
/// does not contain the provider's key. Never the raw body.
pub(crate) fn safe_message(body: &[u8], secret: Option<&Secret>) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let m = v
        .get("error")
        .and_then(|e| e.get("message"))
        .or_else(|| v.get("message"))?
        .as_str()?;
    if m.is_empty() || m.len() > 1000 {
        return None;
    }
    if let Some(s) = secret {
        let key = s.expose();
        if !key.is_empty() && (m.contains(key) || looks_like_key_fragment(m, key)) {
            return None;
        }
    }
    Some(m.to_string())
}

/// A message that quotes a long enough piece of the key (providers often echo `sk-…abcd`).
fn looks_like_key_fragment(m: &str, key: &str) -> bool {
    const WINDOW: usize = 8;
    let k = key.as_bytes();
    k.len() >= WINDOW && k.windows(WINDOW).any(|w| contains(m.as_bytes(), w))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}
