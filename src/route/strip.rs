//! Which members of a request an endpoint does not get ([`RequestView::unsupported_spans`]).

use std::ops::Range;

use super::RequestView;
use crate::catalog::{ParamSet, Parameter};

impl RequestView<'_> {
    /// Byte ranges of the values of the members an endpoint supporting `supported` does not get;
    /// nothing when `supported` is empty (the catalog lists none).
    ///
    /// With `provider.require_parameters` false (the default), OpenRouter sends an endpoint only the
    /// parameters it supports (<https://openrouter.ai/docs/guides/routing/provider-selection>). The rule
    /// here, applied per attempt by ProviderFallback when it builds the upstream body:
    ///
    /// - the gateway-only members (`models`, `provider`, `route`, `session_id`, `transforms`,
    ///   `plugins`, `usage`, `debug`, `trace`, `preset`) are never sent;
    /// - when the catalog lists the endpoint's `supported_parameters`, a parameter of that vocabulary
    ///   (`temperature`, `top_k`, `min_p`, `top_a`, `logit_bias`, `verbosity`, `tools`, …) that is not in
    ///   the list is removed, and so is any member this gateway does not know (`x_custom`);
    ///   `max_tokens` / `max_completion_tokens` (they bound the budget reservation) and the standard
    ///   chat-completions members (`messages`, `stream`, `stream_options`, `n`, `user`, `metadata`, …)
    ///   are always kept; `response_format` is kept when the endpoint lists `structured_outputs`;
    /// - when the catalog lists no parameters for the endpoint, everything else is forwarded.
    ///
    /// Removal is a byte splice: every byte that is kept is the caller's byte (prompt caching depends on
    /// byte-stable bodies).
    pub fn unsupported_spans(
        &self,
        supported: ParamSet,
    ) -> impl Iterator<Item = Range<usize>> + '_ {
        let listed = !supported.is_empty();
        self.droppable
            .iter()
            .filter(move |(p, _)| listed && !kept(*p, supported))
            .map(|(_, r)| r.clone())
    }
}

fn kept(p: Option<Parameter>, supported: ParamSet) -> bool {
    match p {
        None => false,
        Some(Parameter::ResponseFormat) => {
            supported.contains(Parameter::ResponseFormat)
                || supported.contains(Parameter::StructuredOutputs)
        }
        Some(p) => supported.contains(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dropped(body: &str, supported: &[&str]) -> Vec<String> {
        let view = RequestView::parse(body.as_bytes()).expect("valid");
        let set = ParamSet::from_names(supported.iter().copied());
        view.unsupported_spans(set)
            .map(|r| body[r].to_string())
            .collect()
    }

    #[test]
    fn unsupported_and_unknown_members_are_dropped() {
        let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":1,
            "top_k":3,"min_p":0.1,"logit_bias":{"1":2},"x_custom":"v","stream_options":{},
            "max_tokens":5,"top_a":0.5,"verbosity":"low"}"#;
        assert_eq!(
            dropped(body, &["temperature", "max_tokens"]),
            ["3", "0.1", r#"{"1":2}"#, r#""v""#, "0.5", r#""low""#]
        );
        assert!(dropped(body, &[]).is_empty(), "no list: forward everything");
        let fmt = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],
            "response_format":{"type":"json_object"}}"#;
        assert!(dropped(fmt, &["structured_outputs"]).is_empty());
        assert_eq!(dropped(fmt, &["tools"]).len(), 1);
    }
}
