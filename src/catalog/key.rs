use std::fmt;
use std::sync::Arc;

/// The stable identity of an endpoint: its model id and its tag (`"meta-llama/llama-3.3-70b-instruct"` +
/// `"deepinfra/turbo"`).
///
/// Stats, stickiness and budgets key on it, so it survives a catalog reload unchanged. Cloning is an
/// `Arc` increment; hashing and comparing look at the text.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointKey {
    text: Arc<str>,
    split: usize,
}

impl EndpointKey {
    /// The key of endpoint `tag` of model `model_id`.
    pub fn new(model_id: &str, tag: &str) -> Self {
        let mut s = String::with_capacity(model_id.len() + 1 + tag.len());
        s.push_str(model_id);
        s.push(' ');
        s.push_str(tag);
        EndpointKey {
            text: s.into(),
            split: model_id.len(),
        }
    }

    /// The model id.
    pub fn model(&self) -> &str {
        &self.text[..self.split]
    }

    /// The endpoint tag (`provider` or `provider/variant`).
    pub fn tag(&self) -> &str {
        &self.text[self.split + 1..]
    }

    /// The provider slug: the tag up to its first `/`.
    pub fn provider(&self) -> &str {
        let t = self.tag();
        t.split('/').next().unwrap_or(t)
    }

    /// `"model tag"`, one string (a space never occurs in either part).
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for EndpointKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.model(), self.tag())
    }
}

impl fmt::Display for EndpointKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.model(), self.tag())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts() {
        let k = EndpointKey::new("meta-llama/llama-3.3-70b-instruct:free", "deepinfra/turbo");
        assert_eq!(k.model(), "meta-llama/llama-3.3-70b-instruct:free");
        assert_eq!(k.tag(), "deepinfra/turbo");
        assert_eq!(k.provider(), "deepinfra");
        assert_eq!(
            k.to_string(),
            "meta-llama/llama-3.3-70b-instruct:free@deepinfra/turbo"
        );
    }
}
