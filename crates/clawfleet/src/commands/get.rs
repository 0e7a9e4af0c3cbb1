//! `clawfleet get` and `clawfleet describe`.

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
    let agents = match (agent_id, client_id) {
        (Some(id), _) => match store.get(id).await? {
            Some(agent) => vec![agent],
            None => return Err(Failure::Invalid(format!("agent {id}: not found"))),
        },
        (None, Some(client)) => store.list_by_client(client).await?,
        (None, None) => store.list().await?,
    };
    print!("{}", render(&agents, format)?);
    Ok(Exit::Success)
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
