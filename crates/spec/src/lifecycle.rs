//! Whether an agent should have a task at an instant: its spec's `desired_state`, its schedule
//! and its idleness, in that order of precedence. Deletion, which outranks the schedule, is the
//! planner's first question and never reaches here.
//!
//! Pure: the controller feeds it `now` and the last activity it read; the tests feed it fixed
//! instants.

use crate::agent::{AgentSpec, DesiredState};
use crate::schedule::ScheduleState;

/// What the agent should be doing now, and when that changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effective {
    /// Have a task. `until`: the next instant this may change (a window closing, the idle
    /// deadline), in seconds since the epoch; `None` while nothing but a change can stop it.
    Run { until: Option<i64> },
    /// `desired_state: stopped`.
    Stopped,
    /// Outside the schedule's windows. `next_start`: when the next window opens; `wake_at`:
    /// when to look again (`next_start` less the agent's lead).
    Scheduled { next_start: i64, wake_at: i64 },
    /// No activity for `idle_stop_after` since `since`. `until`: when the current window
    /// closes, after which the agent is `Scheduled` rather than idle.
    Idle { since: i64, until: Option<i64> },
}

impl Effective {
    /// Whether the agent should have a task.
    #[must_use]
    pub fn runs(self) -> bool {
        matches!(self, Self::Run { .. })
    }

    /// When to look at the agent again without any change: the next boundary.
    #[must_use]
    pub fn next_boundary(self) -> Option<i64> {
        match self {
            Self::Run { until } | Self::Idle { until, .. } => until,
            Self::Scheduled { wake_at, .. } => Some(wake_at),
            Self::Stopped => None,
        }
    }
}

/// How many seconds before its window opens this agent starts: `lead` less a share of up to
/// half of it taken from the agent id, so that a thousand windows opening at 08:00 spread their
/// RunTasks over a minute (with the default lead of two) instead of meeting Fargate's launch
/// rate in one second, and each agent still starts at least `lead / 2` early.
#[must_use]
pub fn lead_for(agent_id: &str, lead: i64) -> i64 {
    if lead <= 1 {
        return lead.max(0);
    }
    // FNV-1a: stable across builds and platforms, unlike the standard hasher.
    let hash = agent_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let spread = u64::try_from(lead / 2).unwrap_or(1).max(1);
    lead - i64::try_from(hash % spread).unwrap_or(0)
}

/// The agent's effective state at `now`. `last_activity`: the latest activity or wake known
/// (or the agent's creation), seconds since the epoch; `lead`: this agent's
/// [`lead_for`].
///
/// Idleness counts from the latest of the last activity and the opening of the current window,
/// so that an agent whose window opens gets `idle_stop_after` to be used before it idles. An
/// agent with no known activity at all is never idle: nothing says since when it would be.
#[must_use]
pub fn effective(spec: &AgentSpec, last_activity: Option<i64>, now: i64, lead: i64) -> Effective {
    if spec.desired_state == DesiredState::Stopped {
        return Effective::Stopped;
    }
    let (opened, closes) = match spec.schedule.as_ref().map(|s| s.state_at(now, lead)) {
        Some(ScheduleState::Outside { next_start }) => {
            return Effective::Scheduled {
                next_start,
                wake_at: next_start - lead,
            };
        }
        Some(ScheduleState::Inside { since, until }) => (Some(since - lead), Some(until)),
        None => (None, None),
    };
    let Some(idle_after) = spec.idle_stop_after else {
        return Effective::Run { until: closes };
    };
    let Some(since) = last_activity.max(opened) else {
        return Effective::Run { until: closes };
    };
    let deadline = since.saturating_add(i64::try_from(idle_after).unwrap_or(i64::MAX));
    if now >= deadline {
        Effective::Idle {
            since: deadline,
            until: closes,
        }
    } else {
        Effective::Run {
            until: Some(closes.map_or(deadline, |c| c.min(deadline))),
        }
    }
}

/// The grammar of `idle_stop_after`: hours, minutes and seconds, in that order, each optional
/// (`30m`, `2h`, `1h30m`, `90s`).
pub const DURATION_PATTERN: &str = r"^([0-9]+h)?([0-9]+m)?([0-9]+s)?$";

/// The shortest `idle_stop_after`: a stop and a start cost more than a few idle minutes.
pub const MIN_IDLE_STOP_AFTER_SECS: u64 = 300;

/// Parses a [`DURATION_PATTERN`] duration into seconds; `None` when it does not match or is
/// empty.
#[must_use]
pub fn parse_duration(text: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut rest = text;
    let mut units = ['h', 'm', 's'].iter();
    if text.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let value: u64 = rest[..digits].parse().ok()?;
        let unit = rest[digits..].chars().next()?;
        // Units must come in order, each at most once.
        units.find(|u| **u == unit)?;
        let factor = match unit {
            'h' => 3600,
            'm' => 60,
            _ => 1,
        };
        total = total.checked_add(value.checked_mul(factor)?)?;
        rest = &rest[digits + 1..];
    }
    Some(total)
}

/// Formats seconds as [`parse_duration`] reads them, shortest first: `1h30m`, `5m`.
#[must_use]
pub fn format_duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// What a wake at `now` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WakeAnswer {
    /// The agent runs (an idle one starts): the controller is asked.
    Wakes,
    /// `desired_state: stopped` wins over a wake: nothing starts.
    Stopped,
    /// Outside the schedule's windows: nothing starts until `next_start`.
    OutsideSchedule { next_start: i64 },
}

/// What a wake of `spec` at `now` does: the API's and the CLI's one answer. A wake is
/// activity, so only `desired_state` and the schedule can refuse it.
#[must_use]
pub fn wake(spec: &AgentSpec, now: i64) -> WakeAnswer {
    match effective(spec, Some(now), now, 0) {
        Effective::Stopped => WakeAnswer::Stopped,
        Effective::Scheduled { next_start, .. } => WakeAnswer::OutsideSchedule { next_start },
        Effective::Run { .. } | Effective::Idle { .. } => WakeAnswer::Wakes,
    }
}
