use std::fmt;

macro_rules! parameters {
    ($($variant:ident => $name:literal,)*) => {
        /// A request parameter that endpoints declare in `supported_parameters` (<https://openrouter.ai/docs/guides/overview/models>).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Parameter {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
        }

        impl Parameter {
            /// Every known parameter.
            pub const ALL: &'static [Parameter] = &[$(Parameter::$variant,)*];

            /// The wire name.
            pub const fn as_str(self) -> &'static str {
                match self { $(Parameter::$variant => $name,)* }
            }

            /// The parameter with this wire name.
            pub fn from_name(name: &str) -> Option<Self> {
                match name { $($name => Some(Parameter::$variant),)* _ => None }
            }
        }
    };
}

parameters! {
    Temperature => "temperature",
    TopP => "top_p",
    TopK => "top_k",
    MinP => "min_p",
    TopA => "top_a",
    FrequencyPenalty => "frequency_penalty",
    PresencePenalty => "presence_penalty",
    RepetitionPenalty => "repetition_penalty",
    MaxTokens => "max_tokens",
    MaxCompletionTokens => "max_completion_tokens",
    LogitBias => "logit_bias",
    Logprobs => "logprobs",
    TopLogprobs => "top_logprobs",
    Prediction => "prediction",
    Seed => "seed",
    ResponseFormat => "response_format",
    StructuredOutputs => "structured_outputs",
    Stop => "stop",
    Tools => "tools",
    ToolChoice => "tool_choice",
    ParallelToolCalls => "parallel_tool_calls",
    IncludeReasoning => "include_reasoning",
    Reasoning => "reasoning",
    ReasoningEffort => "reasoning_effort",
    WebSearchOptions => "web_search_options",
    Verbosity => "verbosity",
}

impl fmt::Display for Parameter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A set of [`Parameter`]s, one bit each.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ParamSet(u32);

impl ParamSet {
    /// The empty set.
    pub const EMPTY: ParamSet = ParamSet(0);

    /// Adds a parameter.
    pub fn insert(&mut self, p: Parameter) {
        self.0 |= 1 << (p as u32);
    }

    /// True if `p` is in the set.
    pub fn contains(self, p: Parameter) -> bool {
        self.0 & (1 << (p as u32)) != 0
    }

    /// True if every member of `other` is in `self`.
    pub fn is_superset(self, other: ParamSet) -> bool {
        other.0 & !self.0 == 0
    }

    /// The members of `self` that are not in `other`.
    pub fn difference(self, other: ParamSet) -> ParamSet {
        ParamSet(self.0 & !other.0)
    }

    /// True when empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The members, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Parameter> {
        Parameter::ALL
            .iter()
            .copied()
            .filter(move |p| self.contains(*p))
    }

    /// The set of the known names among `names` (unknown names are ignored).
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut s = ParamSet::EMPTY;
        for n in names {
            if let Some(p) = Parameter::from_name(n) {
                s.insert(p);
            }
        }
        s
    }
}

impl fmt::Debug for ParamSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Parameter::as_str))
            .finish()
    }
}

impl FromIterator<Parameter> for ParamSet {
    fn from_iter<I: IntoIterator<Item = Parameter>>(iter: I) -> Self {
        let mut s = ParamSet::EMPTY;
        for p in iter {
            s.insert(p);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_fit() {
        assert!(Parameter::ALL.len() <= 32);
        for p in Parameter::ALL {
            assert_eq!(Parameter::from_name(p.as_str()), Some(*p));
        }
        let have = ParamSet::from_names(["tools", "temperature", "nonsense"]);
        let want: ParamSet = [Parameter::Tools].into_iter().collect();
        assert!(have.is_superset(want));
        assert!(!want.is_superset(have));
        assert_eq!(
            have.difference(want).iter().collect::<Vec<_>>(),
            [Parameter::Temperature]
        );
    }
}
