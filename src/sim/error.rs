use std::fmt;

use crate::BoxError;

/// The error of a [`SimulatedProvider`](super::SimulatedProvider) future or a [`SimBody`](super::SimBody).
///
/// Opaque; ask what happened with the `is_*` predicates.
#[derive(Debug)]
pub struct SimError {
    kind: Kind,
    source: Option<BoxError>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Connect,
    RequestBody,
    Aborted,
}

impl SimError {
    pub(crate) fn connect() -> Self {
        SimError {
            kind: Kind::Connect,
            source: None,
        }
    }

    pub(crate) fn request_body(source: BoxError) -> Self {
        SimError {
            kind: Kind::RequestBody,
            source: Some(source),
        }
    }

    pub(crate) fn aborted() -> Self {
        SimError {
            kind: Kind::Aborted,
            source: None,
        }
    }

    /// A simulated connection failure ([`SimOutcome::ConnectError`](super::SimOutcome::ConnectError)):
    /// nothing was sent, so the request is safe to retry elsewhere.
    pub fn is_connect(&self) -> bool {
        self.kind == Kind::Connect
    }

    /// The request body could not be read (the source is the body's error).
    pub fn is_request_body(&self) -> bool {
        self.kind == Kind::RequestBody
    }

    /// The response body was cut by an error frame
    /// ([`SimOutcome::BodyError`](super::SimOutcome::BodyError)).
    pub fn is_aborted(&self) -> bool {
        self.kind == Kind::Aborted
    }
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self.kind {
            Kind::Connect => "simulated connection error",
            Kind::RequestBody => "failed to read the request body",
            Kind::Aborted => "simulated connection reset while streaming the body",
        })
    }
}

impl std::error::Error for SimError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| &**e as &(dyn std::error::Error + 'static))
    }
}
