use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http::Extensions;
use http::{Request, Response};
use http_body::Body;
use http_body_util::Full;
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower_service::Service;

use super::layer::Config;
use super::plan::{plan, session_key, Session};
use super::sticky::sticky_key;
use super::sticky_store::StickyLoad;
use crate::body::{GatewayBody, Gather};
use crate::catalog::Catalog;
use crate::error::GatewayError;
use crate::route::{RequestView, Route, ServedBy};

pin_project! {
    /// Response future for [`ModelRouting`](super::ModelRouting).
    pub struct ResponseFuture<B, S, F>
    where
        B: Body,
        B::Error: Into<crate::BoxError>,
    {
        #[pin]
        state: State<B, S, F>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<B, S, F>
    where
        B: Body,
        B::Error: Into<crate::BoxError>,
    {
        Collecting {
            #[pin]
            body: B,
            gather: Gather,
            parts: Option<Parts>,
            inner: Option<S>,
            config: Arc<Config>,
        },
        Loading {
            load: StickyLoad,
            pending: Option<Pending<S>>,
        },
        // Inline, not boxed, though this state is built by value and moved into place: a box costs
        // an allocation per request, more than the moves (measured with every layer inside).
        Calling {
            #[pin]
            future: F,
            sticky: Option<StickyUpdate>,
        },
        Rejected {
            error: Option<GatewayError>,
        },
    }
}

/// A parsed request waiting for its session's shared sticky endpoints.
pub(crate) struct Pending<S> {
    config: Arc<Config>,
    parts: Parts,
    inner: S,
    bytes: Bytes,
    session: u64,
}

/// What to record when the response succeeds.
pub(crate) struct StickyUpdate {
    config: Arc<Config>,
    catalog: Catalog,
    session: Session,
    /// A declared session (not the first-messages hash): also saved in the shared store.
    shared: bool,
}

impl StickyUpdate {
    fn record<B>(self, res: &Response<B>) {
        if !res.status().is_success() {
            return;
        }
        let Some(served) = res.extensions().get::<ServedBy>() else {
            return;
        };
        let key = &served.endpoint;
        if let Session::Implicit(_) = self.session {
            if !self.config.sticky_implicit {
                return;
            }
            // Without an explicit session, stick only where caching pays (<https://openrouter.ai/docs/guides/best-practices/prompt-caching>).
            let eligible = self
                .catalog
                .endpoints(key.model())
                .iter()
                .find(|e| e.tag == key.tag())
                .is_some_and(super::plan::cache_eligible);
            if !eligible {
                return;
            }
        }
        self.config.sticky.put(
            sticky_key(self.config.sticky.seed, self.session.id(), key.model()),
            key.clone(),
            Instant::now(),
        );
        if let (true, Some(store)) = (self.shared, &self.config.sticky_store) {
            store.save(self.session.id(), key, self.config.sticky.ttl());
        }
    }
}

impl<B, S, F> ResponseFuture<B, S, F>
where
    B: Body,
    B::Error: Into<crate::BoxError>,
{
    pub(crate) fn rejected(error: GatewayError) -> Self {
        ResponseFuture {
            state: State::Rejected { error: Some(error) },
        }
    }

    pub(crate) fn collecting(body: B, parts: Parts, inner: S, config: Arc<Config>) -> Self {
        ResponseFuture {
            state: State::Collecting {
                body,
                gather: Gather::new(config.body_limit),
                parts: Some(parts),
                inner: Some(inner),
                config,
            },
        }
    }
}

impl<B, S, F, ResBody, E> ResponseFuture<B, S, F>
where
    B: Body,
    B::Error: Into<crate::BoxError>,
    S: Service<Request<Full<Bytes>>, Response = Response<ResBody>, Error = E, Future = F>,
{
    /// Parses the body; then loads the session's shared sticky endpoints, or routes at once.
    fn start(config: Arc<Config>, mut parts: Parts, inner: S, bytes: Bytes) -> State<B, S, F> {
        let bytes = match prepare(&config, &mut parts, bytes) {
            Ok(bytes) => bytes,
            Err(e) => return State::Rejected { error: Some(e) },
        };
        let shared = config
            .sticky_store
            .as_ref()
            .and_then(|store| Some((store, session_key(view(&parts)?, &parts.headers)?)));
        match shared {
            Some((store, session)) => State::Loading {
                load: store.load(session.id()),
                pending: Some(Pending {
                    config,
                    parts,
                    inner,
                    bytes,
                    session: session.id(),
                }),
            },
            _ => Self::route(config, parts, inner, bytes),
        }
    }

    /// Plans the route of a parsed request and calls `inner` with it.
    fn route(config: Arc<Config>, mut parts: Parts, mut inner: S, bytes: Bytes) -> State<B, S, F> {
        // Only a shared store keeps declared sessions apart from the hashed ones.
        let shared = config.sticky_store.is_some()
            && view(&parts)
                .and_then(|v| session_key(v, &parts.headers))
                .is_some();
        let planned = plan(
            &config,
            &parts.headers,
            Instant::now(),
            &mut parts.extensions,
        );
        match planned {
            Ok(session) => {
                // Only a session needs the route's catalog (not loaded again: a reload may have
                // come since), so only then is the route looked up.
                let sticky = session.and_then(|session| {
                    let catalog = parts.extensions.get::<Route>()?.catalog().clone();
                    Some(StickyUpdate {
                        config: config.clone(),
                        catalog,
                        session,
                        shared,
                    })
                });
                let req = Request::from_parts(parts, Full::new(bytes));
                State::Calling {
                    future: inner.call(req),
                    sticky,
                }
            }
            Err(e) => State::Rejected { error: Some(e) },
        }
    }
}

impl<B, S, F, ResBody, E> Future for ResponseFuture<B, S, F>
where
    B: Body,
    B::Error: Into<crate::BoxError>,
    S: Service<Request<Full<Bytes>>, Response = Response<ResBody>, Error = E, Future = F>,
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<GatewayBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Collecting {
                    body,
                    gather,
                    parts,
                    inner,
                    config,
                } => {
                    let gathered = ready!(gather.poll(body, cx));
                    let config = config.clone();
                    let bytes = match gathered {
                        Ok(bytes) => bytes,
                        Err(e) => {
                            let err = e.into_error(config.body_limit);
                            this.state.set(State::Rejected { error: Some(err) });
                            continue;
                        }
                    };
                    let (Some(parts), Some(inner)) = (parts.take(), inner.take()) else {
                        unreachable!("the collecting state is left exactly once");
                    };
                    this.state.set(Self::start(config, parts, inner, bytes));
                }
                StateProj::Loading { load, pending } => {
                    let found = ready!(load.as_mut().poll(cx));
                    let p = pending
                        .take()
                        .expect("the loading state is left exactly once");
                    let (sticky, now) = (&p.config.sticky, Instant::now());
                    for endpoint in found {
                        let key = sticky_key(sticky.seed, p.session, endpoint.model());
                        sticky.put(key, endpoint, now);
                    }
                    let mut parts = p.parts;
                    // Planned against the catalog of now: a reload may have come while loading.
                    if let Some(route) = parts.extensions.get_mut::<Route>() {
                        route.set_catalog(p.config.catalog.load());
                    }
                    let next = Self::route(p.config, parts, p.inner, p.bytes);
                    this.state.set(next);
                }
                StateProj::Calling { future, sticky } => {
                    let res = ready!(future.poll(cx))?;
                    if let Some(s) = sticky.take() {
                        s.record(&res);
                    }
                    return Poll::Ready(Ok(res.map(GatewayBody::new)));
                }
                StateProj::Rejected { error } => {
                    let e = error.take().expect("polled after completion");
                    return Poll::Ready(Ok(e.into_response()));
                }
            }
        }
    }
}

/// The buffered body with the preset it names merged in (see
/// [`Presets::apply`](crate::route::Presets::apply); the preset's name goes in the extensions);
/// its [`Route`] begun in the extensions with the body parsed into its view.
fn prepare(config: &Config, parts: &mut Parts, bytes: Bytes) -> Result<Bytes, GatewayError> {
    // Parsed first: a body that names no preset (the usual) is not searched for one. A body the
    // parse refuses may still be completed by its preset: it goes the long way, as one that
    // names a preset does (the preset merged, then parsed).
    // Matched, not chained through `Option` adapters: each adapter moves the (large) view again.
    // Read in place (not returned by value): the view is large. Dropped where it lies, at the
    // end of its block (`drop` would move it first).
    let begun = {
        let mut parsed = Ok(RequestView::default());
        RequestView::parse_in_place(&bytes, &mut parsed);
        match &mut parsed {
            Ok(view) if !view.names_preset() => {
                Some(begin(config, &mut parts.extensions, &bytes, view))
            }
            _ => None,
        }
    };
    let (bytes, completions) = match begun {
        Some(completions) => (bytes, completions),
        None => {
            let bytes = match config.presets.apply(&bytes)? {
                Some((merged, name)) => {
                    parts.extensions.insert(name);
                    merged
                }
                None => bytes,
            };
            let completions = {
                let mut view = RequestView::parse(&bytes)?;
                begin(config, &mut parts.extensions, &bytes, &mut view)
            };
            (bytes, completions)
        }
    };
    if legacy_path(&parts.uri) && !completions {
        return Err(GatewayError::invalid_request(
            "prompt",
            "a `prompt` (a string or an array of strings) is required by /completions",
        ));
    }
    Ok(bytes)
}

/// Puts a new [`Route`] for `body` into `extensions` (replacing any other), with `view` (parsed
/// from `body`) moved into it field by field, never whole (it is large); whether the request is a
/// legacy completions one.
fn begin(
    config: &Config,
    extensions: &mut Extensions,
    body: &Bytes,
    view: &mut RequestView<'_>,
) -> bool {
    let (catalog, balance) = (config.catalog.load(), config.balance.clone());
    extensions.remove::<Route>();
    // Built in its box (`insert` would move the large route in).
    let route = extensions.get_or_insert_with(|| Route::begin(body.clone(), catalog, balance));
    view.own_into(route.view_mut());
    view.completions
}

/// The view of the request's begun route.
fn view(parts: &Parts) -> Option<&RequestView<'static>> {
    parts.extensions.get::<Route>().map(Route::view)
}

/// A legacy completions path (`…/completions`, not `…/chat/completions`): its body must have a
/// `prompt`.
fn legacy_path(uri: &http::Uri) -> bool {
    let path = uri.path();
    path.ends_with("/completions") && !path.ends_with("/chat/completions")
}
