//! The answer when no candidate served the request (see the [module docs](super#when-everything-fails)).

use std::time::Duration;

use http::{Response, StatusCode};
use serde_json::Value;

use super::body::ResponseBody;
use super::policy::{AttemptError, Decision};
use super::Attempts;
use crate::error::{Availability, AvailabilityCode, ErrorType, GatewayError};
use crate::route::{AttemptRecord, Route};

/// The last failure that decides the answer.
pub(crate) struct LastFailure {
    pub(crate) error: AttemptError,
    pub(crate) sent: bool,
    pub(crate) message: Option<String>,
    pub(crate) provider_name: String,
    pub(crate) decision: Decision,
}

/// What happened to a request's attempts so far.
#[derive(Default)]
pub(crate) struct History {
    /// Every attempt and skipped candidate, in order.
    pub(crate) records: Vec<AttemptRecord>,
    /// The failure the answer describes: the last provider actually called, if any was (boxed:
    /// failures are rare, and the request's future stays smaller).
    pub(crate) last: Option<Box<LastFailure>>,
    /// The retry budget stopped further attempts: the providers (names) left untried.
    pub(crate) budget_exhausted: Option<Vec<String>>,
    /// The overall deadline passed.
    pub(crate) overall_expired: bool,
}

impl History {
    /// Keeps `failure` as the one to answer with unless it was not sent and an earlier one was.
    pub(crate) fn remember(&mut self, failure: LastFailure) {
        if failure.sent || self.last.as_ref().is_none_or(|l| !l.sent) {
            match &mut self.last {
                Some(last) => **last = failure,
                None => self.last = Some(Box::new(failure)),
            }
        }
    }

    /// The answer when no candidate served the request, with the [`Attempts`] extension.
    pub(crate) fn answer<B>(&mut self, route: &Route) -> Response<ResponseBody<B>> {
        let err = self.final_error(route);
        tracing::debug!(
            status = err.status().as_u16(),
            error_type = err.error_type().as_str(),
            attempts = self.records.len(),
            "no provider served the request"
        );
        let mut res: Response<ResponseBody<B>> = err.into_response();
        res.extensions_mut()
            .insert(Attempts(std::mem::take(&mut self.records)));
        res
    }

    fn final_error(&self, route: &Route) -> GatewayError {
        let requested: Vec<String> = route
            .models()
            .iter()
            .map(|m| m.requested.to_string())
            .collect();
        let Some(last) = &self.last else {
            return self.nothing_sent(route, requested);
        };
        let failed: Vec<&AttemptRecord> = self
            .records
            .iter()
            .filter(|r| r.sent && r.error_type.is_some())
            .collect();
        let err = match last.error {
            AttemptError::Status(s @ 400..=499)
                if last.decision == Decision::Return && s != 408 && s != 429 =>
            {
                caller_error(s, last.message.as_deref())
            }
            _ if self.budget_exhausted.is_some() => self.budget_refused(&failed),
            _ if self.overall_expired => GatewayError::new(
                ErrorType::Timeout,
                "The request deadline passed before a provider answered.",
            )
            .with_status(StatusCode::REQUEST_TIMEOUT),
            _ if !failed.is_empty() && failed.iter().all(|r| r.status == Some(429)) => {
                rate_limited(&failed, requested)
            }
            _ if !failed.is_empty() && failed.iter().all(|r| r.kind.is_timeout()) => {
                GatewayError::new(ErrorType::Timeout, "No provider responded in time.")
            }
            _ if !failed.is_empty() && failed.iter().all(|r| is_transient(r)) => {
                let mut a = Availability::new(AvailabilityCode::TemporarilyUnavailable, requested);
                a.affected_providers = providers(&failed);
                GatewayError::unavailable(
                    "All providers for this request are temporarily unavailable.",
                    a,
                )
            }
            _ => GatewayError::new(
                ErrorType::ProviderUnavailable,
                "No provider returned a valid response.",
            ),
        };
        self.decorate(err, Some(&last.provider_name))
    }

    /// No failure to describe: no candidates, all cooling down, or the deadline passed first.
    fn nothing_sent(&self, route: &Route, requested: Vec<String>) -> GatewayError {
        if self.records.is_empty() && !self.overall_expired {
            return route.unavailable();
        }
        let mut a = Availability::new(AvailabilityCode::TemporarilyUnavailable, requested);
        a.affected_providers = self
            .records
            .iter()
            .map(|r| r.provider.to_string())
            .collect();
        let msg = if self.overall_expired {
            "The request deadline passed before a provider could be tried."
        } else {
            "Every provider for this request is cooling down after recent failures."
        };
        self.decorate(GatewayError::unavailable(msg, a), None)
    }

    fn decorate(&self, mut err: GatewayError, provider: Option<&str>) -> GatewayError {
        if let Some(p) = provider {
            err = err.with_metadata("provider_name", p);
        }
        let previous: Vec<Value> = self
            .records
            .iter()
            .map(|r| {
                serde_json::json!({
                    "provider": &*r.provider,
                    "endpoint": r.endpoint.tag(),
                    "code": r.kind.as_str(),
                    "status": r.status,
                })
            })
            .collect();
        err = err.with_metadata("previous_errors", Value::Array(previous));
        if self.budget_exhausted.is_some() {
            err = err.with_metadata("retry_budget_exhausted", true);
        }
        err
    }

    /// The retry budget refused a repeated attempt: said so, with who was tried and who not.
    fn budget_refused(&self, failed: &[&AttemptRecord]) -> GatewayError {
        let tried = providers(failed);
        let not_tried = self.budget_exhausted.clone().unwrap_or_default();
        let msg = format!(
            "The gateway's retry budget is spent (too many retries across requests recently). \
             Tried: {}; not retried: {}.",
            tried.join(", "),
            not_tried.join(", ")
        );
        GatewayError::new(ErrorType::RetryBudgetExhausted, msg)
            .with_metadata("providers_tried", tried)
            .with_metadata("providers_not_tried", not_tried)
    }
}

/// The caller's own error, returned by the policy: that status, typed, with the provider's
/// message when it was safe to keep.
fn caller_error(status: u16, message: Option<&str>) -> GatewayError {
    let ty = match status {
        402 => ErrorType::PaymentRequired,
        401 => ErrorType::Authentication,
        403 => ErrorType::PermissionDenied,
        404 => ErrorType::NotFound,
        412 => ErrorType::PreconditionFailed,
        413 => ErrorType::PayloadTooLarge,
        422 => ErrorType::Unprocessable,
        _ => ErrorType::InvalidRequest,
    };
    let msg = message.unwrap_or("Provider returned error").to_string();
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    GatewayError::new(ty, msg).with_status(status)
}

/// Every attempt was a `429`: capacity exhausted, with the smallest retry hint when all sent one.
fn rate_limited(failed: &[&AttemptRecord], requested: Vec<String>) -> GatewayError {
    let mut a = Availability::new(AvailabilityCode::CapacityExhausted, requested);
    a.affected_providers = providers(failed);
    let hints: Vec<Duration> = failed.iter().filter_map(|r| r.retry_after).collect();
    if hints.len() == failed.len() {
        a.retry_after = hints
            .iter()
            .min()
            .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0));
    }
    GatewayError::unavailable("All providers for this request are rate limited.", a)
}

/// The providers of `failed`, each once, in the order first tried.
fn providers(failed: &[&AttemptRecord]) -> Vec<String> {
    let mut v: Vec<String> = Vec::with_capacity(failed.len());
    for r in failed {
        if !v.iter().any(|p| **p == *r.provider) {
            v.push(r.provider.to_string());
        }
    }
    v
}

fn is_transient(r: &AttemptRecord) -> bool {
    use crate::route::AttemptKind;
    matches!(r.status, Some(408 | 429 | 500..=599))
        || matches!(
            r.kind,
            AttemptKind::Timeout | AttemptKind::FirstTokenTimeout | AttemptKind::Connect
        )
}
