//! Leader election: only the replica holding the lease reconciles, resyncs and reads the
//! stream, and every mutating AWS call checks the lease first ([`Fence`]).
//!
//! A replica renews every `renew` and believes in its lease until `duration` after it asked
//! for it, less a tenth for safety, on its monotonic clock: a replica that is paused, or cannot
//! reach DynamoDB, stops acting before the table lets another take over. SDK operation
//! timeouts are kept below `duration - renew` so a call in flight cannot outlive the lease.
//! Launch tokens are the last fence: a RunTask replayed by a deposed leader starts nothing new.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cloud::{AwsError, ErrorClass, Gate};
use store::Store;
use store::lease::Held;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::metrics::Metrics;
use cloud::Limits;

/// Takes and keeps the lease.
#[derive(Debug)]
pub struct Elector {
    store: Store,
    holder: String,
    duration: Duration,
    renew: Duration,
    held: Mutex<Option<Held>>,
    metrics: Option<Arc<Metrics>>,
}

impl Elector {
    #[must_use]
    pub fn new(
        store: Store,
        holder: impl Into<String>,
        duration: Duration,
        renew: Duration,
        metrics: Option<Arc<Metrics>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            holder: holder.into(),
            duration,
            renew,
            held: Mutex::new(None),
            metrics,
        })
    }

    fn held(&self) -> Option<Held> {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, held: Option<Held>) {
        let was = self.is_leader();
        *self.held.lock().unwrap_or_else(PoisonError::into_inner) = held;
        let is = self.is_leader();
        if was != is {
            info!(holder = %self.holder, leader = is, "leadership changed");
        }
        if let Some(m) = &self.metrics {
            m.set_leader(is);
        }
    }

    /// This replica's name in the lease.
    #[must_use]
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Whether this replica may act now.
    #[must_use]
    pub fn is_leader(&self) -> bool {
        self.held()
            .is_some_and(|h| Instant::now() + self.duration / 10 < h.deadline)
    }

    /// The fencing token of the current lease.
    #[must_use]
    pub fn term(&self) -> Option<u64> {
        self.held().map(|h| h.term)
    }

    /// One round: renew the lease held, or try to take it.
    pub async fn step(&self) {
        let next = match self.held() {
            Some(held) if Instant::now() < held.deadline => {
                match self
                    .store
                    .renew_lease(&self.holder, &held, self.duration)
                    .await
                {
                    Ok(next) => next,
                    Err(e) => {
                        warn!(error = %e, "lease renewal failed; acting until the local deadline");
                        Some(held)
                    }
                }
            }
            _ => match self.store.acquire_lease(&self.holder, self.duration).await {
                Ok(next) => next,
                Err(e) => {
                    warn!(error = %e, "lease acquisition failed");
                    None
                }
            },
        };
        self.set(next);
    }

    /// Renews or takes the lease every `renew` until `stop`, then gives it up.
    pub async fn run(self: Arc<Self>, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            self.step().await;
            tokio::select! {
                () = tokio::time::sleep(self.renew) => {}
                () = &mut stop => break,
            }
        }
        if let Some(held) = self.held()
            && let Err(e) = self.store.release_lease(&self.holder, &held).await
        {
            warn!(error = %e, "could not release the lease; it expires on its own");
        }
        self.set(None);
    }
}

/// Rate limits, and no mutating call unless this replica leads.
#[derive(Debug)]
pub struct Fence {
    pub limits: Arc<Limits>,
    pub elector: Arc<Elector>,
}

impl Gate for Fence {
    fn pass<'a>(
        &'a self,
        service: &'static str,
        operation: &'static str,
    ) -> Pin<Box<dyn Future<Output = Result<(), AwsError>> + Send + 'a>> {
        Box::pin(self.fenced(service, operation, false))
    }

    fn pass_low_priority<'a>(
        &'a self,
        service: &'static str,
        operation: &'static str,
    ) -> Pin<Box<dyn Future<Output = Result<(), AwsError>> + Send + 'a>> {
        Box::pin(self.fenced(service, operation, true))
    }

    fn has_spare(&self, service: &str, operation: &str) -> bool {
        self.limits.has_spare(service, operation)
    }

    fn throttled(&self, service: &str, operation: &str) {
        self.limits.throttled(service, operation);
    }
}

impl Fence {
    async fn fenced(
        &self,
        service: &'static str,
        operation: &'static str,
        low_priority: bool,
    ) -> Result<(), AwsError> {
        {
            if cloud::calls::is_mutating(operation) && !self.elector.is_leader() {
                return Err(AwsError {
                    service,
                    operation,
                    code: Some("NotLeader".into()),
                    message: "this replica does not hold the lease; it changes nothing".into(),
                    class: ErrorClass::Terminal,
                });
            }
            if low_priority {
                self.limits.pass_low_priority(service, operation).await?;
            } else {
                self.limits.pass(service, operation).await?;
            }
            // The wait for a token may outlast the lease: check again right before sending.
            if cloud::calls::is_mutating(operation) && !self.elector.is_leader() {
                return Err(AwsError {
                    service,
                    operation,
                    code: Some("NotLeader".into()),
                    message: "this replica lost the lease while waiting; it changes nothing".into(),
                    class: ErrorClass::Terminal,
                });
            }
            Ok(())
        }
    }
}
