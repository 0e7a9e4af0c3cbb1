//! Counting AWS calls by service, operation and outcome, with an SDK interceptor, so that
//! tests and metrics see every request the SDK sends (retries included).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// `(service, operation, outcome)` -> count; outcome is `success` or `error`.
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
    /// Every call so far.
    #[must_use]
    pub fn snapshot(&self) -> CallCounts {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
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
        if let Ok(mut c) = self.counts.lock() {
            c.clear();
        }
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
            _ => "error",
        };
        if let Ok(mut counts) = self.counts.lock() {
            *counts
                .entry((
                    metadata.service().to_owned(),
                    metadata.name().to_owned(),
                    outcome.to_owned(),
                ))
                .or_default() += 1;
        }
        Ok(())
    }
}
