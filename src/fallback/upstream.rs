//! Building the upstream request and sanitising what comes back.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{HeaderMap, HeaderName, Request};
use http_body_util::Full;
use smallvec::SmallVec;

use super::layer::{Config, NEVER_FORWARD};
use super::policy::AttemptError;
use crate::catalog::{ProviderCall, Secret};
use crate::route::{Candidate, Route, ShortString};
use crate::wire::{Wire, CALLER_HEADERS_READ};

/// The caller's headers, as the attempts of a request need them.
pub(crate) enum CallerHeaders {
    /// The caller's map, as it came: the first attempt built takes it for its upstream headers.
    Map(HeaderMap),
    /// The values the attempts may forward, cloned from the caller's map by the first attempt
    /// built (a clone of a parsed value shares its bytes), in the map's order: each with the
    /// index of its name in the allow-list followed by [`CALLER_HEADERS_READ`]. Usually none,
    /// one or two (curl's `user-agent` and `accept`).
    Kept(SmallVec<[(u32, HeaderValue); 2]>),
}

impl CallerHeaders {
    /// The map to build an attempt's headers in: the caller's map, emptied once the values the
    /// attempts may forward are cloned from it (the first attempt built), else a new map.
    fn take_map(&mut self, forward: &[HeaderName]) -> HeaderMap {
        // Moved out (an empty list of kept values in its place), not swapped for an empty map
        // that would only be dropped.
        match std::mem::replace(self, CallerHeaders::Kept(SmallVec::new())) {
            CallerHeaders::Map(mut map) => {
                *self = CallerHeaders::Kept(kept_values(&map, forward));
                map.clear();
                map
            }
            kept => {
                *self = kept;
                HeaderMap::new()
            }
        }
    }

    /// The values the attempts may forward (none before [`CallerHeaders::take_map`]).
    fn kept(&self) -> &[(u32, HeaderValue)] {
        match self {
            CallerHeaders::Kept(kept) => kept,
            CallerHeaders::Map(_) => &[],
        }
    }
}

/// Clones of the values of `map` that an attempt may forward: each with the index of its name in
/// `forward` followed by [`CALLER_HEADERS_READ`], in the map's order.
fn kept_values(map: &HeaderMap, forward: &[HeaderName]) -> SmallVec<[(u32, HeaderValue); 2]> {
    let mut kept = SmallVec::new();
    for (name, v) in map.iter() {
        let i = match forward.iter().position(|f| f == name) {
            Some(i) => i,
            None => match CALLER_HEADERS_READ.iter().position(|r| r == name) {
                Some(r) => forward.len() + r,
                None => continue,
            },
        };
        kept.push((i as u32, v.clone()));
    }
    kept
}

/// The request for one candidate: `POST {base_url}{path}` (the wire's path unless `path` names
/// another: `/embeddings`, `/completions`), `body` (already in the attempt's wire format), the
/// allowed caller headers and those `wire` forwards, the provider's extra headers, the wire's
/// required headers, then the provider's credentials. The first attempt built builds its headers
/// in the caller's map.
pub(crate) fn build_request(
    route: &Route,
    c: &Candidate,
    caller: &mut CallerHeaders,
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
    let forward = &config.forward[..];
    let map = caller.take_map(forward);
    let caller = caller.kept();
    let name = |i: u32| {
        let i = i as usize;
        forward
            .get(i)
            .unwrap_or_else(|| &CALLER_HEADERS_READ[i - forward.len()])
    };
    let mut req = Request::new(Full::new(Bytes::from(body)));
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = uri;
    *req.headers_mut() = map;
    let headers = req.headers_mut();
    // The values of one name keep their order.
    for (i, v) in caller {
        if (*i as usize) < forward.len() {
            headers.append(name(*i).clone(), v.clone());
        }
    }
    wire.forward_caller_headers(caller.iter().map(|(i, v)| (name(*i), v)), headers);
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
const PASSED_RESPONSE_HEADERS: [HeaderName; 2] = [header::CONTENT_TYPE, header::CONTENT_ENCODING];

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

/// Cleans a provider's response headers and reads its request id, in one pass over them: only
/// [`PASSED_RESPONSE_HEADERS`] stay, and not even those when a value of theirs mentions the
/// provider's key. Returns the provider's request id: the value of the first of
/// [`REQUEST_ID_HEADERS`] that names one of at most 200 bytes of visible ASCII (so a record never
/// holds a provider's garbage).
///
/// A provider sends a dozen headers or more (rate limits, cookies, ids) and keeps one or two:
/// draining them all and putting back what stays hashes two names, where removing the others
/// would hash each of them (and looking the ids up, seven more).
pub(crate) fn take_response_headers(
    headers: &mut HeaderMap,
    secret: Option<&Secret>,
) -> Option<ShortString> {
    if headers.is_empty() {
        return None;
    }
    let key = secret
        .map(|s| s.expose().as_bytes())
        .filter(|k| !k.is_empty());
    // What stays, with whether a value of its name leaks the key (then none of them stays).
    let mut kept: SmallVec<[(HeaderName, HeaderValue, bool); 2]> = SmallVec::new();
    let mut id: Option<(usize, HeaderValue)> = None;
    let mut name: Option<HeaderName> = None;
    for (first, value) in headers.drain() {
        // Further values of a name come without it.
        let is_first = first.is_some();
        if let Some(n) = first {
            name = Some(n);
        }
        let Some(n) = &name else { continue };
        if PASSED_RESPONSE_HEADERS.contains(n) {
            let leaks = key.is_some_and(|k| contains(value.as_bytes(), k));
            kept.push((n.clone(), value, leaks));
        } else if is_first {
            let rank = REQUEST_ID_HEADERS.iter().position(|r| r == n);
            if let Some(rank) = rank.filter(|r| id.as_ref().is_none_or(|(best, _)| r < best)) {
                if request_id(&value).is_some() {
                    id = Some((rank, value));
                }
            }
        }
    }
    let leaked: SmallVec<[HeaderName; 2]> =
        kept.iter().filter(|k| k.2).map(|k| k.0.clone()).collect();
    for (n, value, _) in kept {
        if !leaked.contains(&n) {
            headers.append(n, value);
        }
    }
    id.and_then(|(_, v)| request_id(&v).map(ShortString::from))
}

/// A request id header's value, trimmed, if it is one a record may hold.
fn request_id(value: &HeaderValue) -> Option<&str> {
    let v = value.to_str().ok()?.trim();
    (!v.is_empty() && v.len() <= 200).then_some(v)
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The two passes [`take_response_headers`] does in one: every header but the passed ones
    /// removed, then the passed ones that leak the key; the id looked up name by name.
    fn reference(headers: &mut HeaderMap, secret: Option<&Secret>) -> Option<String> {
        let id = REQUEST_ID_HEADERS.iter().find_map(|name| {
            let v = headers.get(name)?.to_str().ok()?.trim();
            (!v.is_empty() && v.len() <= 200).then(|| v.to_owned())
        });
        remove_where(headers, |k| !PASSED_RESPONSE_HEADERS.contains(k));
        if let Some(key) = secret
            .map(|s| s.expose().as_bytes())
            .filter(|k| !k.is_empty())
        {
            let leaking: Vec<HeaderName> = headers
                .iter()
                .filter(|(_, v)| contains(v.as_bytes(), key))
                .map(|(k, _)| k.clone())
                .collect();
            for k in leaking {
                headers.remove(k);
            }
        }
        id
    }

    /// Sorted (name, value) pairs: the order of a map's names is not part of its meaning.
    fn pairs(h: &HeaderMap) -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<_> = h
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
            .collect();
        v.sort();
        v
    }

    const NAMES: [&str; 10] = [
        "content-type",
        "content-encoding",
        "x-request-id",
        "request-id",
        "cf-ray",
        "x-amzn-requestid",
        "set-cookie",
        "server",
        "x-ratelimit-remaining-requests",
        "openai-organization",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn one_pass_is_the_two_passes(
            headers in proptest::collection::vec(
                (0..NAMES.len(), proptest::sample::select(vec![
                    "application/json", "gzip", "req_42", "", "  ", "sk-secret-1", "a sk-secret-1 b",
                    "8f00ray-IAD", "\u{e9}t\u{e9}",
                ]), 0usize..3),
                0..12,
            ),
            long in proptest::bool::ANY,
            with_secret in proptest::bool::ANY,
        ) {
            let mut map = HeaderMap::new();
            for (name, value, pad) in headers {
                let mut value = value.to_owned();
                if long && name == 2 {
                    value = "r".repeat(199 + pad);
                }
                let Ok(value) = HeaderValue::from_str(&value) else { continue };
                map.append(HeaderName::from_static(NAMES[name]), value);
            }
            let secret = with_secret.then(|| Secret::new("sk-secret-1"));
            let mut expected = map.clone();
            let id = reference(&mut expected, secret.as_ref());
            let got = take_response_headers(&mut map, secret.as_ref());
            prop_assert_eq!(got.as_deref(), id.as_deref());
            prop_assert_eq!(pairs(&map), pairs(&expected));
        }
    }

    #[test]
    fn the_most_specific_valid_id_wins() {
        let mut map = HeaderMap::new();
        map.append("cf-ray", HeaderValue::from_static("ray-1"));
        map.append("x-request-id", HeaderValue::from_static("   "));
        map.append("request-id", HeaderValue::from_static("req-2"));
        map.append("content-type", HeaderValue::from_static("application/json"));
        map.append("server", HeaderValue::from_static("cloudflare"));
        let id = take_response_headers(&mut map, None);
        assert_eq!(id.as_deref(), Some("req-2"));
        assert_eq!(
            pairs(&map),
            [("content-type".into(), b"application/json".to_vec())]
        );
    }
}
