//! Schedules and the effective state, on fixed instants: one test per validation rule, a whole
//! week, window edges, the lead, both daylight-saving changes, and idleness.

use jiff::Timestamp;
use jiff::civil::date;
use jiff::tz::TimeZone;

use super::{ScheduleDocument, ScheduleState, WindowDocument};
use crate::AgentDocument;
use crate::lifecycle::{Effective, effective, format_duration, lead_for, parse_duration};

fn window(days: &[&str], start: &str, end: &str) -> WindowDocument {
    WindowDocument {
        days: days.iter().map(|d| (*d).to_owned()).collect(),
        start: start.into(),
        end: end.into(),
    }
}

fn schedule(timezone: &str, windows: Vec<WindowDocument>) -> ScheduleDocument {
    ScheduleDocument {
        timezone: timezone.into(),
        windows,
    }
}

fn weekdays() -> ScheduleDocument {
    schedule(
        "Europe/Madrid",
        vec![window(
            &["mon", "tue", "wed", "thu", "fri"],
            "08:00",
            "20:00",
        )],
    )
}

fn document(schedule: Option<ScheduleDocument>, idle: Option<&str>) -> AgentDocument {
    AgentDocument {
        agent_id: Some("acme-support".into()),
        client_id: Some("acme".into()),
        schedule,
        idle_stop_after: idle.map(str::to_owned),
        ..AgentDocument::default()
    }
}

/// The errors of a refused schedule, as `field: rule` lines.
#[track_caller]
fn refused(schedule: ScheduleDocument, field: &str) -> String {
    match document(Some(schedule), None).validate() {
        Ok(_) => panic!("expected {field} to be refused"),
        Err(e) => {
            assert!(e.names(field), "expected an error naming {field}, got: {e}");
            e.to_string()
        }
    }
}

#[track_caller]
fn utc(text: &str) -> i64 {
    match text.parse::<Timestamp>() {
        Ok(t) => t.as_second(),
        Err(e) => panic!("{text}: {e}"),
    }
}

/// Seconds since the epoch of a local wall-clock time in Madrid (unambiguous ones only).
fn madrid(y: i16, m: i8, d: i8, h: i8, min: i8) -> i64 {
    let tz = TimeZone::get("Europe/Madrid").unwrap_or(TimeZone::UTC);
    match date(y, m, d).at(h, min, 0, 0).to_zoned(tz) {
        Ok(z) => z.timestamp().as_second(),
        Err(e) => panic!("{e}"),
    }
}

fn state(doc: &ScheduleDocument, now: i64, lead: i64) -> ScheduleState {
    match doc.validate() {
        Ok(s) => s.state_at(now, lead),
        Err(e) => panic!("{e:?}"),
    }
}

// ----- validation: one test per rule -----

#[test]
fn an_unknown_time_zone_is_refused_naming_it() {
    let msg = refused(
        schedule("Europe/Atlantis", weekdays().windows),
        "schedule.timezone",
    );
    assert!(
        msg.contains("unknown time zone \"Europe/Atlantis\""),
        "{msg}"
    );
}

#[test]
fn a_missing_time_zone_is_refused() {
    refused(schedule("", weekdays().windows), "schedule.timezone");
}

#[test]
fn a_bad_day_name_is_refused_naming_its_index() {
    let msg = refused(
        schedule("UTC", vec![window(&["mon", "monday"], "08:00", "20:00")]),
        "schedule.windows[0].days[1]",
    );
    assert!(msg.contains("\"monday\" is not a day"), "{msg}");
}

#[test]
fn a_window_without_days_is_refused() {
    refused(
        schedule("UTC", vec![window(&[], "08:00", "20:00")]),
        "schedule.windows[0].days",
    );
}

#[test]
fn a_start_at_or_after_the_end_is_refused_saying_how_to_cross_midnight() {
    let msg = refused(
        schedule("UTC", vec![window(&["fri"], "22:00", "06:00")]),
        "schedule.windows[0].end",
    );
    assert!(
        msg.contains("a window over midnight is written as two windows"),
        "{msg}"
    );
    refused(
        schedule("UTC", vec![window(&["fri"], "08:00", "08:00")]),
        "schedule.windows[0].end",
    );
}

#[test]
fn malformed_times_are_refused() {
    refused(
        schedule("UTC", vec![window(&["fri"], "8:00", "20:00")]),
        "schedule.windows[0].start",
    );
    refused(
        schedule("UTC", vec![window(&["fri"], "24:00", "24:00")]),
        "schedule.windows[0].start",
    );
    refused(
        schedule("UTC", vec![window(&["fri"], "08:00", "24:01")]),
        "schedule.windows[0].end",
    );
}

#[test]
fn an_end_of_24_00_is_accepted_and_windows_meeting_at_midnight_are_continuous() {
    let doc = schedule(
        "UTC",
        vec![
            window(&["mon"], "22:00", "24:00"),
            window(&["tue"], "00:00", "06:00"),
        ],
    );
    // Monday 2026-06-01, 23:59 UTC: inside, and the span runs on to Tuesday 06:00.
    assert_eq!(
        state(&doc, utc("2026-06-01T23:59:00Z"), 0),
        ScheduleState::Inside {
            since: utc("2026-06-01T22:00:00Z"),
            until: utc("2026-06-02T06:00:00Z")
        }
    );
}

#[test]
fn overlapping_windows_are_refused_naming_the_day() {
    let msg = refused(
        schedule(
            "UTC",
            vec![
                window(&["mon", "tue"], "08:00", "12:00"),
                window(&["tue"], "11:00", "14:00"),
            ],
        ),
        "schedule.windows[1]",
    );
    assert!(msg.contains("overlaps schedule.windows[0] on tue"), "{msg}");
    // Meeting is not overlapping.
    assert!(
        document(
            Some(schedule(
                "UTC",
                vec![
                    window(&["tue"], "08:00", "12:00"),
                    window(&["tue"], "12:00", "14:00"),
                ],
            )),
            None
        )
        .validate()
        .is_ok()
    );
}

#[test]
fn at_most_28_windows() {
    let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let mut windows: Vec<WindowDocument> = (0..29)
        .map(|i| {
            let hour = i / 7;
            window(
                &[days[i % 7]],
                &format!("{:02}:00", hour * 2),
                &format!("{:02}:00", hour * 2 + 1),
            )
        })
        .collect();
    let msg = refused(schedule("UTC", windows.clone()), "schedule.windows");
    assert!(msg.contains("at most 28 windows (has 29)"), "{msg}");
    windows.pop();
    assert!(
        document(Some(schedule("UTC", windows)), None)
            .validate()
            .is_ok()
    );
}

#[test]
fn a_schedule_without_windows_is_refused() {
    refused(schedule("UTC", vec![]), "schedule.windows");
}

#[test]
fn idle_stop_after_must_be_a_duration_of_at_least_five_minutes() {
    for (text, ok) in [
        ("5m", true),
        ("1h30m", true),
        ("300s", true),
        ("4m59s", false),
    ] {
        assert_eq!(
            document(None, Some(text)).validate().is_ok(),
            ok,
            "idle_stop_after {text}"
        );
    }
    for bad in ["30", "30 minutes", "m", "", "30m1h", "-5m"] {
        match document(None, Some(bad)).validate() {
            Ok(_) => panic!("{bad:?} was accepted"),
            Err(e) => assert!(e.names("idle_stop_after"), "{e}"),
        }
    }
}

#[test]
fn durations_round_trip() {
    for secs in [300, 1800, 3600, 5400, 86_399] {
        assert_eq!(parse_duration(&format_duration(secs)), Some(secs));
    }
    assert_eq!(format_duration(5400), "1h30m");
}

// ----- where an instant falls -----

#[test]
fn across_a_week_the_agent_runs_exactly_inside_its_windows() {
    let doc = weekdays();
    // Monday 2026-06-01 to Sunday 2026-06-07, every half hour, Madrid time (CEST all week).
    for day in 0..7_i8 {
        for half in 0..48_i8 {
            let (h, m) = (half / 2, (half % 2) * 30);
            let now = madrid(2026, 6, 1 + day, h, m);
            let inside = matches!(state(&doc, now, 0), ScheduleState::Inside { .. });
            let expected = day < 5 && (8..20).contains(&h);
            assert_eq!(inside, expected, "day {day} {h:02}:{m:02}");
        }
    }
}

#[test]
fn window_edges_open_at_start_and_close_at_end() {
    let doc = weekdays();
    let open = madrid(2026, 6, 1, 8, 0);
    let close = madrid(2026, 6, 1, 20, 0);
    assert_eq!(
        state(&doc, open - 1, 0),
        ScheduleState::Outside { next_start: open }
    );
    assert_eq!(
        state(&doc, open, 0),
        ScheduleState::Inside {
            since: open,
            until: close
        }
    );
    assert!(matches!(
        state(&doc, close - 1, 0),
        ScheduleState::Inside { .. }
    ));
    assert_eq!(
        state(&doc, close, 0),
        ScheduleState::Outside {
            next_start: madrid(2026, 6, 2, 8, 0)
        }
    );
    // Friday evening waits for Monday.
    assert_eq!(
        state(&doc, madrid(2026, 6, 5, 20, 0), 0),
        ScheduleState::Outside {
            next_start: madrid(2026, 6, 8, 8, 0)
        }
    );
}

#[test]
fn the_lead_starts_the_agent_before_its_window_opens() {
    let doc = weekdays();
    let open = madrid(2026, 6, 1, 8, 0);
    assert_eq!(
        state(&doc, open - 121, 120),
        ScheduleState::Outside { next_start: open }
    );
    assert!(matches!(
        state(&doc, open - 120, 120),
        ScheduleState::Inside { since, .. } if since == open
    ));
}

#[test]
fn spring_forward_moves_a_start_in_the_gap_forward_by_the_gap() {
    // Madrid, Sunday 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
    let doc = schedule("Europe/Madrid", vec![window(&["sun"], "02:30", "05:00")]);
    let start = utc("2026-03-29T01:30:00Z"); // 03:30 CEST, as Compatible resolves 02:30
    let end = utc("2026-03-29T03:00:00Z"); // 05:00 CEST
    assert_eq!(
        state(&doc, utc("2026-03-29T01:00:00Z"), 0),
        ScheduleState::Outside { next_start: start }
    );
    assert_eq!(
        state(&doc, start, 0),
        ScheduleState::Inside {
            since: start,
            until: end
        }
    );
    // A window that ends in the gap closes as late, the following Saturday's rule unaffected.
    let doc = schedule("Europe/Madrid", vec![window(&["sun"], "01:00", "02:30")]);
    assert_eq!(
        state(&doc, utc("2026-03-29T00:00:00Z"), 0),
        ScheduleState::Inside {
            since: utc("2026-03-29T00:00:00Z"),
            until: utc("2026-03-29T01:30:00Z")
        }
    );
}

#[test]
fn fall_back_takes_the_first_of_a_repeated_time() {
    // Madrid, Sunday 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice
    // (00:30Z and 01:30Z). Compatible takes the first.
    let doc = schedule("Europe/Madrid", vec![window(&["sun"], "02:30", "04:00")]);
    let start = utc("2026-10-25T00:30:00Z");
    let end = utc("2026-10-25T03:00:00Z"); // 04:00 CET
    assert_eq!(
        state(&doc, utc("2026-10-25T00:29:59Z"), 0),
        ScheduleState::Outside { next_start: start }
    );
    assert_eq!(
        state(&doc, start, 0),
        ScheduleState::Inside {
            since: start,
            until: end
        }
    );
    // The window lasts 2.5 hours of real time that day, not 1.5.
    assert_eq!(end - start, 9000);
    // A weekday window on the changeover weekend keeps its local times on both sides.
    let doc = weekdays();
    assert_eq!(
        state(&doc, madrid(2026, 10, 23, 20, 0), 0),
        ScheduleState::Outside {
            next_start: utc("2026-10-26T07:00:00Z") // 08:00 CET
        }
    );
}

// ----- the effective state -----

fn spec(schedule: Option<ScheduleDocument>, idle: Option<&str>) -> crate::AgentSpec {
    match document(schedule, idle).validate() {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn stopped_wins_over_schedule_and_activity() {
    let mut s = spec(Some(weekdays()), Some("30m"));
    s.desired_state = crate::DesiredState::Stopped;
    let now = madrid(2026, 6, 1, 10, 0);
    assert_eq!(effective(&s, Some(now), now, 0), Effective::Stopped);
}

#[test]
fn outside_the_schedule_the_agent_is_scheduled_even_with_fresh_activity() {
    let s = spec(Some(weekdays()), Some("30m"));
    let now = madrid(2026, 6, 1, 21, 0);
    let next = madrid(2026, 6, 2, 8, 0);
    assert_eq!(
        effective(&s, Some(now), now, 120),
        Effective::Scheduled {
            next_start: next,
            wake_at: next - 120
        }
    );
}

#[test]
fn inside_the_schedule_the_agent_runs_until_the_window_closes() {
    let s = spec(Some(weekdays()), None);
    let now = madrid(2026, 6, 1, 10, 0);
    assert_eq!(
        effective(&s, None, now, 0),
        Effective::Run {
            until: Some(madrid(2026, 6, 1, 20, 0))
        }
    );
    assert_eq!(
        effective(&spec(None, None), None, now, 0),
        Effective::Run { until: None }
    );
}

#[test]
fn no_activity_for_idle_stop_after_makes_the_agent_idle_and_activity_resets_it() {
    let s = spec(None, Some("30m"));
    let t0 = utc("2026-06-01T10:00:00Z");
    assert_eq!(
        effective(&s, Some(t0), t0 + 1799, 0),
        Effective::Run {
            until: Some(t0 + 1800)
        }
    );
    assert_eq!(
        effective(&s, Some(t0), t0 + 1800, 0),
        Effective::Idle {
            since: t0 + 1800,
            until: None
        }
    );
    // Activity at t0 + 1000 moves the deadline.
    assert_eq!(
        effective(&s, Some(t0 + 1000), t0 + 1800, 0),
        Effective::Run {
            until: Some(t0 + 2800)
        }
    );
    // Without any known activity nothing says since when it is idle.
    assert_eq!(effective(&s, None, t0, 0), Effective::Run { until: None });
}

#[test]
fn a_window_opening_counts_as_activity_and_its_close_bounds_idleness() {
    let s = spec(Some(weekdays()), Some("30m"));
    let open = madrid(2026, 6, 2, 8, 0);
    let close = madrid(2026, 6, 2, 20, 0);
    let yesterday = madrid(2026, 6, 1, 12, 0);
    // Last used yesterday: the window gives it 30 minutes from its (lead-adjusted) opening.
    assert_eq!(
        effective(&s, Some(yesterday), open, 0),
        Effective::Run {
            until: Some(open + 1800)
        }
    );
    assert_eq!(
        effective(&s, Some(yesterday), open + 1800, 0),
        Effective::Idle {
            since: open + 1800,
            until: Some(close)
        }
    );
    // Used late in the day: runs until the window closes, not past it.
    assert_eq!(
        effective(&s, Some(close - 60), close - 30, 0),
        Effective::Run { until: Some(close) }
    );
}

#[test]
fn the_lead_is_spread_over_half_of_it_per_agent_and_is_stable() {
    let leads: Vec<i64> = (0..200)
        .map(|i| lead_for(&format!("agent-{i}"), 120))
        .collect();
    assert!(leads.iter().all(|l| (61..=120).contains(l)), "{leads:?}");
    let distinct: std::collections::BTreeSet<&i64> = leads.iter().collect();
    assert!(distinct.len() > 30, "spread over the minute: {distinct:?}");
    assert_eq!(lead_for("acme-support", 120), lead_for("acme-support", 120));
    assert_eq!(lead_for("x", 0), 0);
}
