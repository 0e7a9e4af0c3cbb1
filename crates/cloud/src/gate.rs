//! The one place every call to ECS, EFS and Secrets Manager passes through: it waits for its
//! operation's rate limit before sending ([`crate::ratelimit`]), classifies the error (see
//! [`crate::ErrorClass`]), and reports throttling back so the limit slows down: every throttled
//! attempt, the SDK's retries included ([`ThrottleFeedback`]). Retries of transient errors are
//! the SDK's standard mode within a call (except RegisterTaskDefinition, which has no token and
//! is retried by the executor after re-reading), and the work queue's per-agent backoff across
//! calls. DynamoDB calls do not pass it: the table has its own capacity, and the
//! store classifies its errors with the same [`spec::failure`] rules.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::error::{AwsError, ErrorClass};

/// Client-side rate limiting, per AWS operation.
pub trait Gate: Send + Sync + Debug {
    /// Waits until `operation` of `service` may be sent, or refuses it (a replica that is no
    /// longer the leader must not change AWS).
    fn pass<'a>(
        &'a self,
        service: &'static str,
        operation: &'static str,
    ) -> Pin<Box<dyn Future<Output = Result<(), AwsError>> + Send + 'a>>;
    /// As [`Gate::pass`], yielding to every normal caller of the same limits: for work that
    /// can trail (a deleted agent's purge revision) behind work someone waits for.
    fn pass_low_priority<'a>(
        &'a self,
        service: &'static str,
        operation: &'static str,
    ) -> Pin<Box<dyn Future<Output = Result<(), AwsError>> + Send + 'a>> {
        self.pass(service, operation)
    }
    /// Whether a low-priority call of `operation` would pass now without waiting: work that
    /// can trail asks first and leaves its turn to a later pass rather than hold a worker.
    fn has_spare(&self, _service: &str, _operation: &str) -> bool {
        true
    }
    /// AWS throttled `operation` of `service`: slow down. Called for every throttled attempt,
    /// the SDK's own retries included ([`ThrottleFeedback`]).
    fn throttled(&self, service: &str, operation: &str);
}

/// A gate whose every call passes at low priority ([`Gate::pass_low_priority`]).
#[derive(Debug, Clone)]
pub struct LowPriority(pub SharedGate);

impl Gate for LowPriority {
    fn pass<'a>(
        &'a self,
        service: &'static str,
        operation: &'static str,
    ) -> Pin<Box<dyn Future<Output = Result<(), AwsError>> + Send + 'a>> {
        self.0.pass_low_priority(service, operation)
    }
    fn has_spare(&self, service: &str, operation: &str) -> bool {
        self.0.has_spare(service, operation)
    }
    fn throttled(&self, service: &str, operation: &str) {
        self.0.throttled(service, operation);
    }
}

/// No limit: one-shot commands and tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct Open;

impl Gate for Open {
    fn pass<'a>(
        &'a self,
        _: &'static str,
        _: &'static str,
    ) -> Pin<Box<dyn Future<Output = Result<(), AwsError>> + Send + 'a>> {
        Box::pin(std::future::ready(Ok(())))
    }
    fn throttled(&self, _: &str, _: &str) {}
}

/// A shared gate.
pub type SharedGate = Arc<dyn Gate>;

/// An SDK interceptor that reports every throttled attempt to the gate, so the rate limit
/// slows down at the first ThrottlingException rather than after the SDK's last retry (its
/// retries do not pass the gate, and a throttle they absorb would otherwise go unseen).
#[derive(Debug, Clone)]
pub struct ThrottleFeedback {
    gate: SharedGate,
    /// The gate's name for the client's service (`ECS`, `EFS`, `SecretsManager`, `IAM`).
    service: &'static str,
}

impl ThrottleFeedback {
    #[must_use]
    pub fn new(gate: SharedGate, service: &'static str) -> Self {
        Self { gate, service }
    }
}

impl aws_smithy_runtime_api::client::interceptors::Intercept for ThrottleFeedback {
    fn name(&self) -> &'static str {
        "clawfleet::ThrottleFeedback"
    }

    fn read_after_attempt(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef<'_>,
        _runtime_components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        if let Some(metadata) = cfg.load::<aws_smithy_runtime_api::client::orchestrator::Metadata>()
            && context.response().is_some_and(crate::calls::is_throttled)
        {
            self.gate.throttled(self.service, metadata.name());
        }
        Ok(())
    }
}

/// The open gate, shared.
#[must_use]
pub fn open() -> SharedGate {
    Arc::new(Open)
}

/// Sends an SDK request through the gate.
pub(crate) trait Through<T, E>:
    Future<Output = Result<T, SdkError<E, HttpResponse>>> + Sized
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    async fn through(
        self,
        gate: &dyn Gate,
        service: &'static str,
        operation: &'static str,
    ) -> Result<T, AwsError> {
        gate.pass(service, operation).await?;
        self.await.map_err(|e| {
            let e = AwsError::from_sdk(service, operation, &e);
            if e.class == ErrorClass::Throttled {
                gate.throttled(service, operation);
            }
            e
        })
    }
}

impl<F, T, E> Through<T, E> for F
where
    F: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
}
