use std::fmt;
use std::sync::Arc;

use http::{HeaderName, HeaderValue, Uri};
use serde::{Deserialize, Serialize};

/// A secret string (a provider API key). `Debug` and `Display` never print it; the only way to read it
/// is [`Secret::expose`], which the provider-call code uses at the last moment.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<Arc<str>>) -> Self {
        Secret(value.into())
    }

    /// The secret itself. Never log what this returns.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where a provider's API key comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credentials {
    /// No credentials (e.g. a local server or a simulated provider).
    None,
    /// A key given directly.
    Key(Secret),
    /// A key read from the named environment variable when the catalog is built.
    Env(String),
}

impl Credentials {
    /// A key given directly.
    pub fn key(value: impl Into<Arc<str>>) -> Self {
        Credentials::Key(Secret::new(value))
    }

    /// A key read from the environment variable `var` when the catalog is built.
    pub fn env(var: impl Into<String>) -> Self {
        Credentials::Env(var.into())
    }

    /// The key, if one is set and resolved.
    pub fn secret(&self) -> Option<&Secret> {
        match self {
            Credentials::Key(s) => Some(s),
            _ => None,
        }
    }
}

/// How the key is presented to the provider.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthStyle {
    /// `Authorization: Bearer <key>`.
    #[default]
    Bearer,
    /// `<header>: <key>` (e.g. `x-api-key`).
    Header(HeaderName),
}

/// The API a provider speaks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WireFormat {
    /// OpenAI chat completions (`POST {base}/chat/completions`).
    #[default]
    #[serde(alias = "openai_chat", alias = "chat_completions")]
    Openai,
    /// Anthropic Messages (`POST {base}/messages`).
    #[serde(alias = "anthropic_messages", alias = "messages")]
    Anthropic,
}

impl WireFormat {
    /// The path appended to the provider's base URL.
    pub fn path(self) -> &'static str {
        match self {
            WireFormat::Openai => "/chat/completions",
            WireFormat::Anthropic => "/messages",
        }
    }
}

/// What a provider does with prompts (<https://openrouter.ai/docs/guides/privacy/data-collection>, <https://openrouter.ai/docs/guides/features/zdr>).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProviderDataPolicy {
    /// The provider may train on prompts.
    pub training: bool,
    /// The provider stores prompts beyond the request.
    pub retains_prompts: bool,
    /// How long prompts are kept, when known.
    #[serde(default)]
    pub retention_days: Option<u32>,
    /// Zero data retention.
    #[serde(default)]
    pub zdr: bool,
}

impl ProviderDataPolicy {
    /// A provider whose policy is not known is treated as one that retains and trains (§3.6).
    pub const UNKNOWN: ProviderDataPolicy = ProviderDataPolicy {
        training: true,
        retains_prompts: true,
        retention_days: None,
        zdr: false,
    };

    /// Zero data retention: neither trains nor retains.
    pub const ZDR: ProviderDataPolicy = ProviderDataPolicy {
        training: false,
        retains_prompts: false,
        retention_days: None,
        zdr: true,
    };
}

impl Default for ProviderDataPolicy {
    fn default() -> Self {
        ProviderDataPolicy::UNKNOWN
    }
}

/// An upstream provider: where to send requests, how to authenticate, what it does with data.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Provider {
    /// The slug used in `order` / `only` / `ignore` and in endpoint tags (`"deepinfra"`).
    pub slug: String,
    /// Display name (`"DeepInfra"`), reported as the response's `provider`.
    pub name: String,
    /// Base URL, e.g. `https://api.openai.com/v1`; the wire format's path is appended.
    pub base_url: Option<String>,
    /// The provider's API key.
    pub credentials: Credentials,
    /// How the key is sent.
    pub auth: AuthStyle,
    /// Headers added to every request to this provider.
    pub extra_headers: Vec<(HeaderName, HeaderValue)>,
    /// The API it speaks.
    pub wire_format: WireFormat,
    /// What it does with prompts.
    pub data_policy: ProviderDataPolicy,
}

impl Provider {
    /// A provider with `slug` and display `name`, no base URL or credentials, OpenAI wire format and
    /// an unknown (retains and trains) data policy.
    pub fn new(slug: impl Into<String>, name: impl Into<String>) -> Self {
        Provider {
            slug: slug.into(),
            name: name.into(),
            base_url: None,
            credentials: Credentials::None,
            auth: AuthStyle::Bearer,
            extra_headers: Vec::new(),
            wire_format: WireFormat::Openai,
            data_policy: ProviderDataPolicy::UNKNOWN,
        }
    }

    /// Sets the base URL.
    #[must_use]
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Sets the credentials.
    #[must_use]
    pub fn credentials(mut self, c: Credentials) -> Self {
        self.credentials = c;
        self
    }

    /// Sets how the key is sent.
    #[must_use]
    pub fn auth(mut self, a: AuthStyle) -> Self {
        self.auth = a;
        self
    }

    /// Adds a header sent on every request.
    #[must_use]
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.extra_headers.push((name, value));
        self
    }

    /// Sets the wire format.
    #[must_use]
    pub fn wire_format(mut self, w: WireFormat) -> Self {
        self.wire_format = w;
        self
    }

    /// Sets the data policy.
    #[must_use]
    pub fn data_policy(mut self, p: ProviderDataPolicy) -> Self {
        self.data_policy = p;
        self
    }
}

/// What every request to a provider carries, prepared once when the catalog is built (the catalog
/// is immutable afterwards): the URI of the wire format's path under the base URL, and the
/// credentials header, marked sensitive. The fallback layer clones them (reference counts) instead
/// of formatting and parsing them on every attempt.
#[derive(Clone, Debug)]
pub(crate) struct ProviderCall {
    /// `base_url` + the wire format's path; `None` without a base URL or when it does not parse.
    pub(crate) uri: Option<Uri>,
    /// The credentials header; `Ok(None)` without a key, `Err` when the key is no valid header
    /// value.
    pub(crate) auth: Result<Option<(HeaderName, HeaderValue)>, ()>,
    /// The provider's display name, shared by the records of the requests it serves.
    pub(crate) name: Arc<str>,
    /// The provider's slug, shared likewise.
    pub(crate) slug: Arc<str>,
}

impl ProviderCall {
    pub(crate) fn new(p: &Provider) -> Self {
        ProviderCall {
            uri: p
                .base_url
                .as_deref()
                .and_then(|b| p.uri(b, p.wire_format.path())),
            auth: p.auth_header(),
            name: Arc::from(p.name.as_str()),
            slug: Arc::from(p.slug.as_str()),
        }
    }
}

impl Provider {
    /// `base` + `path`, as a URI.
    pub(crate) fn uri(&self, base: &str, path: &str) -> Option<Uri> {
        format!("{}{path}", base.trim_end_matches('/')).parse().ok()
    }

    /// The credentials header (see [`ProviderCall::auth`]).
    pub(crate) fn auth_header(&self) -> Result<Option<(HeaderName, HeaderValue)>, ()> {
        let Some(secret) = self.credentials.secret() else {
            return Ok(None);
        };
        let (name, value) = match &self.auth {
            AuthStyle::Bearer => (
                http::header::AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {}", secret.expose())),
            ),
            AuthStyle::Header(name) => (name.clone(), HeaderValue::from_str(secret.expose())),
        };
        let mut value = value.map_err(|_| ())?;
        value.set_sensitive(true);
        Ok(Some((name, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let p = Provider::new("openai", "OpenAI").credentials(Credentials::key("sk-very-secret"));
        let dbg = format!("{p:?}");
        assert!(!dbg.contains("sk-very-secret"), "{dbg}");
        assert!(dbg.contains("redacted"));
        let s = Secret::new("sk-x");
        assert_eq!(format!("{s}"), "<redacted>");
        assert_eq!(s.expose(), "sk-x");
    }
}
