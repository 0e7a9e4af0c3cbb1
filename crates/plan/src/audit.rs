//! The isolation audit's rules (`clawfleet audit`), as pure functions of what AWS shows: the
//! file-system policy, the agents' security groups, the execution role, every agent's task role,
//! revision and access point. Each rule answers with typed [`Finding`]s, one per weakness, and
//! each finding prints as one line naming the resource and the rule.
//!
//! The threat is a hostile root in an agent's container (docs/security.md). What keeps it in its
//! own memory is the sum of these rules; each one's doc says what its absence lets through.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;
use spec::render::{self, Settings, TaskDefinition, TaskRole};

use crate::observed::{AccessPoint, TaskDefinitionRevision};

/// What a finding is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resource {
    /// clawfleet's own configuration.
    Settings,
    FileSystem(String),
    SecurityGroup(String),
    /// By role name.
    ExecutionRole(String),
    /// By role name.
    TaskRole(String),
    /// By `family:revision`.
    Revision(String),
    /// By access point id.
    AccessPoint(String),
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Settings => f.write_str("settings"),
            Self::FileSystem(id) => write!(f, "file-system {id}"),
            Self::SecurityGroup(id) => write!(f, "security-group {id}"),
            Self::ExecutionRole(name) => write!(f, "execution-role {name}"),
            Self::TaskRole(name) => write!(f, "task-role {name}"),
            Self::Revision(name) => write!(f, "task-definition {name}"),
            Self::AccessPoint(id) => write!(f, "access-point {id}"),
        }
    }
}

/// Which rule a finding breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rule {
    /// The file-system policy: present, Deny only, denying mounts without an access point,
    /// without TLS, and root access.
    FileSystemPolicy,
    /// The agents' groups accept no connection.
    Ingress,
    /// The agents reach 443, and 2049 of the mount targets only.
    Egress,
    /// The mount targets accept 2049 from the agents' groups only.
    MountTargetIngress,
    /// The execution role reads secrets under the prefix only.
    Secrets,
    /// Only ECS tasks of this account assume an agent's role.
    Trust,
    /// Every agent role lives under the configured permissions boundary.
    Boundary,
    /// An agent role's permissions: its own access point, nothing else.
    Policy,
    /// The revision's EFS volume authorizes with IAM.
    IamAuthorization,
    /// The revision's EFS volume encrypts in transit.
    TransitEncryption,
    /// The revision runs with the agent's own role.
    TaskRole,
    /// The revision mounts the agent's own access point.
    AccessPoint,
    /// The access point's root is `/agents/{client}/{agent}`.
    RootPath,
    /// The access point forces a non-root POSIX user.
    PosixUser,
}

impl Rule {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FileSystemPolicy | Self::Policy => "policy",
            Self::Ingress => "ingress",
            Self::Egress => "egress",
            Self::MountTargetIngress => "mount-target-ingress",
            Self::Secrets => "secrets",
            Self::Trust => "trust",
            Self::Boundary => "boundary",
            Self::IamAuthorization => "iam-authorization",
            Self::TransitEncryption => "transit-encryption",
            Self::TaskRole => "task-role",
            Self::AccessPoint => "access-point",
            Self::RootPath => "root-path",
            Self::PosixUser => "posix-user",
        }
    }
}

/// One weakness: `{resource}: {rule}: {detail}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub resource: Resource,
    pub rule: Rule,
    pub detail: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            self.resource,
            self.rule.as_str(),
            self.detail
        )
    }
}

fn finding(resource: &Resource, rule: Rule, detail: impl Into<String>) -> Finding {
    Finding {
        resource: resource.clone(),
        rule,
        detail: detail.into(),
    }
}

// --- IAM policy documents ------------------------------------------------------------------------

/// One statement of an IAM policy, as far as the audit reads it.
#[derive(Debug, Clone, Default)]
struct Statement {
    label: String,
    allow: bool,
    principal: Option<Value>,
    not_principal: bool,
    actions: Vec<String>,
    not_action: bool,
    resources: Vec<String>,
    not_resource: bool,
    condition: serde_json::Map<String, Value>,
}

/// A string or a list of strings, as IAM writes both.
fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        Some(Value::Bool(b)) => vec![b.to_string()],
        _ => Vec::new(),
    }
}

/// The statements of a policy document; `Err` says why it cannot be read.
fn statements(document: &str) -> Result<Vec<Statement>, String> {
    let doc: Value = serde_json::from_str(document).map_err(|e| format!("not valid JSON ({e})"))?;
    let list = match doc.get("Statement") {
        Some(Value::Array(items)) => items.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => return Err("no Statement".into()),
    };
    list.iter()
        .enumerate()
        .map(|(i, s)| {
            let Value::Object(o) = s else {
                return Err(format!("statement {} is not an object", i + 1));
            };
            let label = o.get("Sid").and_then(Value::as_str).map_or_else(
                || format!("statement {}", i + 1),
                |sid| format!("statement {sid}"),
            );
            Ok(Statement {
                label,
                allow: o.get("Effect").and_then(Value::as_str) == Some("Allow"),
                principal: o.get("Principal").cloned(),
                not_principal: o.contains_key("NotPrincipal"),
                actions: strings(o.get("Action")),
                not_action: o.contains_key("NotAction"),
                resources: strings(o.get("Resource")),
                not_resource: o.contains_key("NotResource"),
                condition: match o.get("Condition") {
                    Some(Value::Object(c)) => c.clone(),
                    _ => serde_json::Map::new(),
                },
            })
        })
        .collect()
}

/// IAM's wildcard match: `*` any run of characters, `?` any one.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Whether a statement's actions include `action` (IAM action names ignore case).
fn covers_action(statement: &Statement, action: &str) -> bool {
    !statement.not_action
        && statement
            .actions
            .iter()
            .any(|a| glob(&a.to_ascii_lowercase(), &action.to_ascii_lowercase()))
}

/// Whether a statement applies to `arn`.
fn covers_resource(statement: &Statement, arn: &str) -> bool {
    !statement.not_resource && statement.resources.iter().any(|r| glob(r, arn))
}

/// Whether a statement's principal is everyone (`*` or `{"AWS": "*"}`).
fn everyone(statement: &Statement) -> bool {
    !statement.not_principal
        && match &statement.principal {
            Some(Value::String(s)) => s == "*",
            Some(Value::Object(o)) => strings(o.get("AWS")).iter().any(|p| p == "*"),
            _ => false,
        }
}

/// The condition's values for `operator` and `key` (keys ignore case, as in IAM).
fn condition_values(statement: &Statement, operator: &str, key: &str) -> Option<Vec<String>> {
    let Value::Object(keys) = statement.condition.get(operator)? else {
        return None;
    };
    keys.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| strings(Some(v)))
}

/// Whether the statement's whole condition is exactly `operator: {key: value}`: any further
/// condition would narrow a Deny to fewer requests.
fn only_condition(statement: &Statement, operator: &str, key: &str, value: &str) -> bool {
    let one_key =
        matches!(statement.condition.get(operator), Some(Value::Object(k)) if k.len() == 1);
    statement.condition.len() == 1
        && one_key
        && condition_values(statement, operator, key)
            .is_some_and(|v| v.len() == 1 && v[0].eq_ignore_ascii_case(value))
}

/// `(partition, region, account)` of an ARN.
fn arn_parts(arn: &str) -> Option<(&str, &str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let (_, partition, _, region, account) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    Some((partition, region, account))
}

// --- The file-system policy ----------------------------------------------------------------------

const CLIENT_MOUNT: &str = "elasticfilesystem:ClientMount";
const CLIENT_WRITE: &str = "elasticfilesystem:ClientWrite";
const CLIENT_ROOT: &str = "elasticfilesystem:ClientRootAccess";
const ACCESS_POINT_KEY: &str = "elasticfilesystem:AccessPointArn";

/// The file-system policy (DescribeFileSystemPolicy; `None` when there is none).
///
/// - Without a policy, EFS lets in any client that reaches a mount target, with any uid.
/// - An Allow grants access whatever the agents' roles say, so the policy holds Deny only.
/// - A userspace NFS client mounts `/` unless mounts without an access point are denied.
/// - Plain-text NFS carries no IAM identity unless mounts without TLS are denied.
/// - Root access lets a client step around the access point's forced POSIX user.
#[must_use]
pub fn file_system_policy(
    file_system_id: &str,
    file_system_arn: &str,
    policy: Option<&str>,
) -> Vec<Finding> {
    let fs = Resource::FileSystem(file_system_id.to_owned());
    let rule = Rule::FileSystemPolicy;
    let Some(policy) = policy else {
        return vec![finding(
            &fs,
            rule,
            "no file-system policy: every client that reaches a mount target gets full access",
        )];
    };
    let statements = match statements(policy) {
        Ok(s) => s,
        Err(why) => return vec![finding(&fs, rule, format!("unreadable: {why}"))],
    };
    let mut out = Vec::new();
    for s in statements.iter().filter(|s| s.allow) {
        let who = if everyone(s) {
            "anyone, anonymous clients included"
        } else {
            "its principals"
        };
        out.push(finding(
            &fs,
            rule,
            format!(
                "{} allows {} to {who}: an Allow here grants access whatever the agents' roles say; keep the policy Deny-only",
                s.label,
                s.actions.join(",")
            ),
        ));
    }
    let denies = |s: &&Statement, actions: &[&str]| {
        !s.allow
            && everyone(s)
            && actions.iter().all(|a| covers_action(s, a))
            && covers_resource(s, file_system_arn)
    };
    let client = [CLIENT_MOUNT, CLIENT_WRITE];
    if !statements
        .iter()
        .any(|s| denies(&s, &client) && only_condition(s, "Null", ACCESS_POINT_KEY, "true"))
    {
        out.push(finding(
            &fs,
            rule,
            "no statement denies client access without an access point (Null elasticfilesystem:AccessPointArn)",
        ));
    }
    if !statements
        .iter()
        .any(|s| denies(&s, &client) && only_condition(s, "Bool", "aws:SecureTransport", "false"))
    {
        out.push(finding(
            &fs,
            rule,
            "no statement denies client access without TLS (Bool aws:SecureTransport false)",
        ));
    }
    if !statements
        .iter()
        .any(|s| denies(&s, &[CLIENT_ROOT]) && s.condition.is_empty())
    {
        out.push(finding(
            &fs,
            rule,
            "no statement denies elasticfilesystem:ClientRootAccess to everyone, unconditionally",
        ));
    }
    out
}

// --- Security groups -----------------------------------------------------------------------------

/// One rule of a security group, as DescribeSecurityGroups lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permission {
    /// `tcp`, `udp`, `icmp`, a number, or `-1` for all.
    pub protocol: String,
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
    pub ipv4_ranges: Vec<String>,
    pub ipv6_ranges: Vec<String>,
    pub groups: Vec<String>,
    pub prefix_lists: Vec<String>,
}

impl Permission {
    fn is_tcp_port(&self, port: i32) -> bool {
        matches!(self.protocol.as_str(), "tcp" | "6")
            && self.from_port == Some(port)
            && self.to_port == Some(port)
    }

    fn peers(&self) -> Vec<&str> {
        self.ipv4_ranges
            .iter()
            .chain(&self.ipv6_ranges)
            .chain(&self.groups)
            .chain(&self.prefix_lists)
            .map(String::as_str)
            .collect()
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let protocol = if self.protocol == "-1" {
            "all traffic"
        } else {
            self.protocol.as_str()
        };
        let ports = match (self.from_port, self.to_port) {
            _ if self.protocol == "-1" => String::new(),
            (Some(a), Some(b)) if a == b => format!(" port {a}"),
            (Some(a), Some(b)) => format!(" ports {a}-{b}"),
            _ => String::new(),
        };
        write!(f, "{protocol}{ports} with {}", self.peers().join(","))
    }
}

/// A security group's rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityGroup {
    pub id: String,
    pub ingress: Vec<Permission>,
    pub egress: Vec<Permission>,
}

/// The agents' security groups (the configured `--security-groups`).
///
/// - Ingress would let anything in the VPC (another agent included) connect to an agent.
/// - Egress beyond 443 and 2049-to-the-mount-targets reaches the VPC's other services, or
///   other NFS servers, from a hostile container.
#[must_use]
pub fn agent_security_groups(
    agent_groups: &[String],
    mount_target_groups: &BTreeSet<String>,
    described: &[SecurityGroup],
) -> Vec<Finding> {
    let mut out = Vec::new();
    for id in agent_groups {
        let resource = Resource::SecurityGroup(id.clone());
        let Some(group) = described.iter().find(|g| &g.id == id) else {
            out.push(finding(&resource, Rule::Ingress, "not found"));
            continue;
        };
        for p in &group.ingress {
            out.push(finding(
                &resource,
                Rule::Ingress,
                format!("allows {p}: the agents' groups accept no connections"),
            ));
        }
        for p in &group.egress {
            let https = p.is_tcp_port(443);
            let nfs_to_mount_targets = p.is_tcp_port(2049)
                && p.ipv4_ranges.is_empty()
                && p.ipv6_ranges.is_empty()
                && p.prefix_lists.is_empty()
                && !p.groups.is_empty()
                && p.groups.iter().all(|g| mount_target_groups.contains(g));
            if !(https || nfs_to_mount_targets) {
                out.push(finding(
                    &resource,
                    Rule::Egress,
                    format!(
                        "allows {p}: agents reach tcp 443, and tcp 2049 of the mount targets' groups ({}) only",
                        mount_target_groups.iter().cloned().collect::<Vec<_>>().join(",")
                    ),
                ));
            }
        }
    }
    out
}

/// The mount targets' security groups (DescribeMountTargetSecurityGroups): NFS from the agents'
/// groups only, so nothing else in the VPC reaches the file system.
#[must_use]
pub fn mount_target_security_groups(
    mount_target_groups: &BTreeSet<String>,
    agent_groups: &[String],
    described: &[SecurityGroup],
) -> Vec<Finding> {
    let mut out = Vec::new();
    for id in mount_target_groups {
        let resource = Resource::SecurityGroup(id.clone());
        let Some(group) = described.iter().find(|g| &g.id == id) else {
            out.push(finding(&resource, Rule::MountTargetIngress, "not found"));
            continue;
        };
        for p in &group.ingress {
            let from_agents = p.is_tcp_port(2049)
                && p.ipv4_ranges.is_empty()
                && p.ipv6_ranges.is_empty()
                && p.prefix_lists.is_empty()
                && p.groups.iter().all(|g| agent_groups.contains(g));
            if !from_agents {
                out.push(finding(
                    &resource,
                    Rule::MountTargetIngress,
                    format!(
                        "allows {p}: mount targets accept tcp 2049 from the agents' groups ({}) only",
                        agent_groups.join(",")
                    ),
                ));
            }
        }
    }
    out
}

// --- IAM roles -----------------------------------------------------------------------------------

/// A policy document and where it comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamedPolicy {
    /// The inline policy's name, or the managed policy's ARN.
    pub name: String,
    /// JSON, already URL-decoded.
    pub document: String,
}

/// A role and everything that grants it permissions: GetRole, ListRolePolicies and
/// GetRolePolicy, ListAttachedRolePolicies, GetPolicy and GetPolicyVersion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolePolicies {
    pub name: String,
    pub arn: String,
    /// The trust policy (JSON, URL-decoded).
    pub trust: String,
    pub permissions_boundary: Option<String>,
    pub inline: Vec<NamedPolicy>,
    pub attached: Vec<NamedPolicy>,
}

/// Whether a resource pattern stays under the secrets prefix: the secret-name part of
/// `arn:...:secretsmanager:...:secret:NAME` starts with the whole prefix.
fn under_prefix(resource: &str, prefix: &str) -> bool {
    let Some((head, name)) = resource.split_once(":secret:") else {
        return false;
    };
    head.contains(":secretsmanager:") && !prefix.is_empty() && name.starts_with(prefix)
}

/// The execution role (the template's `executionRoleArn`). ECS reads every agent's secrets with
/// it; its credentials never reach a container, but a role that reads beyond the prefix lets a
/// crafted revision inject any secret of the account into an agent.
#[must_use]
pub fn execution_role(role: &RolePolicies, secret_prefix: &str) -> Vec<Finding> {
    let resource = Resource::ExecutionRole(role.name.clone());
    let mut out = Vec::new();
    for (kind, policy) in role
        .inline
        .iter()
        .map(|p| ("inline policy", p))
        .chain(role.attached.iter().map(|p| ("attached policy", p)))
    {
        let statements = match statements(&policy.document) {
            Ok(s) => s,
            Err(why) => {
                out.push(finding(
                    &resource,
                    Rule::Secrets,
                    format!("{kind} {}: unreadable: {why}", policy.name),
                ));
                continue;
            }
        };
        for s in statements.iter().filter(|s| s.allow) {
            let secrets = s.not_action
                || s.actions.iter().any(|a| {
                    let a = a.to_ascii_lowercase();
                    a.starts_with("secretsmanager:") || glob(&a, "secretsmanager:getsecretvalue")
                });
            if !secrets {
                continue;
            }
            let outside: Vec<&str> = if s.not_resource {
                vec!["NotResource"]
            } else {
                s.resources
                    .iter()
                    .filter(|r| !under_prefix(r, secret_prefix))
                    .map(String::as_str)
                    .collect()
            };
            if !outside.is_empty() {
                out.push(finding(
                    &resource,
                    Rule::Secrets,
                    format!(
                        "{kind} {} {} allows Secrets Manager on {}: only secrets under {secret_prefix}",
                        policy.name,
                        s.label,
                        outside.join(",")
                    ),
                ));
            }
        }
    }
    out
}

/// What an agent's role must be.
#[derive(Debug, Clone, Copy)]
pub struct OwnRole<'a> {
    pub permissions_boundary: &'a str,
    pub file_system_arn: &'a str,
    /// The ARNs of the access points tagged with this agent.
    pub access_point_arns: &'a [String],
}

/// Whether a trust statement lets only ECS tasks of `account` assume the role.
fn ecs_tasks_of(statement: &Statement, account: &str) -> bool {
    let service_only = !statement.not_principal
        && matches!(&statement.principal, Some(Value::Object(o))
            if o.len() == 1
                && strings(o.get("Service")) == ["ecs-tasks.amazonaws.com"]);
    let source_account = condition_values(statement, "StringEquals", "aws:SourceAccount")
        .is_some_and(|v| v == [account]);
    service_only && source_account
}

/// An agent's task role. Its credentials sit in the container (the credentials endpoint), so:
///
/// - a trust beyond ECS tasks of this account lets others act as the agent (confused deputy);
/// - without the boundary, a widened policy is not capped;
/// - any permission but mounting its own access point is a way into another tenant's memory
///   or into the account.
#[must_use]
pub fn task_role(role: &RolePolicies, own: &OwnRole<'_>) -> Vec<Finding> {
    let resource = Resource::TaskRole(role.name.clone());
    let mut out = Vec::new();
    let account = arn_parts(&role.arn).map_or("", |(_, _, a)| a);
    match statements(&role.trust) {
        Err(why) => out.push(finding(
            &resource,
            Rule::Trust,
            format!("unreadable: {why}"),
        )),
        Ok(trust) => {
            for s in trust
                .iter()
                .filter(|s| s.allow && !ecs_tasks_of(s, account))
            {
                out.push(finding(
                    &resource,
                    Rule::Trust,
                    format!(
                        "{} trusts {} without StringEquals aws:SourceAccount {account}: only ecs-tasks.amazonaws.com of this account",
                        s.label,
                        s.principal.as_ref().map_or_else(|| "NotPrincipal".to_owned(), Value::to_string)
                    ),
                ));
            }
        }
    }
    if role.permissions_boundary.as_deref() != Some(own.permissions_boundary) {
        out.push(finding(
            &resource,
            Rule::Boundary,
            format!(
                "{}, expected {}",
                role.permissions_boundary.as_deref().map_or_else(
                    || "no permissions boundary".to_owned(),
                    |b| format!("boundary {b}")
                ),
                own.permissions_boundary
            ),
        ));
    }
    for p in &role.attached {
        out.push(finding(
            &resource,
            Rule::Policy,
            format!(
                "attached policy {}: an agent role holds only its inline policy",
                p.name
            ),
        ));
    }
    for p in &role.inline {
        if p.name == render::ROLE_POLICY_NAME {
            out.extend(own_policy(&resource, &p.document, own));
        } else {
            out.push(finding(
                &resource,
                Rule::Policy,
                format!(
                    "inline policy {}: an agent role holds only {}",
                    p.name,
                    render::ROLE_POLICY_NAME
                ),
            ));
        }
    }
    out
}

/// The agent role's one inline policy: Allow ClientMount and ClientWrite on the file system,
/// conditioned on exactly its own access point.
fn own_policy(resource: &Resource, document: &str, own: &OwnRole<'_>) -> Vec<Finding> {
    let rule = Rule::Policy;
    let statements = match statements(document) {
        Ok(s) => s,
        Err(why) => return vec![finding(resource, rule, format!("unreadable: {why}"))],
    };
    let mut out = Vec::new();
    if statements.len() != 1 {
        out.push(finding(
            resource,
            rule,
            format!("{} statements, expected exactly one", statements.len()),
        ));
    }
    for s in statements.iter().filter(|s| s.allow) {
        let label = &s.label;
        if s.not_action || s.not_resource {
            out.push(finding(
                resource,
                rule,
                format!("{label} uses NotAction or NotResource, which grants everything else"),
            ));
        }
        let wider: Vec<&str> = s
            .actions
            .iter()
            .filter(|a| {
                ![CLIENT_MOUNT, CLIENT_WRITE]
                    .iter()
                    .any(|ok| a.eq_ignore_ascii_case(ok))
            })
            .map(String::as_str)
            .collect();
        if !wider.is_empty() {
            out.push(finding(
                resource,
                rule,
                format!(
                    "{label} allows {}: only {CLIENT_MOUNT} and {CLIENT_WRITE}",
                    wider.join(",")
                ),
            ));
        }
        let elsewhere: Vec<&str> = s
            .resources
            .iter()
            .filter(|r| r.as_str() != own.file_system_arn)
            .map(String::as_str)
            .collect();
        if !elsewhere.is_empty() {
            out.push(finding(
                resource,
                rule,
                format!(
                    "{label} applies to {}: only the file system {}",
                    elsewhere.join(","),
                    own.file_system_arn
                ),
            ));
        }
        let named: Vec<String> = ["ArnEquals", "StringEquals"]
            .iter()
            .filter_map(|op| condition_values(s, op, ACCESS_POINT_KEY))
            .flatten()
            .collect();
        if named.is_empty() {
            out.push(finding(
                resource,
                rule,
                format!(
                    "{label} has no ArnEquals {ACCESS_POINT_KEY} condition: it mounts every access point"
                ),
            ));
        }
        for arn in named.iter().filter(|a| !own.access_point_arns.contains(a)) {
            out.push(finding(
                resource,
                rule,
                format!(
                    "{label} names access point {arn}, not its own ({})",
                    if own.access_point_arns.is_empty() {
                        "none found".to_owned()
                    } else {
                        own.access_point_arns.join(",")
                    }
                ),
            ));
        }
    }
    out
}

// --- Revisions and access points -----------------------------------------------------------------

/// An agent's latest revision.
///
/// - Without IAM authorization, EFS trusts the uid/gid any NFS client claims, and no role or
///   file-system policy is consulted.
/// - Without transit encryption, IAM authorization cannot happen (it rides on TLS).
/// - Another role or another access point gives the agent someone else's memory.
#[must_use]
pub fn revision(
    revision: &TaskDefinitionRevision,
    file_system_id: &str,
    own_access_point_ids: &[String],
    own_role_arn: Option<&str>,
) -> Vec<Finding> {
    let content: &TaskDefinition = &revision.content;
    let resource = Resource::Revision(format!("{}:{}", content.family, revision.revision));
    let mut out = Vec::new();
    for volume in &content.volumes {
        let Some(efs) = &volume.efs_volume_configuration else {
            continue;
        };
        let name = &volume.name;
        if efs.iam.as_deref() != Some("ENABLED") {
            out.push(finding(
                &resource,
                Rule::IamAuthorization,
                format!("volume {name}: authorizationConfig.iam is not ENABLED: EFS trusts any uid a client claims"),
            ));
        }
        if efs.transit_encryption.as_deref() != Some("ENABLED") {
            out.push(finding(
                &resource,
                Rule::TransitEncryption,
                format!("volume {name}: transitEncryption is not ENABLED"),
            ));
        }
        if efs.file_system_id != file_system_id {
            out.push(finding(
                &resource,
                Rule::AccessPoint,
                format!(
                    "volume {name}: mounts file system {}, not {file_system_id}",
                    efs.file_system_id
                ),
            ));
        }
        match &efs.access_point_id {
            None => out.push(finding(
                &resource,
                Rule::AccessPoint,
                format!("volume {name}: mounts the file system without an access point"),
            )),
            Some(id) if !own_access_point_ids.contains(id) => out.push(finding(
                &resource,
                Rule::AccessPoint,
                format!("volume {name}: mounts access point {id}, not the agent's own"),
            )),
            Some(_) => {}
        }
    }
    if let Some(own) = own_role_arn
        && content.task_role_arn.as_deref() != Some(own)
    {
        out.push(finding(
            &resource,
            Rule::TaskRole,
            format!(
                "runs as {}, not the agent's own role {own}",
                content.task_role_arn.as_deref().unwrap_or("no task role")
            ),
        ));
    }
    out
}

/// The access points clawfleet manages: rooted at `/agents/{client}/{agent}` as their tags say
/// (another root is another tenant's directory, or all of them), with a forced non-root POSIX
/// user (else a client's claimed uid, root included, is used).
#[must_use]
pub fn access_points(access_points: &[AccessPoint]) -> Vec<Finding> {
    let mut out = Vec::new();
    for ap in access_points {
        if ap.tags.get(render::tag::MANAGED_BY).map(String::as_str) != Some(render::tag::MANAGER) {
            continue;
        }
        let resource = Resource::AccessPoint(ap.id.clone());
        let expected = match (
            ap.tags.get(render::tag::CLIENT_ID),
            ap.tags.get(render::tag::AGENT_ID),
        ) {
            (Some(client), Some(agent)) => Some(format!("/agents/{client}/{agent}")),
            _ => None,
        };
        let root = ap.root_path.as_deref().unwrap_or("/");
        match expected {
            None => out.push(finding(
                &resource,
                Rule::RootPath,
                format!(
                    "root {root}: no {} and {} tags to check it against",
                    render::tag::CLIENT_ID,
                    render::tag::AGENT_ID
                ),
            )),
            Some(expected) if expected != root => out.push(finding(
                &resource,
                Rule::RootPath,
                format!("root {root}, expected {expected}"),
            )),
            Some(_) => {}
        }
        match (ap.posix_uid, ap.posix_gid) {
            (Some(uid), Some(gid)) if uid != 0 && gid != 0 => {}
            (Some(uid), Some(gid)) => out.push(finding(
                &resource,
                Rule::PosixUser,
                format!("forces uid {uid} gid {gid}: root is not allowed"),
            )),
            _ => out.push(finding(
                &resource,
                Rule::PosixUser,
                "no POSIX user: clients act as whatever uid they claim",
            )),
        }
    }
    out
}

// --- The whole audit -----------------------------------------------------------------------------

/// One agent's role (when it exists) and latest revision (when it has one).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Agent {
    pub agent_id: String,
    pub role: Option<RolePolicies>,
    pub revision: Option<TaskDefinitionRevision>,
}

/// Everything the audit reads.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub file_system_arn: String,
    /// `None`: the file system has no policy.
    pub file_system_policy: Option<String>,
    pub mount_target_groups: BTreeSet<String>,
    /// The agents' and the mount targets' groups.
    pub security_groups: Vec<SecurityGroup>,
    pub execution_role: Option<RolePolicies>,
    pub access_points: Vec<AccessPoint>,
    pub agents: Vec<Agent>,
}

/// Every rule over everything observed, sorted by resource.
#[must_use]
pub fn audit(settings: &Settings, observed: &Observed) -> Vec<Finding> {
    let mut out = Vec::new();
    let boundary = match &settings.task_role {
        TaskRole::PerAgent {
            permissions_boundary,
        } => Some(permissions_boundary.as_str()),
        TaskRole::Template => {
            out.push(finding(
                &Resource::Settings,
                Rule::TaskRole,
                "--task-role template: every agent shares the template's task role, so any agent may mount any access point it may",
            ));
            None
        }
    };
    out.extend(file_system_policy(
        &settings.file_system_id,
        &observed.file_system_arn,
        observed.file_system_policy.as_deref(),
    ));
    out.extend(agent_security_groups(
        &settings.security_groups,
        &observed.mount_target_groups,
        &observed.security_groups,
    ));
    out.extend(mount_target_security_groups(
        &observed.mount_target_groups,
        &settings.security_groups,
        &observed.security_groups,
    ));
    if let Some(role) = &observed.execution_role {
        out.extend(execution_role(role, &settings.secret_prefix));
    }
    out.extend(access_points(&observed.access_points));
    for agent in &observed.agents {
        let own: Vec<&AccessPoint> = observed
            .access_points
            .iter()
            .filter(|ap| ap.agent_id() == Some(agent.agent_id.as_str()))
            .collect();
        let own_arns: Vec<String> = own.iter().map(|ap| ap.arn.clone()).collect();
        let own_ids: Vec<String> = own.iter().map(|ap| ap.id.clone()).collect();
        if let (Some(boundary), Some(role)) = (boundary, &agent.role) {
            out.extend(task_role(
                role,
                &OwnRole {
                    permissions_boundary: boundary,
                    file_system_arn: &observed.file_system_arn,
                    access_point_arns: &own_arns,
                },
            ));
        }
        if let Some(rev) = &agent.revision {
            // Without a role of its own, the revision cannot name it: any role it names is
            // someone else's.
            let own_role = boundary.map(|_| {
                agent
                    .role
                    .as_ref()
                    .map_or("(no role of its own)", |r| r.arn.as_str())
            });
            out.extend(revision(rev, &settings.file_system_id, &own_ids, own_role));
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
#[path = "audit_tests.rs"]
mod tests;
