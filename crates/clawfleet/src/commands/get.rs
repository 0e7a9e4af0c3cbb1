//! `clawfleet get` and `clawfleet describe`.

use std::collections::BTreeMap;

use spec::AgentDocument;
use store::{Agent, Store};

use crate::cli::OutputFormat;
use crate::failure::{Exit, Failure};
use crate::output::{self, AgentView};

pub async fn get(
    store: &Store,
    agent_id: Option<&str>,
    client_id: Option<&str>,
    format: OutputFormat,
) -> Result<Exit, Failure> {
    let Some(agents) = select(store, agent_id, client_id).await? else {
        return Err(not_found(agent_id));
    };
    print!("{}", render(&agents, format)?);
    Ok(Exit::Success)
}

/// The agents `get` shows: one (`None` when it does not exist), a tenant's, or all.
async fn select(
    store: &Store,
    agent_id: Option<&str>,
    client_id: Option<&str>,
) -> Result<Option<Vec<Agent>>, Failure> {
    Ok(match (agent_id, client_id) {
        (Some(id), _) => store.get(id).await?.map(|agent| vec![agent]),
        (None, Some(client)) => Some(store.list_by_client(client).await?),
        (None, None) => Some(store.list().await?),
    })
}

fn not_found(agent_id: Option<&str>) -> Failure {
    Failure::Invalid(format!("agent {}: not found", agent_id.unwrap_or("-")))
}

/// `get --watch`: the table once, then one line per change, read from the store every
/// second until SIGTERM or Ctrl-C. It polls and never reads the table's stream: DynamoDB
/// throttles more than two readers per shard, and the stream is the controller's.
///
/// # Errors
/// The first read failing, or the one agent asked for not existing then. Later failed reads
/// are reported on stderr and retried a second later: a watch outlives a blip.
pub async fn watch(
    store: &Store,
    agent_id: Option<&str>,
    client_id: Option<&str>,
) -> Result<Exit, Failure> {
    let Some(agents) = select(store, agent_id, client_id).await? else {
        return Err(not_found(agent_id));
    };
    let mut seen: BTreeMap<String, WatchRow> = agents
        .iter()
        .map(|a| (a.agent_id.clone(), WatchRow::of(a)))
        .collect();
    let rows: Vec<Vec<String>> = agents.iter().map(|a| WatchRow::of(a).cells(a)).collect();
    let header = ["AGENT ID", "DESIRED", "PHASE", "READY", "AGE", "CHANGE"];
    print!("{}", output::table(&header, &rows));
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut tick = tokio::time::interval(super::wait::POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let shutdown = super::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(Exit::Success),
            _ = tick.tick() => {}
        }
        let agents = match select(store, agent_id, client_id).await {
            Ok(agents) => agents.unwrap_or_default(),
            Err(e) => {
                eprintln!("warning: {e} (retrying)");
                continue;
            }
        };
        let mut now: BTreeMap<String, WatchRow> = BTreeMap::new();
        for agent in &agents {
            let row = WatchRow::of(agent);
            let change = match seen.get(&agent.agent_id) {
                None => Some("added".to_owned()),
                Some(before) => before.change_to(&row),
            };
            if let Some(change) = change {
                let mut cells = row.cells(agent);
                cells.push(change);
                println!("{}", line(&cells, &widths));
            }
            now.insert(agent.agent_id.clone(), row);
        }
        for (id, before) in &seen {
            if !now.contains_key(id) {
                let cells = vec![
                    id.clone(),
                    before.desired.clone(),
                    before.phase.clone(),
                    before.ready.clone(),
                    "-".into(),
                    "removed".into(),
                ];
                println!("{}", line(&cells, &widths));
            }
        }
        seen = now;
    }
}

/// What a watch line shows of an agent, and compares to tell a change.
#[derive(Debug, Clone, PartialEq, Eq)]
struct WatchRow {
    desired: String,
    phase: String,
    ready: String,
    task_arn: Option<String>,
    restarts: u32,
    message: Option<String>,
}

impl WatchRow {
    fn of(agent: &Agent) -> Self {
        let doc = agent.spec.as_ref().and_then(|s| s.document.as_ref());
        let status = agent.status.as_ref();
        Self {
            desired: doc
                .map(|d| d.desired_state.clone().unwrap_or_else(|| "running".into()))
                .unwrap_or_else(|| "-".into()),
            phase: output::phase(agent),
            ready: status
                .and_then(|s| s.condition(spec::ConditionKind::Ready))
                .map(|c| format!("{:?}", c.status))
                .unwrap_or_else(|| "-".into()),
            task_arn: status.and_then(|s| s.task_arn.clone()),
            restarts: status.map_or(0, |s| s.restarts),
            message: status.and_then(|s| s.message.clone()),
        }
    }

    fn cells(&self, agent: &Agent) -> Vec<String> {
        vec![
            agent.agent_id.clone(),
            self.desired.clone(),
            self.phase.clone(),
            self.ready.clone(),
            output::age(
                agent
                    .spec
                    .as_ref()
                    .and_then(|s| s.meta.created_at.as_deref()),
            ),
        ]
    }

    /// What changed from `self` to `now`, in words; `None` when nothing a watcher cares about.
    fn change_to(&self, now: &Self) -> Option<String> {
        let mut changes = Vec::new();
        let mut from_to = |what: &str, a: &str, b: &str| {
            if a != b {
                changes.push(format!("{what} {a} -> {b}"));
            }
        };
        from_to("desired", &self.desired, &now.desired);
        from_to("phase", &self.phase, &now.phase);
        from_to("ready", &self.ready, &now.ready);
        if self.restarts != now.restarts {
            changes.push(format!("restarts {} -> {}", self.restarts, now.restarts));
        }
        match (&self.task_arn, &now.task_arn) {
            (Some(a), Some(b)) if a != b => changes.push(format!("task replaced: {}", task_id(b))),
            (None, Some(b)) => changes.push(format!("task {}", task_id(b))),
            (Some(_), None) => changes.push("no task".into()),
            _ => {}
        }
        if self.message != now.message
            && let Some(message) = &now.message
        {
            changes.push(format!("message: {message}"));
        }
        (!changes.is_empty()).then(|| changes.join(", "))
    }
}

/// The task id at the end of a task ARN.
fn task_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// One row in the columns of the first table; a longer cell pushes the rest right.
fn line(cells: &[String], widths: &[usize]) -> String {
    let mut text = String::new();
    for (i, cell) in cells.iter().enumerate() {
        if i + 1 == cells.len() {
            text.push_str(cell);
        } else {
            let w = widths.get(i).copied().unwrap_or(0);
            text.push_str(&format!("{cell:<w$}   "));
        }
    }
    text.trim_end().to_owned()
}

fn render(agents: &[Agent], format: OutputFormat) -> Result<String, Failure> {
    let views: Vec<AgentView> = agents.iter().map(AgentView::from).collect();
    match format {
        OutputFormat::Json => serde_json::to_string_pretty(&views)
            .map(|s| s + "\n")
            .map_err(|e| Failure::Usage(format!("rendering JSON: {e}"))),
        OutputFormat::Yaml => serde_saphyr::to_string(&views)
            .map_err(|e| Failure::Usage(format!("rendering YAML: {e}"))),
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = agents
                .iter()
                .map(|a| {
                    let doc = a.spec.as_ref().and_then(|s| s.document.as_ref());
                    vec![
                        a.agent_id.clone(),
                        doc.and_then(|d| d.client_id.clone())
                            .unwrap_or_else(|| "-".into()),
                        doc.map(|d| d.desired_state.clone().unwrap_or_else(|| "running".into()))
                            .unwrap_or_else(|| "-".into()),
                        output::phase(a),
                        output::age(a.spec.as_ref().and_then(|s| s.meta.created_at.as_deref())),
                    ]
                })
                .collect();
            Ok(output::table(
                &["AGENT ID", "CLIENT", "DESIRED", "PHASE", "AGE"],
                &rows,
            ))
        }
    }
}

pub async fn describe(store: &Store, agent_id: &str) -> Result<Exit, Failure> {
    let Some(agent) = store.get(agent_id).await? else {
        return Err(Failure::Invalid(format!("agent {agent_id}: not found")));
    };
    let mut out = format!("Agent:        {}\n", agent.agent_id);
    match &agent.spec {
        None => out.push_str("Spec:         (none: orphaned status)\n"),
        Some(item) => {
            let meta = &item.meta;
            let field = |v: Option<&str>| v.unwrap_or("-").to_owned();
            out.push_str(&format!(
                "Client:       {}\n",
                field(item.document.as_ref().and_then(|d| d.client_id.as_deref()))
            ));
            out.push_str(&format!(
                "Managed by:   {}\n",
                field(meta.managed_by.as_deref())
            ));
            out.push_str(&format!("Generation:   {}\n", meta.generation));
            out.push_str(&format!(
                "Created:      {}\n",
                field(meta.created_at.as_deref())
            ));
            if let Some(at) = &meta.deletion_requested_at {
                out.push_str(&format!("Deleting:     requested at {at}\n"));
            }
            out.push_str(&format!("ETag:         {}\n", item.snapshot.etag()));
            match &item.spec {
                Ok(_) => out.push_str("Spec valid:   yes\n"),
                Err(e) => out.push_str(&format!("Spec valid:   no: {e}\n")),
            }
            if let Some(doc) = &item.document {
                let user_part = AgentDocument {
                    generation: None,
                    managed_by: None,
                    created_at: None,
                    deletion_requested_at: None,
                    ..doc.clone()
                };
                let yaml = serde_saphyr::to_string(&user_part)
                    .map_err(|e| Failure::Usage(format!("rendering YAML: {e}")))?;
                out.push_str("Spec:\n");
                for line in yaml.lines() {
                    out.push_str(&format!("  {line}\n"));
                }
            }
        }
    }
    match &agent.status {
        None => out.push_str("Status:       (not reconciled yet)\n"),
        Some(status) => {
            out.push_str("Status:\n");
            out.push_str(&format!("  Phase:            {}\n", status.phase.as_str()));
            let opt = |label: &str, v: &Option<String>| {
                v.as_ref()
                    .map(|v| format!("  {label:<17} {v}\n"))
                    .unwrap_or_default()
            };
            out.push_str(&opt("Message:", &status.message));
            out.push_str(&opt("Next start:", &status.next_start_at));
            out.push_str(&opt("Cluster:", &status.cluster));
            out.push_str(&opt("Task:", &status.task_arn));
            out.push_str(&opt("Task definition:", &status.task_definition_arn));
            let role =
                status
                    .task_role_arn
                    .as_ref()
                    .map(|arn| match status.task_role_mode.as_deref() {
                        Some("per-agent") => {
                            format!("{arn} (per-agent: may mount only its own access point)")
                        }
                        Some("template") => format!("{arn} (template: shared by every agent)"),
                        _ => arn.clone(),
                    });
            out.push_str(&opt("Task role:", &role));
            out.push_str(&opt("Access point:", &status.access_point_id));
            out.push_str(&opt("File system:", &status.file_system_id));
            out.push_str(&opt("Secret:", &status.secret_arn));
            out.push_str(&opt("Spec hash:", &status.observed_spec_hash));
            out.push_str(&format!("  Restarts:         {}\n", status.restarts));
            out.push_str(&opt("Last restart:", &status.last_restart_at));
            out.push_str(&opt("Updated:", &status.updated_at));
            if !status.conditions.is_empty() {
                let rows: Vec<Vec<String>> = status
                    .conditions
                    .iter()
                    .map(|c| {
                        vec![
                            c.kind.to_string(),
                            format!("{:?}", c.status),
                            c.reason.clone(),
                            c.time.clone(),
                            c.message.clone(),
                        ]
                    })
                    .collect();
                out.push_str("  Conditions:\n");
                for line in
                    output::table(&["TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"], &rows).lines()
                {
                    out.push_str(&format!("    {line}\n"));
                }
            }
            if status.events.is_empty() {
                out.push_str("  Events:           <none>\n");
            } else {
                // Newest last, as `kubectl describe` lists them.
                let rows: Vec<Vec<String>> = status
                    .events
                    .iter()
                    .map(|e| {
                        vec![
                            format!("{:?}", e.kind),
                            e.reason.clone(),
                            e.last_time.clone(),
                            if e.count > 1 {
                                format!("x{} since {}", e.count, e.first_time)
                            } else {
                                String::new()
                            },
                            e.message.clone(),
                        ]
                    })
                    .collect();
                out.push_str("  Events:\n");
                for line in
                    output::table(&["TYPE", "REASON", "LAST SEEN", "COUNT", "MESSAGE"], &rows)
                        .lines()
                {
                    out.push_str(&format!("    {line}\n"));
                }
            }
        }
    }
    print!("{out}");
    Ok(Exit::Success)
}
