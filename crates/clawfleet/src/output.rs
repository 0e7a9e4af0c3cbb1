//! Rendering agents for people (tables, describe) and programs (JSON, YAML).

use serde::Serialize;
use spec::{AgentDocument, AgentStatus};
use store::{Agent, SpecError};

/// One agent as `get -o json|yaml` prints it.
#[derive(Debug, Serialize)]
pub struct AgentView {
    pub agent_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<AgentDocument>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<AgentStatus>,
}

impl From<&Agent> for AgentView {
    fn from(agent: &Agent) -> Self {
        let spec_error = agent
            .spec
            .as_ref()
            .and_then(|s| s.spec.as_ref().err())
            .map(ToString::to_string);
        Self {
            agent_id: agent.agent_id.clone(),
            spec: agent.spec.as_ref().and_then(|s| s.document.clone()),
            spec_error,
            status: agent.status.clone(),
        }
    }
}

/// The phase column: the controller's phase, or what can be said without one.
pub fn phase(agent: &Agent) -> String {
    if let Some(status) = &agent.status {
        return status.phase.as_str().to_owned();
    }
    match &agent.spec {
        Some(s) if s.meta.is_deleting() => "Deleting".into(),
        Some(s) if matches!(s.spec, Err(SpecError::Item(_) | SpecError::Invalid(_))) => {
            "Invalid".into()
        }
        Some(_) => "Pending".into(),
        None => "Orphaned".into(),
    }
}

/// A short age like kubectl's: 45s, 12m, 5h, 3d.
pub fn age(created_at: Option<&str>) -> String {
    let Some(created) = created_at.and_then(spec::parse_rfc3339) else {
        return "-".into();
    };
    let secs = (time::OffsetDateTime::now_utc() - created)
        .whole_seconds()
        .max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// Left-aligned columns separated by three spaces.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<w$}   "));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}
