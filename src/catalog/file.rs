//! Catalog files: the operator's config (TOML or JSON) and OpenRouter's own shapes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use http::{HeaderName, HeaderValue};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::{
    AuthStyle, Catalog, CatalogBuilder, CatalogError, Credentials, Endpoint, Model, Provider,
    ProviderDataPolicy, WireFormat,
};

/// A provider entry of a catalog file.
#[derive(Clone, Debug, Default, Deserialize)]
#[non_exhaustive]
pub struct ProviderSpec {
    /// Slug (`"openai"`).
    pub slug: String,
    /// Display name (defaults to the slug).
    #[serde(default)]
    pub name: Option<String>,
    /// Base URL (`"https://api.openai.com/v1"`).
    #[serde(default)]
    pub base_url: Option<String>,
    /// The key itself (prefer `api_key_env`).
    #[serde(default)]
    pub api_key: Option<String>,
    /// Environment variable holding the key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// `"bearer"` (default) or the name of the header that carries the key (`"x-api-key"`).
    #[serde(default)]
    pub auth: Option<String>,
    /// Extra headers sent on every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// `"openai"` (default) or `"anthropic"`.
    #[serde(default)]
    pub wire_format: WireFormat,
    /// Data policy; omitted means unknown, treated as "retains and trains".
    #[serde(default)]
    pub data_policy: Option<ProviderDataPolicy>,
}

impl ProviderSpec {
    /// Turns the entry into a [`Provider`].
    pub fn into_provider(self) -> Result<Provider, CatalogError> {
        let entry = || format!("provider `{}`", self.slug);
        let mut p = Provider::new(
            self.slug.clone(),
            self.name.clone().unwrap_or_else(|| self.slug.clone()),
        )
        .wire_format(self.wire_format)
        .data_policy(self.data_policy.unwrap_or(ProviderDataPolicy::UNKNOWN));
        if let Some(u) = &self.base_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(CatalogError::Invalid {
                    entry: entry(),
                    reason: format!("base_url `{u}` must start with http:// or https://"),
                });
            }
            p = p.base_url(u.trim_end_matches('/'));
        }
        p.credentials = match (self.api_key, self.api_key_env) {
            (Some(_), Some(_)) => {
                return Err(CatalogError::Invalid {
                    entry: entry(),
                    reason: "set api_key or api_key_env, not both".into(),
                })
            }
            (Some(k), None) => Credentials::key(k),
            (None, Some(var)) => Credentials::env(var),
            (None, None) => Credentials::None,
        };
        p.auth = match self.auth.as_deref() {
            None | Some("bearer") | Some("Bearer") => AuthStyle::Bearer,
            Some(h) => {
                AuthStyle::Header(HeaderName::try_from(h).map_err(|_| CatalogError::Invalid {
                    entry: entry(),
                    reason: format!("auth header `{h}` is not a valid header name"),
                })?)
            }
        };
        for (k, v) in self.headers {
            let name = HeaderName::try_from(k.as_str()).map_err(|_| CatalogError::Invalid {
                entry: entry(),
                reason: format!("`{k}` is not a valid header name"),
            })?;
            let value = HeaderValue::try_from(v).map_err(|_| CatalogError::Invalid {
                entry: entry(),
                reason: format!("the value of header `{k}` is not valid"),
            })?;
            p = p.header(name, value);
        }
        Ok(p)
    }
}

/// Endpoints keyed by model id (the demo catalog's shape) or as a list whose entries carry
/// `model_id`.
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum EndpointsSpec {
    /// `{"<model id>": [endpoint, …]}`.
    ByModel(BTreeMap<String, Vec<Endpoint>>),
    /// `[endpoint, …]`, each with `model_id`.
    List(Vec<Endpoint>),
}

impl Default for EndpointsSpec {
    fn default() -> Self {
        EndpointsSpec::List(Vec::new())
    }
}

/// The catalog file format (JSON or TOML). The schema is documented in the README.
///
/// `models` and `endpoints` use OpenRouter's own `Model` and `PublicEndpoint` field names, so
/// shared/fixtures/catalog/demo-catalog.json is a valid catalog file; `providers` adds where to send
/// requests and what each provider does with data.
#[derive(Clone, Debug, Default, Deserialize)]
#[non_exhaustive]
pub struct CatalogFile {
    /// Providers.
    #[serde(default)]
    pub providers: Vec<ProviderSpec>,
    /// Models.
    #[serde(default)]
    pub models: Vec<Model>,
    /// Endpoints.
    #[serde(default)]
    pub endpoints: EndpointsSpec,
    /// Operator aliases: `{"fast": "openai/gpt-4o-mini"}`.
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    /// An OpenRouter `/api/v1/models` dump to import (a path relative to this file).
    #[serde(default)]
    pub openrouter_models: Option<PathBuf>,
    /// Models without endpoints get one on this provider (see
    /// [`CatalogBuilder::synthesize_endpoints`]).
    #[serde(default)]
    pub default_provider: Option<String>,
}

pub(crate) fn parse_json<T: DeserializeOwned>(
    source_name: &str,
    bytes: &[u8],
) -> Result<T, CatalogError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = serde_path_to_error::deserialize(&mut de).map_err(|e| CatalogError::Parse {
        source_name: source_name.into(),
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })?;
    de.end().map_err(|e| CatalogError::Parse {
        source_name: source_name.into(),
        path: String::new(),
        message: e.to_string(),
    })?;
    Ok(v)
}

#[cfg(feature = "toml")]
fn parse_toml<T: DeserializeOwned>(source_name: &str, text: &str) -> Result<T, CatalogError> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(de).map_err(|e| CatalogError::Parse {
        source_name: source_name.into(),
        path: e.path().to_string(),
        message: e.inner().message().to_string(),
    })
}

/// Without the `toml` feature a `.toml` catalog file is a clear error, not a JSON parse failure.
#[cfg(not(feature = "toml"))]
fn parse_toml<T: DeserializeOwned>(source_name: &str, _text: &str) -> Result<T, CatalogError> {
    Err(CatalogError::Parse {
        source_name: source_name.into(),
        path: String::new(),
        message: "TOML catalog files need the crate's `toml` feature".into(),
    })
}

fn read(path: &Path) -> Result<Vec<u8>, CatalogError> {
    std::fs::read(path).map_err(|e| CatalogError::Parse {
        source_name: path.display().to_string(),
        path: String::new(),
        message: e.to_string(),
    })
}

impl CatalogFile {
    /// Parses a JSON catalog file.
    pub fn from_json(bytes: &[u8]) -> Result<Self, CatalogError> {
        parse_json("catalog JSON", bytes)
    }

    /// Parses a TOML catalog file.
    #[cfg(feature = "toml")]
    #[cfg_attr(docsrs, doc(cfg(feature = "toml")))]
    pub fn from_toml(text: &str) -> Result<Self, CatalogError> {
        parse_toml("catalog TOML", text)
    }

    /// Adds everything in the file to `builder`. `base_dir` resolves `openrouter_models`.
    pub fn apply(
        self,
        mut builder: CatalogBuilder,
        base_dir: Option<&Path>,
    ) -> Result<CatalogBuilder, CatalogError> {
        for p in self.providers {
            builder = builder.provider(p.into_provider()?);
        }
        for m in self.models {
            builder = builder.model(m);
        }
        match self.endpoints {
            EndpointsSpec::ByModel(map) => {
                for (model, eps) in map {
                    for mut e in eps {
                        if e.model_id.is_empty() {
                            e.model_id = model.clone();
                        } else if e.model_id != model {
                            return Err(CatalogError::Invalid {
                                entry: format!("endpoint `{}` listed under `{model}`", e.tag),
                                reason: format!("its model_id is `{}`", e.model_id),
                            });
                        }
                        builder = builder.endpoint(e);
                    }
                }
            }
            EndpointsSpec::List(eps) => {
                for e in eps {
                    builder = builder.endpoint(e);
                }
            }
        }
        if let Some(path) = self.openrouter_models {
            let full = match base_dir {
                Some(d) if path.is_relative() => d.join(&path),
                _ => path,
            };
            builder = builder.openrouter_models(&read(&full)?)?;
        }
        if let Some(slug) = self.default_provider {
            builder = builder.synthesize_endpoints(&slug);
        }
        for (name, target) in self.aliases {
            builder = builder.alias(name, target);
        }
        Ok(builder)
    }
}

#[derive(Deserialize)]
struct ModelsResponse {
    data: Vec<Model>,
}

#[derive(Deserialize)]
struct EndpointsResponse {
    data: EndpointsData,
}

#[derive(Deserialize)]
struct EndpointsData {
    id: String,
    endpoints: Vec<Endpoint>,
}

impl CatalogBuilder {
    /// Adds the models of an OpenRouter `GET /api/v1/models` response (`{"data": [Model, …]}`).
    ///
    /// The list has no endpoints; add them with [`CatalogBuilder::openrouter_endpoints`], from a
    /// catalog file, or with [`CatalogBuilder::synthesize_endpoints`].
    pub fn openrouter_models(mut self, json: &[u8]) -> Result<Self, CatalogError> {
        let r: ModelsResponse = parse_json("OpenRouter /models response", json)?;
        self.models.extend(r.data);
        Ok(self)
    }

    /// Adds the endpoints of an OpenRouter `GET /api/v1/models/{author}/{slug}/endpoints` response.
    ///
    /// Providers named by the endpoints' tags that the builder does not have yet are added with the
    /// endpoint's `provider_name`, no base URL and an unknown data policy (so data-policy filters
    /// exclude them until the operator says otherwise).
    pub fn openrouter_endpoints(mut self, json: &[u8]) -> Result<Self, CatalogError> {
        let r: EndpointsResponse = parse_json("OpenRouter /endpoints response", json)?;
        for mut e in r.data.endpoints {
            // Captured responses disagree on whether `model_id` is the public id or the permaslug;
            // the response's `data.id` is the public id either way.
            e.model_id = r.data.id.clone();
            let slug = e.provider_slug().to_string();
            if !self.has_provider(&slug) {
                let name = if e.provider_name.is_empty() {
                    slug.clone()
                } else {
                    e.provider_name.clone()
                };
                self.providers.push(Provider::new(slug, name));
            }
            self.endpoints.push(e);
        }
        Ok(self)
    }
}

impl Catalog {
    /// Reads a JSON catalog file (the demo catalog's shape, see [`CatalogFile`]).
    pub fn from_json(bytes: &[u8]) -> Result<Catalog, CatalogError> {
        CatalogFile::from_json(bytes)?
            .apply(Catalog::builder(), None)?
            .build()
    }

    /// Reads a TOML catalog file.
    #[cfg(feature = "toml")]
    #[cfg_attr(docsrs, doc(cfg(feature = "toml")))]
    pub fn from_toml(text: &str) -> Result<Catalog, CatalogError> {
        CatalogFile::from_toml(text)?
            .apply(Catalog::builder(), None)?
            .build()
    }

    /// Reads a catalog file, TOML if the name ends in `.toml` (with the `toml` feature; an error
    /// without it), JSON otherwise.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Catalog, CatalogError> {
        let path = path.as_ref();
        let bytes = read(path)?;
        let name = path.display().to_string();
        let file: CatalogFile = if path.extension().is_some_and(|e| e == "toml") {
            let text = std::str::from_utf8(&bytes).map_err(|e| CatalogError::Parse {
                source_name: name.clone(),
                path: String::new(),
                message: e.to_string(),
            })?;
            parse_toml(&name, text)?
        } else {
            parse_json(&name, &bytes)?
        };
        file.apply(Catalog::builder(), path.parent())?.build()
    }

    /// An OpenRouter `/api/v1/models` dump served through one upstream provider: every model with a
    /// fixed price gets one endpoint on `provider`.
    pub fn from_openrouter_models(
        json: &[u8],
        provider: Provider,
    ) -> Result<Catalog, CatalogError> {
        let slug = provider.slug.clone();
        Catalog::builder()
            .provider(provider)
            .openrouter_models(json)?
            .synthesize_endpoints(&slug)
            .build()
    }
}
