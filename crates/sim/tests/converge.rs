//! The simulation itself, small enough for CI: 50 agents reach Running in virtual time, each
//! with exactly one of everything, and an idle resync afterwards finds nothing to do.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use sim::scenario::{Fleet, IMAGE, NEW_IMAGE, Simulation, register_floor, wave_floor};

#[tokio::test(start_paused = true)]
async fn fifty_agents_converge_in_virtual_time_with_one_of_everything() {
    let fleet = Fleet::of(50);
    let sim = Simulation::start(fleet.clone());
    let cold = sim.converge(IMAGE, register_floor(50)).await.unwrap();
    // One revision per agent at AWS's 20 at once, then 1/s: never faster than the floor, and
    // not far behind it once tasks take 30 s to start.
    assert!(cold.seconds >= cold.floor, "{cold:?}");
    assert!(cold.seconds < cold.floor + 120.0, "{cold:?}");
    for operation in [
        "CreateAccessPoint",
        "CreateSecret",
        "CreateRole",
        "RegisterTaskDefinition",
        "RunTask",
    ] {
        assert_eq!(
            cold.calls.get(operation),
            Some(&50),
            "{operation}: {cold:?}"
        );
    }
    assert_eq!(cold.throttled, 0);
    assert!(cold.reconcile_errors == 0.0, "{cold:?}");
    let idle = sim.idle_resync().await.unwrap();
    assert_eq!(idle.enqueued, 0, "{idle:?}");
    assert!(
        !idle
            .calls
            .keys()
            .any(|op| op.starts_with("Create") || op == "RunTask"),
        "an idle resync writes nothing: {idle:?}"
    );
    // A new image for all: every agent replaced, paced at 10 at once.
    let sim = sim.restart(10).await;
    let (register, pacing) = wave_floor(50, 10, &fleet.latencies);
    let wave = sim.converge(NEW_IMAGE, register.max(pacing)).await.unwrap();
    assert!(wave.seconds >= pacing, "{wave:?}");
    assert_eq!(wave.calls.get("RunTask"), Some(&50), "{wave:?}");
    // Every old task stopped (StopTask is idempotent; a repeat costs a call, not a task).
    assert!(
        wave.calls.get("StopTask").is_some_and(|n| *n >= 50),
        "{wave:?}"
    );
    sim.stop().await;
}
