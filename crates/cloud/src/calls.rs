//! Counting AWS calls by service, operation and outcome, with an SDK interceptor, so that
//! tests and metrics see every request the SDK sends (retries included).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// `(service, operation, outcome)` -> count; outcome is `success`, `throttled` or `error`.
pub type CallCounts = BTreeMap<(String, String, String), u64>;

/// A shared counter; clone it into every client's configuration.
#[derive(Debug, Clone, Default)]
pub struct Calls {
    counts: Arc<Mutex<CallCounts>>,
}

/// Operations that change AWS: anything but reads.
#[must_use]
pub fn is_mutating(operation: &str) -> bool {
    !["Describe", "List", "Get", "Query", "Scan", "BatchGet"]
        .iter()
        .any(|read| operation.starts_with(read))
}

impl Calls {
    /// The counts, recovered from a poisoned lock (every update leaves them consistent), so
    /// that a panic elsewhere never loses calls from the metrics.
    fn counts(&self) -> MutexGuard<'_, CallCounts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every call so far.
    #[must_use]
    pub fn snapshot(&self) -> CallCounts {
        self.counts().clone()
    }

    /// Total calls, all outcomes, whose operation satisfies `filter`.
    #[must_use]
    pub fn total(&self, filter: impl Fn(&str, &str) -> bool) -> u64 {
        self.snapshot()
            .iter()
            .filter(|((service, operation, _), _)| filter(service, operation))
            .map(|(_, n)| n)
            .sum()
    }

    /// Calls that change AWS (or DynamoDB).
    #[must_use]
    pub fn mutating(&self) -> u64 {
        self.total(|_, op| is_mutating(op))
    }

    pub fn reset(&self) {
        self.counts().clear();
    }
}

impl Intercept for Calls {
    fn name(&self) -> &'static str {
        "clawfleet::Calls"
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(metadata) = cfg.load::<Metadata>() else {
            return Ok(());
        };
        let outcome = match context.output_or_error() {
            Some(Ok(_)) => "success",
            _ if context.response().is_some_and(is_throttled) => "throttled",
            _ => "error",
        };
        *self
            .counts()
            .entry((
                metadata.service().to_owned(),
                metadata.name().to_owned(),
                outcome.to_owned(),
            ))
            .or_default() += 1;
        Ok(())
    }
}

/// Whether AWS answered "slow down". The error is type-erased here, so the code is read where
/// AWS's JSON protocols put it: HTTP 429, the `x-amzn-ErrorType` header, or the body's
/// `__type`/`code` (`"com.amazonaws.ecs#ThrottlingException"` or the bare name).
pub(crate) fn is_throttled(
    response: &aws_smithy_runtime_api::client::orchestrator::HttpResponse,
) -> bool {
    if response.status().as_u16() == 429 {
        return true;
    }
    let bare = |code: &str| {
        let code = code.split(':').next().unwrap_or(code);
        let code = code.rsplit('#').next().unwrap_or(code);
        spec::failure::is_throttling(code.trim())
    };
    if let Some(header) = response.headers().get("x-amzn-errortype") {
        return bare(header);
    }
    let Some(body) = response.body().bytes() else {
        return false;
    };
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    ["__type", "code", "Code"]
        .iter()
        .filter_map(|k| json.get(*k).and_then(serde_json::Value::as_str))
        .any(bare)
}
