//! Weekly schedules: when an agent may run, in its owner's time zone.
//!
//! A schedule is an IANA time zone and up to [`MAX_WINDOWS`] weekly windows of local wall-clock
//! time. Windows are turned into instants day by day with jiff's tz database, so a window edge
//! that falls into a daylight-saving gap or fold resolves as [`Disambiguation::Compatible`]
//! does (a time in a gap moves forward by the gap, a repeated time takes its first occurrence),
//! and windows that meet (one ending at `24:00`, the next starting at `00:00`) are one span.

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::{Disambiguation, TimeZone};
use jiff::{Timestamp, ToSpan};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// ECS tags and DynamoDB maps have room for many more; 28 (four a day) is more than any
/// working-hours pattern needs and keeps the evaluation a few dozen instants.
pub const MAX_WINDOWS: usize = 28;

/// The schedule as written (`schedule` in a manifest, a DynamoDB map in the console).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("required" = ["timezone", "windows"]))]
pub struct ScheduleDocument {
    /// An IANA time zone name, e.g. Europe/Madrid.
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub timezone: String,
    /// Weekly windows in which the agent runs; outside them it is stopped.
    #[serde(default)]
    #[schemars(length(min = 1, max = MAX_WINDOWS))]
    pub windows: Vec<WindowDocument>,
}

/// One weekly window as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("required" = ["days", "start", "end"]))]
pub struct WindowDocument {
    /// Days the window opens on: mon, tue, wed, thu, fri, sat, sun.
    #[serde(default)]
    #[schemars(
        length(min = 1, max = 7),
        extend("uniqueItems" = true, "items" = {"enum": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]})
    )]
    pub days: Vec<String>,
    /// Local opening time, HH:MM (00:00 to 23:59).
    #[serde(default)]
    #[schemars(regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub start: String,
    /// Local closing time, HH:MM, after start; 24:00 is the end of the day.
    #[serde(default)]
    #[schemars(regex(pattern = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"))]
    pub end: String,
}

/// A validated schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Schedule {
    pub timezone: String,
    pub windows: Vec<Window>,
    #[serde(skip)]
    tz: TimeZone,
}

/// Without `tz`, which is looked up from `timezone`.
impl std::hash::Hash for Schedule {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.timezone.hash(state);
        self.windows.hash(state);
    }
}

/// A validated window: minutes since local midnight, `start < end <= 1440`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Window {
    pub days: Vec<Day>,
    pub start: u16,
    pub end: u16,
}

/// A day of the week as the schedule spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Day {
    const ALL: [(&'static str, Day, Weekday); 7] = [
        ("mon", Day::Mon, Weekday::Monday),
        ("tue", Day::Tue, Weekday::Tuesday),
        ("wed", Day::Wed, Weekday::Wednesday),
        ("thu", Day::Thu, Weekday::Thursday),
        ("fri", Day::Fri, Weekday::Friday),
        ("sat", Day::Sat, Weekday::Saturday),
        ("sun", Day::Sun, Weekday::Sunday),
    ];

    fn parse(text: &str) -> Option<Day> {
        Self::ALL
            .iter()
            .find(|(name, _, _)| *name == text)
            .map(|(_, day, _)| *day)
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, day, _)| *day == self)
            .map_or("", |(name, _, _)| name)
    }

    fn weekday(self) -> Weekday {
        Self::ALL
            .iter()
            .find(|(_, day, _)| *day == self)
            .map_or(Weekday::Monday, |(_, _, weekday)| *weekday)
    }
}

/// Where an instant falls in a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScheduleState {
    /// Inside a window that opened at `since` and closes at `until` (seconds since the epoch).
    Inside { since: i64, until: i64 },
    /// Outside every window; the next opens at `next_start`.
    Outside { next_start: i64 },
}

/// Parses `HH:MM` into minutes since midnight; `24:00` only when `end_of_day`.
fn minutes(text: &str, end_of_day: bool) -> Option<u16> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !(h.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) if end_of_day => Some(1440),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

/// A broken rule of a schedule: the path under `schedule` and the rule.
pub(crate) type Problem = (String, String);

impl ScheduleDocument {
    /// Checks every rule; errors name the field under `schedule`.
    pub(crate) fn validate(&self) -> Result<Schedule, Vec<Problem>> {
        let mut problems: Vec<Problem> = Vec::new();
        let tz = if self.timezone.is_empty() {
            problems.push((
                "schedule.timezone".into(),
                "is required: an IANA time zone name, e.g. Europe/Madrid".into(),
            ));
            None
        } else {
            match TimeZone::get(&self.timezone) {
                Ok(tz) => Some(tz),
                Err(_) => {
                    problems.push((
                        "schedule.timezone".into(),
                        format!(
                            "unknown time zone \"{}\": must be an IANA name, e.g. Europe/Madrid",
                            self.timezone
                        ),
                    ));
                    None
                }
            }
        };
        if self.windows.is_empty() {
            problems.push((
                "schedule.windows".into(),
                "must hold at least one window (an agent that should never run has desired_state: stopped)".into(),
            ));
        }
        if self.windows.len() > MAX_WINDOWS {
            problems.push((
                "schedule.windows".into(),
                format!("at most {MAX_WINDOWS} windows (has {})", self.windows.len()),
            ));
        }
        let mut windows = Vec::new();
        for (i, w) in self.windows.iter().enumerate() {
            let field = format!("schedule.windows[{i}]");
            let mut days = Vec::new();
            if w.days.is_empty() {
                problems.push((format!("{field}.days"), "must name at least one day".into()));
            }
            for (j, name) in w.days.iter().enumerate() {
                match Day::parse(name) {
                    Some(day) if days.contains(&day) => problems.push((
                        format!("{field}.days[{j}]"),
                        format!("duplicate day \"{name}\""),
                    )),
                    Some(day) => days.push(day),
                    None => problems.push((
                        format!("{field}.days[{j}]"),
                        format!("\"{name}\" is not a day: use mon, tue, wed, thu, fri, sat or sun"),
                    )),
                }
            }
            let start = minutes(&w.start, false);
            let end = minutes(&w.end, true);
            if start.is_none() {
                problems.push((
                    format!("{field}.start"),
                    "must be a local time HH:MM from 00:00 to 23:59".into(),
                ));
            }
            if end.is_none() {
                problems.push((
                    format!("{field}.end"),
                    "must be a local time HH:MM from 00:01 to 24:00".into(),
                ));
            }
            if let (Some(start), Some(end)) = (start, end) {
                if start >= end {
                    problems.push((
                        format!("{field}.end"),
                        format!(
                            "must be after start ({}); a window over midnight is written as two windows, e.g. {} to 24:00 and 00:00 to {} on the next day",
                            w.start, w.start, w.end
                        ),
                    ));
                } else {
                    windows.push((i, Window { days, start, end }));
                }
            }
        }
        for (a, (i, first)) in windows.iter().enumerate() {
            for (j, second) in windows.iter().skip(a + 1) {
                let shared = first.days.iter().find(|d| second.days.contains(d));
                if let Some(day) = shared
                    && first.start < second.end
                    && second.start < first.end
                {
                    problems.push((
                        format!("schedule.windows[{j}]"),
                        format!(
                            "overlaps schedule.windows[{i}] on {}; windows may meet but not overlap",
                            day.as_str()
                        ),
                    ));
                }
            }
        }
        match tz {
            Some(tz) if problems.is_empty() => Ok(Schedule {
                timezone: self.timezone.clone(),
                windows: windows.into_iter().map(|(_, w)| w).collect(),
                tz,
            }),
            _ => Err(problems),
        }
    }
}

impl Schedule {
    /// The wire shape, for writing the spec back.
    #[must_use]
    pub fn to_document(&self) -> ScheduleDocument {
        let hhmm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
        ScheduleDocument {
            timezone: self.timezone.clone(),
            windows: self
                .windows
                .iter()
                .map(|w| WindowDocument {
                    days: w.days.iter().map(|d| d.as_str().to_owned()).collect(),
                    start: hhmm(w.start),
                    end: hhmm(w.end),
                })
                .collect(),
        }
    }

    /// The local wall-clock time `minute` of `date` as an instant, with daylight-saving gaps
    /// and folds resolved as `Disambiguation::Compatible`.
    fn instant(&self, date: Date, minute: u16) -> Option<i64> {
        let (date, minute) = if minute >= 1440 {
            (date.tomorrow().ok()?, minute - 1440)
        } else {
            (date, minute)
        };
        let hour = i8::try_from(minute / 60).ok()?;
        let min = i8::try_from(minute % 60).ok()?;
        let time = Time::new(hour, min, 0, 0).ok()?;
        self.tz
            .to_ambiguous_timestamp(date.to_datetime(time))
            .disambiguate(Disambiguation::Compatible)
            .ok()
            .map(Timestamp::as_second)
    }

    /// The spans in which the agent may run from the day before `now`'s local date to eight
    /// days after, as sorted instants with meeting spans joined.
    fn spans(&self, now: i64) -> Vec<(i64, i64)> {
        let Ok(now) = Timestamp::from_second(now) else {
            return Vec::new();
        };
        let today = now.to_zoned(self.tz.clone()).date();
        let mut spans = Vec::new();
        for offset in -1..=8_i64 {
            let Ok(date) = today.checked_add(offset.days()) else {
                continue;
            };
            for window in &self.windows {
                if !window.days.iter().any(|d| d.weekday() == date.weekday()) {
                    continue;
                }
                if let (Some(start), Some(end)) = (
                    self.instant(date, window.start),
                    self.instant(date, window.end),
                ) && start < end
                {
                    spans.push((start, end));
                }
            }
        }
        spans.sort_unstable();
        let mut joined: Vec<(i64, i64)> = Vec::with_capacity(spans.len());
        for (start, end) in spans {
            match joined.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => joined.push((start, end)),
            }
        }
        joined
    }

    /// Where `now` (seconds since the epoch) falls: inside a window, or when the next opens.
    /// `lead` seconds before a window opens already count as inside it, so the agent is up
    /// when its window opens.
    #[must_use]
    pub fn state_at(&self, now: i64, lead: i64) -> ScheduleState {
        let spans = self.spans(now + lead);
        if let Some(&(since, until)) = spans
            .iter()
            .find(|(start, end)| *start - lead <= now && now < *end)
        {
            return ScheduleState::Inside { since, until };
        }
        match spans.iter().find(|(start, _)| *start - lead > now) {
            Some(&(next_start, _)) => ScheduleState::Outside { next_start },
            // Unreachable for a valid schedule (every week has a window); looking again in a
            // day is the safe answer.
            None => ScheduleState::Outside {
                next_start: now + 86_400,
            },
        }
    }
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
