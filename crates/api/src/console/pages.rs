//! The console's pages, as maud templates: checked when the crate compiles, and every value
//! interpolated with `(...)` is HTML-escaped, so a tag value like `<script>` renders as text.
//! No inline script or style anywhere: the CSP allows only this origin's two static files.

use maud::{DOCTYPE, Markup, html};
use spec::{AgentStatus, ConditionKind, ConditionStatus};
use store::FleetSummary;

use super::form::{DRAFT_FIELDS, Draft, FieldErrors, MAX_SECRET_ROWS};
use crate::Caller;
use crate::agents::{AgentList, AgentView};
use crate::logs::AgentLogs;

/// Every page: a skip link, the header with who is signed in, and the main content.
pub fn layout(title: &str, who: Option<&Caller>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · clawfleet" }
                link rel="stylesheet" href="/console/static/console.css";
                script src="/console/static/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/console/" { "clawfleet" }
                    @if let Some(caller) = who {
                        nav aria-label="Main" {
                            @match caller {
                                Caller::Admin => {
                                    a href="/console/" { "Fleet" }
                                }
                                Caller::Tenant(_) => {
                                    a href="/console/" { "Agents" }
                                    a href="/console/new" { "Create" }
                                }
                            }
                        }
                        div.who {
                            span { "Signed in as " strong { (caller.label()) } }
                            form method="post" action="/console/sign-out" {
                                button.secondary type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" { (body) }
            }
        }
    }
}

fn field_errors(errors: &[String], id: &str) -> Markup {
    html! {
        @if !errors.is_empty() {
            ul.field-error id=(format!("{id}-error")) {
                @for e in errors { li { (e) } }
            }
        }
    }
}

fn general_errors(errors: &FieldErrors) -> Markup {
    html! {
        @if !errors.general.is_empty() {
            div.alert role="alert" {
                @for e in &errors.general { p { (e) } }
            }
        }
    }
}

/// `aria-describedby` of an input: its hint, and its errors when it has some.
fn described_by(id: &str, has_hint: bool, errors: &[String]) -> Option<String> {
    let mut ids = Vec::new();
    if has_hint {
        ids.push(format!("{id}-hint"));
    }
    if !errors.is_empty() {
        ids.push(format!("{id}-error"));
    }
    (!ids.is_empty()).then(|| ids.join(" "))
}

pub fn sign_in(error: Option<&str>) -> Markup {
    let errors: Vec<String> = error.map(str::to_owned).into_iter().collect();
    layout(
        "Sign in",
        None,
        html! {
            h1 { "Sign in" }
            p { "Sign in with the API token your operator gave you (a tenant's, or an admin's). \
                 The console keeps a session; the token itself is not stored in your browser." }
            form.stack method="post" action="/console/sign-in" {
                label for="token" { "API token" }
                input #token type="password" name="token" autocomplete="current-password"
                    required aria-invalid=[error.map(|_| "true")]
                    aria-describedby=[described_by("token", false, &errors)];
                (field_errors(&errors, "token"))
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// A problem page: 404 for an agent the caller may not see, 403 for a refused request, ...
pub fn problem(who: Option<&Caller>, title: &str, message: &str) -> Markup {
    layout(
        title,
        who,
        html! {
            h1 { (title) }
            p { (message) }
            p { a href="/console/" { "Back to the console" } }
        },
    )
}

fn phase_badge(status: Option<&AgentStatus>) -> Markup {
    let phase = status.map_or("Pending", |s| s.phase.as_str());
    html! { span class=(format!("badge phase-{}", phase.to_lowercase())) { (phase) } }
}

fn is_ready(status: Option<&AgentStatus>) -> bool {
    status
        .and_then(|s| s.condition(ConditionKind::Ready))
        .is_some_and(|c| c.status == ConditionStatus::True)
}

/// "3m", "2h", "4d": how long ago an RFC 3339 time was.
#[must_use]
pub fn age(since: Option<&str>, now: time::OffsetDateTime) -> String {
    let Some(then) = since.and_then(|s| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
    }) else {
        return "-".to_owned();
    };
    let secs = (now - then).whole_seconds().max(0);
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

fn desired(agent: &AgentView) -> &str {
    if agent.metadata.deletion_requested_at.is_some() {
        return "deleting";
    }
    agent
        .spec
        .as_ref()
        .and_then(|s| s.desired_state.as_deref())
        .unwrap_or("running")
}

/// The rows of the agents table; the page polls this fragment every 5 s.
pub fn agent_rows(list: &AgentList, now: time::OffsetDateTime) -> Markup {
    html! {
        @for agent in &list.items {
            @let status = agent.status.as_ref();
            tr {
                th scope="row" { a href=(format!("/console/agents/{}", agent.agent_id)) { (agent.agent_id) } }
                td { (desired(agent)) }
                td { (phase_badge(status)) }
                td { @if is_ready(status) { "Yes" } @else { "No" } }
                td { (age(agent.metadata.created_at.as_deref(), now)) }
                td {
                    @if let Some(event) = status.and_then(|s| s.events.last()) {
                        (event.reason) ": " (event.message)
                    } @else { "-" }
                }
            }
        }
        @if list.items.is_empty() {
            tr { td colspan="6" { "No agents yet." } }
        }
    }
}

pub fn agents(
    who: &Caller,
    heading: &str,
    list: &AgentList,
    rows_url: &str,
    next_url: Option<&str>,
    notice: Option<&str>,
    now: time::OffsetDateTime,
) -> Markup {
    layout(
        heading,
        Some(who),
        html! {
            h1 { (heading) }
            @if let Some(notice) = notice { p.notice role="status" { (notice) } }
            @if matches!(who, Caller::Tenant(_)) {
                p { a.button href="/console/new" { "Create an agent" } }
            }
            div.table-wrap {
                table #agents {
                    caption { "Agents (this table refreshes every 5 seconds)" }
                    thead { tr {
                        th scope="col" { "Agent" } th scope="col" { "Desired" }
                        th scope="col" { "Phase" } th scope="col" { "Ready" }
                        th scope="col" { "Age" } th scope="col" { "Last event" }
                    } }
                    tbody #agent-rows data-poll=(rows_url) { (agent_rows(list, now)) }
                }
            }
            @if let Some(next) = next_url { p { a href=(next) { "Next page" } } }
        },
    )
}

fn text_input(
    draft_value: &str,
    name: &str,
    label: &str,
    hint: &str,
    errors: &FieldErrors,
) -> Markup {
    let errs = errors.of(name);
    html! {
        div.field {
            label for=(name) { (label) }
            @if !hint.is_empty() { p.hint id=(format!("{name}-hint")) { (hint) } }
            input id=(name) name=(name) type="text" value=(draft_value)
                aria-invalid=[(!errs.is_empty()).then_some("true")]
                aria-describedby=[described_by(name, !hint.is_empty(), errs)];
            (field_errors(errs, name))
        }
    }
}

fn text_area(
    draft_value: &str,
    name: &str,
    label: &str,
    hint: &str,
    errors: &FieldErrors,
) -> Markup {
    let errs = errors.of(name);
    html! {
        div.field {
            label for=(name) { (label) }
            p.hint id=(format!("{name}-hint")) { (hint) }
            textarea id=(name) name=(name) rows="3"
                aria-invalid=[(!errs.is_empty()).then_some("true")]
                aria-describedby=[described_by(name, true, errs)] { (draft_value) }
            (field_errors(errs, name))
        }
    }
}

fn select(
    current: &str,
    name: &str,
    label: &str,
    options: &[&str],
    errors: &FieldErrors,
) -> Markup {
    let errs = errors.of(name);
    html! {
        div.field {
            label for=(name) { (label) }
            select id=(name) name=(name)
                aria-invalid=[(!errs.is_empty()).then_some("true")]
                aria-describedby=[described_by(name, false, errs)] {
                @for option in options {
                    option value=(option) selected[*option == current] { (option) }
                }
            }
            (field_errors(errs, name))
        }
    }
}

pub fn create(who: &Caller, draft: &Draft, errors: &FieldErrors) -> Markup {
    debug_assert!(DRAFT_FIELDS.len() == 12);
    let plan = if draft.plan.is_empty() {
        "small"
    } else {
        &draft.plan
    };
    let state = if draft.desired_state.is_empty() {
        "stopped"
    } else {
        &draft.desired_state
    };
    layout(
        "Create an agent",
        Some(who),
        html! {
            h1 { "Create an agent" }
            (general_errors(errors))
            form.stack method="post" action="/console/agents" novalidate {
                (text_input(&draft.agent_id, "agent_id", "Agent id (optional)",
                    "Generated when left empty; one you choose starts with your tenant id and a hyphen.", errors))
                (select(plan, "plan", "Plan", &["small", "medium", "large"], errors))
                (text_input(&draft.image, "image", "Image (optional)",
                    "An OCI reference with a tag or digest; the installation's default when left empty.", errors))
                (select(state, "desired_state", "Desired state", &["stopped", "running"], errors))
                (text_area(&draft.skills, "skills", "Skills", "One per line.", errors))
                (text_area(&draft.plugins, "plugins", "Plugins", "One per line: NAME SOURCE VERSION.", errors))
                (text_area(&draft.env, "env", "Environment", "One KEY=VALUE per line. Not for secrets.", errors))
                (text_area(&draft.secret_keys, "secret_keys", "Secret key names",
                    "One per line. Set their values on the agent's Secrets page.", errors))
                (text_area(&draft.tags, "tags", "Cost tags", "One KEY=VALUE per line.", errors))
                (text_input(&draft.schedule_timezone, "schedule_timezone", "Schedule time zone (optional)",
                    "An IANA name, e.g. Europe/Madrid. With a schedule, the agent runs only inside its windows.", errors))
                (text_area(&draft.schedule, "schedule", "Schedule windows (optional)",
                    "One per line: DAYS START-END, e.g. mon,tue,wed,thu,fri 08:00-20:00. A window over midnight is two windows.", errors))
                (text_input(&draft.idle_stop_after, "idle_stop_after", "Stop when idle for (optional)",
                    "A duration of at least 5m, e.g. 30m. A wake or activity brings the agent back.", errors))
                button type="submit" { "Create" }
            }
        },
    )
}

fn list_or_dash(items: &[String]) -> Markup {
    html! {
        @if items.is_empty() { "-" } @else {
            ul.plain { @for i in items { li { code { (i) } } } }
        }
    }
}

pub fn detail(
    who: &Caller,
    agent: &AgentView,
    notice: Option<&str>,
    now: time::OffsetDateTime,
) -> Markup {
    let status = agent.status.as_ref();
    let base = format!("/console/agents/{}", agent.agent_id);
    let spec = agent.spec.as_ref();
    layout(
        &agent.agent_id,
        Some(who),
        html! {
            h1 { "Agent " (agent.agent_id) }
            @if let Some(notice) = notice { p.notice role="status" { (notice) } }
            p.summary { (phase_badge(status)) " Ready: " @if is_ready(status) { "Yes" } @else { "No" }
                " · desired " (desired(agent)) " · created " (age(agent.metadata.created_at.as_deref(), now)) " ago" }
            @if let Some(error) = &agent.spec_error {
                div.alert role="alert" { p { "The stored spec does not validate, so nothing changes on AWS until it is fixed: " (error) } }
            }
            nav.actions aria-label="Agent actions" {
                a.button href=(format!("{base}/actions/start")) { "Start" }
                a.button href=(format!("{base}/actions/stop")) { "Stop" }
                a.button href=(format!("{base}/actions/restart")) { "Restart" }
                a.button.danger href=(format!("{base}/actions/delete")) { "Delete" }
                a.button.secondary href=(format!("{base}/edit")) { "Edit spec" }
                a.button.secondary href=(format!("{base}/secrets")) { "Secrets" }
                a.button.secondary href=(format!("{base}/logs")) { "Recent log lines" }
            }
            section aria-labelledby="spec-h" {
                h2 #spec-h { "Spec" }
                dl {
                    dt { "Tenant" } dd { (agent.client_id.as_deref().unwrap_or("-")) }
                    dt { "Plan" } dd { (spec.and_then(|s| s.plan.as_deref()).unwrap_or("-")) }
                    dt { "Image" } dd { code { (spec.and_then(|s| s.image.as_deref()).unwrap_or("(default)")) } }
                    dt { "Skills" } dd { (list_or_dash(spec.map(|s| s.skills.as_slice()).unwrap_or_default())) }
                    dt { "Plugins" } dd {
                        @let plugins: Vec<String> = spec.map(|s| s.plugins.iter().map(|p| format!("{} {} {}", p.name, p.source, p.version)).collect()).unwrap_or_default();
                        (list_or_dash(&plugins))
                    }
                    dt { "Environment" } dd {
                        @let env: Vec<String> = spec.map(|s| s.env.iter().map(|(k, v)| format!("{k}={v}")).collect()).unwrap_or_default();
                        (list_or_dash(&env))
                    }
                    dt { "Secret key names" } dd { (list_or_dash(spec.map(|s| s.secret_keys.as_slice()).unwrap_or_default())) }
                    dt { "Tags" } dd {
                        @let tags: Vec<String> = spec.map(|s| s.tags.iter().map(|(k, v)| format!("{k}={v}")).collect()).unwrap_or_default();
                        (list_or_dash(&tags))
                    }
                    dt { "Schedule" } dd {
                        @let windows: Vec<String> = spec.and_then(|s| s.schedule.as_ref()).map(|sc| sc.windows.iter().map(|w| format!("{} {}-{} ({})", w.days.join(","), w.start, w.end, sc.timezone)).collect()).unwrap_or_default();
                        (list_or_dash(&windows))
                    }
                    dt { "Stop when idle for" } dd { (spec.and_then(|s| s.idle_stop_after.as_deref()).unwrap_or("-")) }
                    dt { "Generation" } dd { (agent.metadata.generation) }
                    dt { "Managed by" } dd { (agent.metadata.managed_by.as_deref().unwrap_or("(DynamoDB console)")) }
                }
            }
            section aria-labelledby="status-h" {
                h2 #status-h { "Status" }
                @if let Some(s) = status {
                    dl {
                        dt { "Phase" } dd { (s.phase.as_str()) }
                        dt { "Message" } dd { (s.message.as_deref().unwrap_or("-")) }
                        dt { "Task" } dd { code { (s.task_arn.as_deref().unwrap_or("-")) } }
                        dt { "Restarts" } dd { (s.restarts) }
                        @if let Some(next) = &s.next_start_at { dt { "Next start" } dd { (next) } }
                        dt { "Updated" } dd { (s.updated_at.as_deref().unwrap_or("-")) }
                    }
                    h3 { "Conditions" }
                    div.table-wrap { table {
                        thead { tr { th scope="col" { "Type" } th scope="col" { "Status" } th scope="col" { "Reason" } th scope="col" { "Message" } th scope="col" { "Since" } } }
                        tbody { @for c in &s.conditions { tr {
                            th scope="row" { (c.kind.as_str()) }
                            td { (format!("{:?}", c.status)) } td { (c.reason) } td { (c.message) } td { (c.time) }
                        } } }
                    } }
                    h3 { "Events" }
                    @if s.events.is_empty() { p { "No events yet." } } @else {
                        div.table-wrap { table {
                            thead { tr { th scope="col" { "Type" } th scope="col" { "Reason" } th scope="col" { "Message" } th scope="col" { "Count" } th scope="col" { "Last seen" } } }
                            tbody { @for e in s.events.iter().rev() { tr {
                                td { (format!("{:?}", e.kind)) } td { (e.reason) } td { (e.message) } td { (e.count) } td { (e.last_time) }
                            } } }
                        } }
                    }
                } @else {
                    p { "The controller has not reported on this agent yet." }
                }
            }
        },
    )
}

/// What each action asks before it is done.
pub fn confirm(who: &Caller, agent_id: &str, action: &str, question: &str) -> Markup {
    let base = format!("/console/agents/{agent_id}");
    layout(
        &format!("{action} {agent_id}"),
        Some(who),
        html! {
            h1 { (question) }
            form.inline method="post" action=(format!("{base}/actions/{action}")) {
                @if action == "delete" {
                    div.field {
                        input #purge_data type="checkbox" name="purge_data" value="true";
                        " "
                        label for="purge_data" { "Also erase the agent's files (its memory on EFS) before its storage is removed. This cannot be undone; without it the files stay, and an agent created again with the same id gets them back." }
                    }
                }
                button type="submit" class=[(action == "delete").then_some("danger")] {
                    "Yes, " (action) " " (agent_id)
                }
                " "
                a.button.secondary href=(base) { "Cancel" }
            }
        },
    )
}

pub fn edit(
    who: &Caller,
    agent_id: &str,
    text: &str,
    etag: &str,
    errors: &FieldErrors,
    conflict: Option<&str>,
) -> Markup {
    let errs = errors.of("spec");
    layout(
        &format!("Edit {agent_id}"),
        Some(who),
        html! {
            h1 { "Edit the spec of " (agent_id) }
            @if let Some(current) = conflict {
                div.alert role="alert" {
                    p { strong { "Someone else changed this agent" } " after you opened this editor (the API answered 412 Precondition Failed), so your edit was not saved and overwrote nothing. Their version is below; your text is kept in the editor. Merge your change into it and save again." }
                    pre { code { (current) } }
                }
            }
            (general_errors(errors))
            p { "The whole spec, as JSON (the shape " code { "PUT /v1/agents/" (agent_id) } " takes): a field left out goes back to its default. The save is refused if the agent changed since this page was loaded." }
            form.stack method="post" action=(format!("/console/agents/{agent_id}/edit")) {
                input type="hidden" name="etag" value=(etag);
                label for="spec" { "Spec (JSON)" }
                textarea #spec name="spec" rows="16" spellcheck="false"
                    aria-invalid=[(!errs.is_empty()).then_some("true")]
                    aria-describedby=[described_by("spec", false, errs)] { (text) }
                (field_errors(errs, "spec"))
                button type="submit" { "Save" }
            }
        },
    )
}

pub fn secrets(
    who: &Caller,
    agent_id: &str,
    keys: &[String],
    declared: &[String],
    errors: &FieldErrors,
    notice: Option<&str>,
) -> Markup {
    // Declared names not set yet come first, pre-filled, so a person types only values.
    let mut rows: Vec<&str> = declared
        .iter()
        .filter(|k| !keys.contains(k))
        .map(String::as_str)
        .collect();
    rows.truncate(MAX_SECRET_ROWS - 1);
    let blank = MAX_SECRET_ROWS.min(rows.len() + 2);
    // An error about a key typed into a blank row has no row to stand next to (values and
    // typed keys are not kept), so it goes above the form.
    let mut above = FieldErrors {
        general: errors.general.clone(),
        ..FieldErrors::default()
    };
    for (key, messages) in &errors.by_field {
        if !rows.contains(&key.as_str()) {
            above.general.extend(messages.iter().cloned());
        }
    }
    layout(
        &format!("Secrets of {agent_id}"),
        Some(who),
        html! {
            h1 { "Secrets of " (agent_id) }
            @if let Some(notice) = notice { p.notice role="status" { (notice) } }
            p { "Values go to Secrets Manager and are never shown again; only key names are listed. \
                 A running agent reads new values when it restarts." }
            h2 { "Keys set" }
            @if keys.is_empty() { p { "None yet." } } @else {
                ul.plain #secret-keys { @for k in keys { li { code { (k) } } } }
            }
            h2 { "Set values" }
            (general_errors(&above))
            @if !errors.is_empty() { p.hint { "For safety, values you typed were not kept: enter them again." } }
            form.stack method="post" action=(format!("/console/agents/{agent_id}/secrets")) autocomplete="off" {
                @for row in 0..blank {
                    @let key = rows.get(row).copied().unwrap_or("");
                    fieldset.row {
                        legend { "Secret " (row + 1) }
                        label for=(format!("key_{row}")) { "Key name" }
                        input id=(format!("key_{row}")) name=(format!("key_{row}")) type="text" value=(key);
                        (field_errors(errors.of(key), &format!("key_{row}")))
                        label for=(format!("value_{row}")) { "Value" }
                        input id=(format!("value_{row}")) name=(format!("value_{row}")) type="password" autocomplete="new-password";
                    }
                }
                button type="submit" { "Save secrets" }
            }
            p { a href=(format!("/console/agents/{agent_id}")) { "Back to " (agent_id) } }
        },
    )
}

pub fn logs(who: &Caller, logs: &AgentLogs, tail: u32) -> Markup {
    let base = format!("/console/agents/{}", logs.agent_id);
    layout(
        &format!("Logs of {}", logs.agent_id),
        Some(who),
        html! {
            h1 { "Recent log lines of " (logs.agent_id) }
            p { "The newest " (tail) " lines of the agent's current task, read from CloudWatch Logs when this page loads (never on a timer). "
                a href=(format!("{base}/logs?tail={tail}")) { "Read again" } }
            @match &logs.task_arn {
                None => p { "The agent has no task yet." },
                Some(task) => {
                    p { "Task " code { (task) } }
                    @if logs.lines.is_empty() { p { "No lines yet." } } @else {
                        pre.logs { @for line in &logs.lines { (line.message) "\n" } }
                    }
                }
            }
            p { a href=(base) { "Back to " (logs.agent_id) } }
        },
    )
}

pub fn fleet(who: &Caller, summary: Option<&FleetSummary>) -> Markup {
    layout(
        "Fleet",
        Some(who),
        html! {
            h1 { "Fleet" }
            @match summary {
                None => p { "The controller has not written a fleet summary yet; it writes one at each resync." },
                Some(s) => {
                    p #as-of { "As of the controller's last resync at " strong { (s.written_at) } ", by "
                        strong { (s.leader.as_deref().unwrap_or("a single replica (no leader election)")) } "." }
                    section aria-labelledby="phases-h" {
                        h2 #phases-h { "Agents by phase" }
                        ul.counts #phase-counts {
                            li { span.count { (s.agents) } " agents" }
                            @for (phase, n) in &s.phases {
                                li { span.count { (n) } " " (phase_badge_text(phase)) }
                            }
                        }
                    }
                    section aria-labelledby="notready-h" {
                        h2 #notready-h { "Not Ready, longest first (" (s.not_ready_count) ")" }
                        @if s.not_ready.is_empty() { p { "Every agent that should run is Ready." } } @else {
                            div.table-wrap { table {
                                thead { tr { th scope="col" { "Agent" } th scope="col" { "Tenant" } th scope="col" { "Phase" } th scope="col" { "Since" } th scope="col" { "Reason" } th scope="col" { "Message" } } }
                                tbody { @for n in &s.not_ready { tr {
                                    th scope="row" { a href=(format!("/console/agents/{}", n.agent_id)) { (n.agent_id) } }
                                    td { (n.client_id.as_deref().unwrap_or("-")) } td { (n.phase) }
                                    td { (n.since.as_deref().unwrap_or("-")) } td { (n.reason) } td { (n.message) }
                                } } }
                            } }
                            @if s.not_ready_count > s.not_ready.len() as u64 {
                                p { "and " (s.not_ready_count - s.not_ready.len() as u64) " more." }
                            }
                        }
                    }
                    section aria-labelledby="reasons-h" {
                        h2 #reasons-h { "Top error reasons" }
                        @if s.error_reasons.is_empty() { p { "None." } } @else {
                            div.table-wrap { table {
                                thead { tr { th scope="col" { "Reason" } th scope="col" { "Agents" } } }
                                tbody { @for r in &s.error_reasons { tr { th scope="row" { (r.reason) } td { (r.agents) } } } }
                            } }
                        }
                    }
                    section aria-labelledby="tenants-h" {
                        h2 #tenants-h { "Tenants (" (s.tenant_count) ")" }
                        div.table-wrap { table #tenants {
                            thead { tr { th scope="col" { "Tenant" } th scope="col" { "Agents" } } }
                            tbody { @for t in &s.tenants { tr {
                                th scope="row" { a href=(format!("/console/agents?client_id={}", t.client_id)) { (t.client_id) } }
                                td { (t.agents) }
                            } } }
                        } }
                    }
                }
            }
        },
    )
}

fn phase_badge_text(phase: &str) -> Markup {
    html! { span class=(format!("badge phase-{}", phase.to_lowercase())) { (phase) } }
}
