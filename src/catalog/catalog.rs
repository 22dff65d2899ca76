use std::env;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::hash::FastMap;

use super::{Credentials, Endpoint, Model, Provider, ProviderCall};

/// Why a catalog could not be built. Every variant names the offending entry.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CatalogError {
    /// Two providers share a slug.
    DuplicateProvider(String),
    /// Two models share an id.
    DuplicateModel(String),
    /// A model lists the same endpoint tag twice.
    DuplicateEndpoint {
        /// Model id.
        model: String,
        /// Endpoint tag.
        tag: String,
    },
    /// An endpoint (or alias) names a model the catalog does not have.
    UnknownModel {
        /// The missing model id.
        model: String,
        /// The endpoint tag or alias that named it.
        referenced_by: String,
    },
    /// An endpoint's tag does not start with a known provider slug.
    UnknownProvider {
        /// Model id.
        model: String,
        /// Endpoint tag.
        tag: String,
    },
    /// A price is negative or out of range.
    InvalidPrice {
        /// `model <id>` or `endpoint <model>@<tag>`.
        entry: String,
        /// The pricing key, e.g. `prompt` or `overrides[0].completion`.
        field: String,
        /// The value as read.
        value: String,
    },
    /// An entry is malformed (empty id, bad header, …).
    Invalid {
        /// Which entry.
        entry: String,
        /// What is wrong.
        reason: String,
    },
    /// A provider's key is to be read from an environment variable that is not set.
    MissingCredential {
        /// Provider slug.
        provider: String,
        /// The variable name.
        var: String,
    },
    /// A catalog source could not be parsed.
    Parse {
        /// What was being read (a file name or a description).
        source_name: String,
        /// Where in the document (`models[3].pricing.prompt`), empty if unknown.
        path: String,
        /// What the parser said.
        message: String,
    },
}

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DuplicateProvider(s) => write!(f, "duplicate provider `{s}`"),
            Self::DuplicateModel(s) => write!(f, "duplicate model `{s}`"),
            Self::DuplicateEndpoint { model, tag } => {
                write!(f, "duplicate endpoint `{tag}` of model `{model}`")
            }
            Self::UnknownModel {
                model,
                referenced_by,
            } => write!(f, "`{referenced_by}` refers to unknown model `{model}`"),
            Self::UnknownProvider { model, tag } => write!(
                f,
                "endpoint `{tag}` of model `{model}`: no provider has the slug `{}`",
                tag.split('/').next().unwrap_or(tag)
            ),
            Self::InvalidPrice {
                entry,
                field,
                value,
            } => write!(f, "{entry}: invalid price `{field}` = `{value}`"),
            Self::Invalid { entry, reason } => write!(f, "{entry}: {reason}"),
            Self::MissingCredential { provider, var } => write!(
                f,
                "provider `{provider}`: environment variable `{var}` is not set"
            ),
            Self::Parse {
                source_name,
                path,
                message,
            } => {
                if path.is_empty() || path == "." {
                    write!(f, "{source_name}: {message}")
                } else {
                    write!(f, "{source_name}: at `{path}`: {message}")
                }
            }
        }
    }
}

impl std::error::Error for CatalogError {}

pub(crate) struct Inner {
    providers: Vec<Provider>,
    /// Per provider, in the same order: what every request to it carries.
    calls: Vec<ProviderCall>,
    provider_index: FastMap<String, u32>,
    models: Vec<Model>,
    /// Per model, in the same order: its id, shared by the routes and records that name it.
    model_ids: Vec<Arc<str>>,
    model_index: FastMap<String, u32>,
    endpoints: Vec<Endpoint>,
    endpoint_provider: Vec<u32>,
    /// Per endpoint, in the same order: its upstream model id, shared by the records of the
    /// requests it serves.
    upstream_models: Vec<Arc<str>>,
    ranges: Vec<(u32, u32)>,
    aliases: FastMap<String, String>,
}

/// Models, endpoints and providers: immutable once built, cheap to clone (an `Arc`).
///
/// A model's endpoints are contiguous, so [`Catalog::endpoints`] is one hash lookup and a slice —
/// O(endpoints of that model), never O(catalog).
///
/// ```
/// use tower_ai_gateway::catalog::{Catalog, Endpoint, Model, Provider, Usd};
///
/// let mut ep = Endpoint::new("acme/chat-1", "acme");
/// ep.pricing.prompt = Usd::parse("0.000001")?;
/// ep.context_length = 32_000;
/// let catalog = Catalog::builder()
///     .provider(Provider::new("acme", "Acme").base_url("https://api.acme.test/v1"))
///     .model(Model::new("acme/chat-1", "Acme Chat 1"))
///     .endpoint(ep)
///     .build()?;
/// assert_eq!(catalog.endpoints("acme/chat-1").len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Catalog {
    inner: Arc<Inner>,
}

impl fmt::Debug for Catalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Catalog")
            .field("providers", &self.inner.providers.len())
            .field("models", &self.inner.models.len())
            .field("endpoints", &self.inner.endpoints.len())
            .finish()
    }
}

impl Catalog {
    /// A builder.
    pub fn builder() -> CatalogBuilder {
        CatalogBuilder::default()
    }

    /// An empty catalog.
    pub fn empty() -> Self {
        CatalogBuilder::default()
            .build()
            .unwrap_or_else(|_| unreachable!("an empty catalog is valid"))
    }

    /// The model with this exact id.
    pub fn model(&self, id: &str) -> Option<&Model> {
        let i = *self.inner.model_index.get(id)?;
        Some(&self.inner.models[i as usize])
    }

    /// The id of the model with this exact id, shared (cloning it allocates nothing).
    pub(crate) fn model_id(&self, id: &str) -> Option<&Arc<str>> {
        self.model_entry(id).map(|(_, id)| id)
    }

    /// The position of the model with this exact id in [`Catalog::models`], with its shared id:
    /// one hash lookup, after which [`Catalog::model_at`] and [`Catalog::endpoint_range_at`] are
    /// plain indexing.
    pub(crate) fn model_entry(&self, id: &str) -> Option<(usize, &Arc<str>)> {
        let i = *self.inner.model_index.get(id)? as usize;
        Some((i, self.inner.model_ids.get(i)?))
    }

    /// The model at a position of [`Catalog::models`].
    pub(crate) fn model_at(&self, index: usize) -> Option<&Model> {
        self.inner.models.get(index)
    }

    /// The shared id of the model at a position of [`Catalog::models`].
    pub(crate) fn model_id_at(&self, index: usize) -> Option<&Arc<str>> {
        self.inner.model_ids.get(index)
    }

    /// The global indices of the endpoints of the model at a position of [`Catalog::models`]
    /// (empty for a position out of range).
    pub(crate) fn endpoint_range_at(&self, index: usize) -> Range<usize> {
        self.inner
            .ranges
            .get(index)
            .map_or(0..0, |&(a, b)| a as usize..b as usize)
    }

    /// All models, in the order they were added.
    pub fn models(&self) -> &[Model] {
        &self.inner.models
    }

    /// The endpoints of model `id` (empty if the model is unknown or has none).
    pub fn endpoints(&self, id: &str) -> &[Endpoint] {
        match self.endpoint_range(id) {
            Some(r) => &self.inner.endpoints[r],
            None => &[],
        }
    }

    /// The global indices of model `id`'s endpoints (see [`Catalog::endpoint`]).
    pub fn endpoint_range(&self, id: &str) -> Option<Range<usize>> {
        let i = *self.inner.model_index.get(id)?;
        Some(self.endpoint_range_at(i as usize))
    }

    /// The endpoint at a global index.
    pub fn endpoint(&self, index: usize) -> Option<&Endpoint> {
        self.inner.endpoints.get(index)
    }

    /// Every endpoint, grouped by model.
    pub fn all_endpoints(&self) -> &[Endpoint] {
        &self.inner.endpoints
    }

    /// The provider serving the endpoint at a global index.
    pub fn endpoint_provider(&self, index: usize) -> Option<&Provider> {
        let p = *self.inner.endpoint_provider.get(index)?;
        self.inner.providers.get(p as usize)
    }

    /// What every request to the provider of the endpoint at a global index carries.
    pub(crate) fn endpoint_call(&self, index: usize) -> Option<&ProviderCall> {
        let p = *self.inner.endpoint_provider.get(index)?;
        self.inner.calls.get(p as usize)
    }

    /// The upstream model id of the endpoint at a global index, shared
    /// ([`Endpoint::upstream_model`]).
    pub(crate) fn endpoint_upstream_model(&self, index: usize) -> Option<&Arc<str>> {
        self.inner.upstream_models.get(index)
    }

    /// The provider with this slug.
    pub fn provider(&self, slug: &str) -> Option<&Provider> {
        let i = *self.inner.provider_index.get(slug)?;
        Some(&self.inner.providers[i as usize])
    }

    /// All providers.
    pub fn providers(&self) -> &[Provider] {
        &self.inner.providers
    }

    /// The target of an operator alias.
    pub fn alias(&self, name: &str) -> Option<&str> {
        self.inner.aliases.get(name).map(String::as_str)
    }

    /// True if both handles point at the same catalog.
    pub fn ptr_eq(&self, other: &Catalog) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

/// Builds a [`Catalog`] and validates it.
#[derive(Debug, Default)]
#[must_use]
pub struct CatalogBuilder {
    pub(crate) providers: Vec<Provider>,
    pub(crate) models: Vec<Model>,
    pub(crate) endpoints: Vec<Endpoint>,
    pub(crate) aliases: Vec<(String, String)>,
}

impl CatalogBuilder {
    /// Adds a provider.
    pub fn provider(mut self, p: Provider) -> Self {
        self.providers.push(p);
        self
    }

    /// Adds a model.
    pub fn model(mut self, m: Model) -> Self {
        self.models.push(m);
        self
    }

    /// Adds an endpoint; its `model_id` names the model it serves.
    pub fn endpoint(mut self, e: Endpoint) -> Self {
        self.endpoints.push(e);
        self
    }

    /// Adds an operator alias: requests for `name` are served by model `target`.
    pub fn alias(mut self, name: impl Into<String>, target: impl Into<String>) -> Self {
        self.aliases.push((name.into(), target.into()));
        self
    }

    /// Rewrites every provider added so far (e.g. to point them all at a test server).
    pub fn map_providers(mut self, mut f: impl FnMut(Provider) -> Provider) -> Self {
        self.providers = std::mem::take(&mut self.providers)
            .into_iter()
            .map(&mut f)
            .collect();
        self
    }

    /// Edits every endpoint added so far.
    pub fn map_endpoints(mut self, f: impl FnMut(&mut Endpoint)) -> Self {
        self.endpoints.iter_mut().for_each(f);
        self
    }

    /// True if a provider with this slug was added.
    pub fn has_provider(&self, slug: &str) -> bool {
        self.providers.iter().any(|p| p.slug == slug)
    }

    /// Gives every model without endpoints one endpoint on `provider_slug`, priced and limited as the
    /// model says (models with variable, router-style prices are skipped). This is how a plain
    /// `/api/v1/models` list becomes routable through one upstream (OpenRouter itself, or any
    /// OpenAI-compatible server hosting those models).
    pub fn synthesize_endpoints(mut self, provider_slug: &str) -> Self {
        let provider_name = self
            .providers
            .iter()
            .find(|p| p.slug == provider_slug)
            .map(|p| p.name.clone())
            .unwrap_or_else(|| provider_slug.to_string());
        let served: std::collections::HashSet<&str> =
            self.endpoints.iter().map(|e| e.model_id.as_str()).collect();
        let mut new = Vec::new();
        for m in &self.models {
            if served.contains(m.id.as_str()) || m.pricing.is_variable() {
                continue;
            }
            let mut e = Endpoint::new(m.id.clone(), provider_slug);
            e.name = format!("{provider_name} | {}", m.canonical_slug);
            e.model_name = m.name.clone();
            e.provider_name = provider_name.clone();
            e.context_length = m
                .top_provider
                .context_length
                .or(m.context_length)
                .unwrap_or(0);
            e.max_completion_tokens = m.top_provider.max_completion_tokens;
            e.pricing = m.pricing.clone();
            e.supported_parameters = m.supported_parameters.clone();
            new.push(e);
        }
        self.endpoints.extend(new);
        self
    }

    /// Validates and builds the catalog.
    pub fn build(self) -> Result<Catalog, CatalogError> {
        let CatalogBuilder {
            mut providers,
            models,
            endpoints,
            aliases,
        } = self;

        let mut provider_index =
            FastMap::with_capacity_and_hasher(providers.len(), Default::default());
        for (i, p) in providers.iter_mut().enumerate() {
            if p.slug.is_empty() || p.slug.contains('/') {
                return Err(CatalogError::Invalid {
                    entry: format!("provider `{}`", p.slug),
                    reason: "a provider slug must be non-empty and contain no `/`".into(),
                });
            }
            if provider_index.insert(p.slug.clone(), i as u32).is_some() {
                return Err(CatalogError::DuplicateProvider(p.slug.clone()));
            }
            if let Credentials::Env(var) = &p.credentials {
                match env::var(var) {
                    Ok(v) if !v.is_empty() => p.credentials = Credentials::key(v),
                    _ => {
                        return Err(CatalogError::MissingCredential {
                            provider: p.slug.clone(),
                            var: var.clone(),
                        })
                    }
                }
            }
            if p.name.is_empty() {
                p.name = p.slug.clone();
            }
        }

        let mut model_index = FastMap::with_capacity_and_hasher(models.len(), Default::default());
        for (i, m) in models.iter().enumerate() {
            if m.id.is_empty() || m.id.contains(char::is_whitespace) {
                return Err(CatalogError::Invalid {
                    entry: format!("model `{}`", m.id),
                    reason: "a model id must be non-empty and contain no spaces".into(),
                });
            }
            if model_index.insert(m.id.clone(), i as u32).is_some() {
                return Err(CatalogError::DuplicateModel(m.id.clone()));
            }
            if let Some((field, value)) = m.pricing.invalid(true) {
                return Err(CatalogError::InvalidPrice {
                    entry: format!("model `{}`", m.id),
                    field,
                    value,
                });
            }
        }

        // Group endpoints by model, keeping their order within a model.
        let mut by_model: Vec<Vec<Endpoint>> = vec![Vec::new(); models.len()];
        for mut e in endpoints {
            let Some(&mi) = model_index.get(&e.model_id) else {
                return Err(CatalogError::UnknownModel {
                    model: e.model_id.clone(),
                    referenced_by: format!("endpoint `{}`", e.tag),
                });
            };
            if e.tag.is_empty() || e.tag.contains(char::is_whitespace) {
                return Err(CatalogError::Invalid {
                    entry: format!("endpoint `{}` of model `{}`", e.tag, e.model_id),
                    reason: "an endpoint tag must be non-empty and contain no spaces".into(),
                });
            }
            if !provider_index.contains_key(e.provider_slug()) {
                return Err(CatalogError::UnknownProvider {
                    model: e.model_id.clone(),
                    tag: e.tag.clone(),
                });
            }
            if let Some((field, value)) = e.pricing.invalid(false) {
                return Err(CatalogError::InvalidPrice {
                    entry: format!("endpoint `{}@{}`", e.model_id, e.tag),
                    field,
                    value,
                });
            }
            let group = &mut by_model[mi as usize];
            if group.iter().any(|x| x.tag == e.tag) {
                return Err(CatalogError::DuplicateEndpoint {
                    model: e.model_id.clone(),
                    tag: e.tag.clone(),
                });
            }
            e.finish();
            if e.provider_name.is_empty() {
                let pi = provider_index[e.provider_slug()];
                e.provider_name = providers[pi as usize].name.clone();
            }
            group.push(e);
        }

        let total: usize = by_model.iter().map(Vec::len).sum();
        let mut all = Vec::with_capacity(total);
        let mut endpoint_provider = Vec::with_capacity(total);
        let mut ranges = Vec::with_capacity(models.len());
        for group in by_model {
            let start = all.len() as u32;
            for e in group {
                endpoint_provider.push(provider_index[e.provider_slug()]);
                all.push(e);
            }
            ranges.push((start, all.len() as u32));
        }

        let mut alias_map = FastMap::with_capacity_and_hasher(aliases.len(), Default::default());
        for (name, target) in aliases {
            if !model_index.contains_key(&target) {
                return Err(CatalogError::UnknownModel {
                    model: target,
                    referenced_by: format!("alias `{name}`"),
                });
            }
            alias_map.insert(name, target);
        }

        Ok(Catalog {
            inner: Arc::new(Inner {
                calls: providers.iter().map(ProviderCall::new).collect(),
                upstream_models: all.iter().map(|e| Arc::from(e.upstream_model())).collect(),
                providers,
                provider_index,
                model_ids: models.iter().map(|m| Arc::from(m.id.as_str())).collect(),
                models,
                model_index,
                endpoints: all,
                endpoint_provider,
                ranges,
                aliases: alias_map,
            }),
        })
    }
}

/// A handle that always yields the current catalog and can swap in a whole new one atomically
/// (reload). Requests that already hold a [`Catalog`] keep the one they started with.
#[derive(Clone)]
pub struct CatalogHandle {
    current: Arc<ArcSwap<Inner>>,
}

impl CatalogHandle {
    /// A handle serving `catalog`.
    pub fn new(catalog: Catalog) -> Self {
        CatalogHandle {
            current: Arc::new(ArcSwap::new(catalog.inner)),
        }
    }

    /// The catalog in force now.
    pub fn load(&self) -> Catalog {
        Catalog {
            inner: self.current.load_full(),
        }
    }

    /// Replaces the catalog for every request that starts after this call.
    pub fn store(&self, catalog: Catalog) {
        self.current.store(catalog.inner);
    }
}

impl From<Catalog> for CatalogHandle {
    fn from(c: Catalog) -> Self {
        CatalogHandle::new(c)
    }
}

impl fmt::Debug for CatalogHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CatalogHandle").field(&self.load()).finish()
    }
}
