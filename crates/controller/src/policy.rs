//! What happens after a reconcile: kube-runtime's `error_policy`, as one pure function from the
//! reconcile's result to the work queue's next step, so that the whole requeue policy reads in
//! one table.
//!
//! | result | queue | `result` label |
//! |---|---|---|
//! | converged, deleted, waiting on the owner | forget (wait for a change) | success |
//! | waiting on AWS | forget, then look again after the wait | requeue_after |
//! | converged until a schedule or idle boundary | forget, then look again at the boundary | success |
//! | throttled or transient error (AWS or DynamoDB) | per-agent exponential backoff | error |
//! | terminal AWS error | forget; the status says why; a change or the next full resync round (`--relist-interval`) brings it back | error |
//! | terminal DynamoDB error (AccessDenied, validation) | look again after the resync interval: the status write failed too, so no change would ever come | error |

use std::time::Duration;

use spec::failure::ErrorClass;

use crate::reconcile::{Outcome, ReconcileError};

/// The queue operation after a reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    /// Reset the agent's backoff; nothing more until a change (a watch event, the resync).
    Forget,
    /// Reset the agent's backoff and look again after this long.
    After(Duration),
    /// Count a failure and look again after the agent's backoff.
    Backoff,
}

/// The `result` label of `controller_runtime_reconcile_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Result {
    Success,
    RequeueAfter,
    Error,
}

impl Result {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::RequeueAfter => "requeue_after",
            Self::Error => "error",
        }
    }
}

/// The decision about one reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub requeue: Requeue,
    pub result: Result,
    /// `Some(class)` when the failure was DynamoDB's: counted in `clawfleet_store_errors_total`.
    pub store_error: Option<ErrorClass>,
}

/// Decides what the queue does after a reconcile that ended in `result`; `resync` is the
/// resync interval, the period at which terminal store errors are looked at again.
#[must_use]
pub fn decide(result: &std::result::Result<Outcome, ReconcileError>, resync: Duration) -> Decision {
    let decision = |requeue, result| Decision {
        requeue,
        result,
        store_error: None,
    };
    match result {
        Ok(Outcome::Waiting(wait)) => decision(
            Requeue::After(Duration::from_secs(wait.after_secs.max(1))),
            Result::RequeueAfter,
        ),
        Ok(Outcome::Revisit(after)) => decision(
            Requeue::After(Duration::from_secs((*after).max(1))),
            Result::Success,
        ),
        Ok(Outcome::Converged | Outcome::Deleted | Outcome::WaitingOnOwner(_)) => {
            decision(Requeue::Forget, Result::Success)
        }
        Err(error) => {
            let class = error.class();
            let store = error.is_store();
            let requeue = match (class, store) {
                (ErrorClass::Throttled | ErrorClass::Transient, _) => Requeue::Backoff,
                (ErrorClass::Terminal, true) => Requeue::After(resync),
                (ErrorClass::Terminal, false) => Requeue::Forget,
            };
            Decision {
                requeue,
                result: Result::Error,
                store_error: store.then_some(class),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloud::AwsError;
    use plan::Wait;
    use store::StoreError;

    const RESYNC: Duration = Duration::from_secs(60);

    /// A case: its name, the reconcile's result, and the decision expected.
    type Row = (
        &'static str,
        std::result::Result<Outcome, ReconcileError>,
        Requeue,
        Result,
        Option<ErrorClass>,
    );

    fn aws(class: ErrorClass) -> ReconcileError {
        ReconcileError::Aws(AwsError {
            service: "ECS",
            operation: "RunTask",
            code: Some("Code".into()),
            message: "Code: m".into(),
            class,
        })
    }

    fn dynamodb(class: ErrorClass) -> ReconcileError {
        ReconcileError::Store(StoreError::Aws {
            operation: "PutItem",
            table: "t".into(),
            code: Some("Code".into()),
            message: "Code: m".into(),
            class,
        })
    }

    #[test]
    fn every_outcome_and_error_class_maps_to_one_queue_operation() {
        let wait = |secs| {
            Ok(Outcome::Waiting(Wait {
                after_secs: secs,
                reason: "r".into(),
            }))
        };
        let table: Vec<Row> = vec![
            (
                "converged",
                Ok(Outcome::Converged),
                Requeue::Forget,
                Result::Success,
                None,
            ),
            (
                "converged until a schedule boundary in an hour",
                Ok(Outcome::Revisit(3600)),
                Requeue::After(Duration::from_secs(3600)),
                Result::Success,
                None,
            ),
            (
                "deleted",
                Ok(Outcome::Deleted),
                Requeue::Forget,
                Result::Success,
                None,
            ),
            (
                "waiting on owner",
                Ok(Outcome::WaitingOnOwner("keys".into())),
                Requeue::Forget,
                Result::Success,
                None,
            ),
            (
                "waiting 5 s",
                wait(5),
                Requeue::After(Duration::from_secs(5)),
                Result::RequeueAfter,
                None,
            ),
            (
                "waiting 0 s is 1 s",
                wait(0),
                Requeue::After(Duration::from_secs(1)),
                Result::RequeueAfter,
                None,
            ),
            (
                "aws throttled",
                Err(aws(ErrorClass::Throttled)),
                Requeue::Backoff,
                Result::Error,
                None,
            ),
            (
                "aws transient",
                Err(aws(ErrorClass::Transient)),
                Requeue::Backoff,
                Result::Error,
                None,
            ),
            (
                "aws terminal",
                Err(aws(ErrorClass::Terminal)),
                Requeue::Forget,
                Result::Error,
                None,
            ),
            (
                "refused",
                Err(ReconcileError::Refused("taken".into())),
                Requeue::Forget,
                Result::Error,
                None,
            ),
            (
                "store throttled",
                Err(dynamodb(ErrorClass::Throttled)),
                Requeue::Backoff,
                Result::Error,
                Some(ErrorClass::Throttled),
            ),
            (
                "store transient",
                Err(dynamodb(ErrorClass::Transient)),
                Requeue::Backoff,
                Result::Error,
                Some(ErrorClass::Transient),
            ),
            (
                "store access denied",
                Err(dynamodb(ErrorClass::Terminal)),
                Requeue::After(RESYNC),
                Result::Error,
                Some(ErrorClass::Terminal),
            ),
            (
                "store conflict",
                Err(ReconcileError::Store(StoreError::Conflict {
                    agent_id: "a".into(),
                })),
                Requeue::Backoff,
                Result::Error,
                Some(ErrorClass::Transient),
            ),
            (
                "store table shape",
                Err(ReconcileError::Store(StoreError::TableShape {
                    table: "t".into(),
                    problem: "p".into(),
                })),
                Requeue::After(RESYNC),
                Result::Error,
                Some(ErrorClass::Terminal),
            ),
        ];
        for (name, result, requeue, label, store_error) in table {
            assert_eq!(
                decide(&result, RESYNC),
                Decision {
                    requeue,
                    result: label,
                    store_error
                },
                "{name}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_revisit_hands_the_agent_out_at_its_boundary_not_before() {
        // An agent whose window opens in two hours (less its lead): the runtime forgets it
        // and queues it for then.
        let decision = decide(&Ok(Outcome::Revisit(7200)), RESYNC);
        let Requeue::After(delay) = decision.requeue else {
            panic!("expected a requeue after, got {:?}", decision.requeue);
        };
        let queue = crate::queue::Queue::new();
        let start = tokio::time::Instant::now();
        queue.add_after("acme-support", delay);
        tokio::time::sleep(Duration::from_secs(7199)).await;
        assert!(
            tokio::time::timeout(Duration::from_millis(999), queue.get())
                .await
                .is_err(),
            "handed out before the boundary"
        );
        let item = queue.get().await.expect("handed out");
        assert_eq!(item.agent_id, "acme-support");
        assert_eq!(start.elapsed(), Duration::from_secs(7200));
    }
}
