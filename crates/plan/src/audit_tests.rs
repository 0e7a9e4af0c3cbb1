//! The audit's rules, one test per rule and per way of breaking it, from a clean installation
//! built of the same documents the development stack and CloudFormation use (deploy/policies).
#![allow(clippy::expect_used)]

use std::collections::BTreeSet;

use spec::render;

use super::*;
use crate::fixtures::*;

const ACCOUNT: &str = "123456789012";
const FS_ARN: &str = "arn:aws:elasticfilesystem:us-east-1:123456789012:file-system/fs-1";
const MOUNT_TARGETS: &str = "sg-mt";

/// A deploy/policies document with the placeholders of this installation filled in.
fn document(raw: &str) -> String {
    raw.replace("${Partition}", "aws")
        .replace("${Region}", "us-east-1")
        .replace("${AccountId}", ACCOUNT)
        .replace("${SecretPrefix}", "/openclaw/agents/")
        .replace("${AgentLogGroup}", "/clawfleet/dev/agents")
        .replace("${FileSystemArn}", FS_ARN)
}

fn fs_policy() -> String {
    document(include_str!(
        "../../../deploy/policies/efs-file-system-policy.json"
    ))
}

fn execution() -> RolePolicies {
    RolePolicies {
        name: "dev-task-execution".into(),
        arn: format!("arn:aws:iam::{ACCOUNT}:role/dev-task-execution"),
        trust: String::new(),
        permissions_boundary: None,
        inline: vec![NamedPolicy {
            name: "clawfleet-agent-execution".into(),
            document: document(include_str!(
                "../../../deploy/policies/agent-execution-role-policy.json"
            )),
        }],
        attached: Vec::new(),
    }
}

/// The agent's role as the controller creates it.
fn agent_role() -> RolePolicies {
    let ap = access_point(&spec(), "fsap-1");
    let want = render::role(&spec(), &per_agent_settings(), &ap.arn).expect("per-agent role");
    RolePolicies {
        arn: format!("arn:aws:iam::{ACCOUNT}:role{}{}", want.path, want.name),
        name: want.name,
        trust: want.trust_policy,
        permissions_boundary: Some(want.permissions_boundary),
        inline: vec![NamedPolicy {
            name: render::ROLE_POLICY_NAME.into(),
            document: want.policy,
        }],
        attached: Vec::new(),
    }
}

fn agent_revision(role_arn: &str) -> crate::observed::TaskDefinitionRevision {
    crate::observed::TaskDefinitionRevision {
        arn: revision_arn(1),
        revision: 1,
        content: std::sync::Arc::new(
            render::task_definition(
                &spec(),
                &template(),
                &per_agent_settings(),
                SECRET_ARN,
                "fsap-1",
                Some(role_arn),
            )
            .expect("renders"),
        ),
    }
}

fn egress(port: i32) -> Permission {
    Permission {
        protocol: "tcp".into(),
        from_port: Some(port),
        to_port: Some(port),
        ..Permission::default()
    }
}

fn groups() -> Vec<SecurityGroup> {
    vec![
        SecurityGroup {
            id: "sg-1".into(),
            ingress: Vec::new(),
            egress: vec![
                Permission {
                    ipv4_ranges: vec!["0.0.0.0/0".into()],
                    ..egress(443)
                },
                Permission {
                    groups: vec![MOUNT_TARGETS.into()],
                    ..egress(2049)
                },
            ],
        },
        SecurityGroup {
            id: MOUNT_TARGETS.into(),
            ingress: vec![Permission {
                groups: vec!["sg-1".into()],
                ..egress(2049)
            }],
            egress: Vec::new(),
        },
    ]
}

fn clean() -> Observed {
    let role = agent_role();
    Observed {
        file_system_arn: FS_ARN.into(),
        file_system_policy: Some(fs_policy()),
        mount_target_groups: BTreeSet::from([MOUNT_TARGETS.to_owned()]),
        security_groups: groups(),
        execution_role: Some(execution()),
        access_points: vec![access_point(&spec(), "fsap-1")],
        agents: vec![Agent {
            agent_id: AGENT.into(),
            revision: Some(agent_revision(&role.arn)),
            role: Some(role),
        }],
    }
}

fn lines(findings: &[Finding]) -> Vec<String> {
    findings.iter().map(ToString::to_string).collect()
}

/// Runs the whole audit on `observed` and returns the findings of `rule`.
fn rule_findings(observed: &Observed, rule: Rule) -> Vec<String> {
    let all = audit(&per_agent_settings(), observed);
    lines(
        &all.into_iter()
            .filter(|f| f.rule == rule)
            .collect::<Vec<_>>(),
    )
}

fn edit_json(doc: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut value: Value = serde_json::from_str(doc).expect("JSON");
    edit(&mut value);
    value.to_string()
}

#[test]
fn the_installation_the_project_deploys_is_clean() {
    assert_eq!(
        lines(&audit(&per_agent_settings(), &clean())),
        Vec::<String>::new()
    );
}

#[test]
fn a_shared_template_role_is_a_finding_of_the_settings() {
    let found = lines(&audit(&settings(), &clean()));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("settings: task-role: --task-role template"),
        "{found:?}"
    );
}

#[test]
fn glob_matches_as_iam_does() {
    assert!(glob("*", "anything"));
    assert!(glob(
        "elasticfilesystem:client*",
        "elasticfilesystem:clientmount"
    ));
    assert!(glob("a?c", "abc"));
    assert!(glob("arn:*:file-system/*", "arn:aws:x:file-system/fs-1"));
    assert!(!glob(
        "elasticfilesystem:Describe*",
        "elasticfilesystem:ClientMount"
    ));
    assert!(!glob("abc", "abcd"));
}

// --- file-system policy --------------------------------------------------------------------------

#[test]
fn a_missing_file_system_policy_is_a_finding() {
    let observed = Observed {
        file_system_policy: None,
        ..clean()
    };
    assert_eq!(
        rule_findings(&observed, Rule::FileSystemPolicy),
        [
            "file-system fs-1: policy: no file-system policy: every client that reaches a mount target gets full access"
        ]
    );
}

#[test]
fn an_unreadable_file_system_policy_is_a_finding() {
    let found = file_system_policy("fs-1", FS_ARN, Some("{not json"));
    assert_eq!(found.len(), 1);
    assert!(found[0].detail.starts_with("unreadable"), "{found:?}");
}

#[test]
fn any_allow_in_the_file_system_policy_is_a_finding_and_anonymous_is_named() {
    let policy = edit_json(&fs_policy(), |v| {
        v["Statement"]
            .as_array_mut()
            .expect("list")
            .push(serde_json::json!({
                "Sid": "Open", "Effect": "Allow", "Principal": {"AWS": "*"},
                "Action": "elasticfilesystem:*", "Resource": "*"
            }));
    });
    let found = lines(&file_system_policy("fs-1", FS_ARN, Some(&policy)));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains(
            "statement Open allows elasticfilesystem:* to anyone, anonymous clients included"
        ),
        "{found:?}"
    );
}

fn without_statement(sid: &str) -> String {
    edit_json(&fs_policy(), |v| {
        v["Statement"]
            .as_array_mut()
            .expect("list")
            .retain(|s| s["Sid"] != sid);
    })
}

#[test]
fn a_policy_that_does_not_deny_mounts_without_an_access_point_is_a_finding() {
    let found = lines(&file_system_policy(
        "fs-1",
        FS_ARN,
        Some(&without_statement("DenyClientAccessWithoutAccessPoint")),
    ));
    assert_eq!(
        found,
        [
            "file-system fs-1: policy: no statement denies client access without an access point (Null elasticfilesystem:AccessPointArn)"
        ]
    );
}

#[test]
fn a_policy_that_does_not_deny_plain_text_mounts_is_a_finding() {
    let found = lines(&file_system_policy(
        "fs-1",
        FS_ARN,
        Some(&without_statement("DenyClientAccessWithoutTls")),
    ));
    assert_eq!(found.len(), 1);
    assert!(found[0].contains("without TLS"), "{found:?}");
}

#[test]
fn a_policy_that_does_not_deny_root_access_is_a_finding() {
    let found = lines(&file_system_policy(
        "fs-1",
        FS_ARN,
        Some(&without_statement("DenyRootAccess")),
    ));
    assert_eq!(found.len(), 1);
    assert!(found[0].contains("ClientRootAccess"), "{found:?}");
}

#[test]
fn a_deny_narrowed_by_principal_resource_or_an_extra_condition_does_not_count() {
    let narrowed = |edit: fn(&mut Value)| {
        let policy = edit_json(&fs_policy(), |v| {
            for s in v["Statement"].as_array_mut().expect("list") {
                if s["Sid"] == "DenyClientAccessWithoutAccessPoint" {
                    edit(s);
                }
            }
        });
        lines(&file_system_policy("fs-1", FS_ARN, Some(&policy)))
    };
    let principal =
        narrowed(|s| s["Principal"] = serde_json::json!({"AWS": "arn:aws:iam::1:role/x"}));
    let resource = narrowed(|s| {
        s["Resource"] =
            "arn:aws:elasticfilesystem:us-east-1:123456789012:file-system/fs-other".into()
    });
    let condition = narrowed(|s| {
        s["Condition"]["StringEquals"] = serde_json::json!({"aws:SourceVpc": "vpc-1"})
    });
    let actions = narrowed(|s| s["Action"] = "elasticfilesystem:ClientMount".into());
    for found in [principal, resource, condition, actions] {
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("without an access point"), "{found:?}");
    }
}

#[test]
fn wildcards_and_a_single_statement_satisfy_the_policy_rules() {
    let policy = serde_json::json!({"Statement": [
        {"Effect": "Deny", "Principal": "*", "Action": "elasticfilesystem:Client*", "Resource": "*",
         "Condition": {"Null": {"elasticfilesystem:accesspointarn": true}}},
        {"Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*",
         "Condition": {"Bool": {"aws:SecureTransport": ["false"]}}},
        {"Effect": "Deny", "Principal": {"AWS": ["*"]}, "Action": "elasticfilesystem:ClientRootAccess", "Resource": "*"}
    ]});
    assert_eq!(
        file_system_policy("fs-1", FS_ARN, Some(&policy.to_string())),
        Vec::new()
    );
}

// --- security groups -----------------------------------------------------------------------------

fn with_agent_group(edit: impl FnOnce(&mut SecurityGroup)) -> Observed {
    let mut observed = clean();
    edit(&mut observed.security_groups[0]);
    observed
}

#[test]
fn any_ingress_on_the_agents_group_is_a_finding() {
    let observed = with_agent_group(|g| {
        g.ingress.push(Permission {
            ipv4_ranges: vec!["10.0.0.0/8".into()],
            ..egress(22)
        });
    });
    assert_eq!(
        rule_findings(&observed, Rule::Ingress),
        [
            "security-group sg-1: ingress: allows tcp port 22 with 10.0.0.0/8: the agents' groups accept no connections"
        ]
    );
}

#[test]
fn a_missing_agents_group_is_a_finding() {
    let observed = Observed {
        security_groups: Vec::new(),
        ..clean()
    };
    let found = rule_findings(&observed, Rule::Ingress);
    assert_eq!(found, ["security-group sg-1: ingress: not found"]);
}

#[test]
fn egress_beyond_https_and_nfs_to_the_mount_targets_is_a_finding() {
    let cases = [
        Permission {
            protocol: "-1".into(),
            ipv4_ranges: vec!["0.0.0.0/0".into()],
            ..Permission::default()
        },
        Permission {
            ipv4_ranges: vec!["0.0.0.0/0".into()],
            ..egress(2049)
        },
        Permission {
            groups: vec!["sg-other".into()],
            ..egress(2049)
        },
        Permission {
            ipv4_ranges: vec!["0.0.0.0/0".into()],
            from_port: Some(0),
            to_port: Some(65535),
            ..egress(443)
        },
        Permission {
            protocol: "udp".into(),
            ipv4_ranges: vec!["0.0.0.0/0".into()],
            ..egress(443)
        },
    ];
    for rule in cases {
        let observed = with_agent_group(|g| g.egress.push(rule.clone()));
        let found = rule_findings(&observed, Rule::Egress);
        assert_eq!(found.len(), 1, "{rule:?}: {found:?}");
        assert!(
            found[0].starts_with("security-group sg-1: egress: allows"),
            "{found:?}"
        );
    }
}

#[test]
fn https_to_a_narrower_destination_is_fine() {
    let observed = with_agent_group(|g| {
        g.egress[0] = Permission {
            prefix_lists: vec!["pl-1".into()],
            ..egress(443)
        };
    });
    assert_eq!(rule_findings(&observed, Rule::Egress), Vec::<String>::new());
}

#[test]
fn mount_targets_accepting_nfs_from_others_is_a_finding() {
    let mut observed = clean();
    observed.security_groups[1].ingress.push(Permission {
        ipv4_ranges: vec!["10.0.0.0/16".into()],
        ..egress(2049)
    });
    let found = rule_findings(&observed, Rule::MountTargetIngress);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with(
        "security-group sg-mt: mount-target-ingress: allows tcp port 2049 with 10.0.0.0/16"
    ));
}

// --- execution role ------------------------------------------------------------------------------

fn execution_with(statement: Value) -> Observed {
    let mut observed = clean();
    if let Some(role) = &mut observed.execution_role {
        role.attached.push(NamedPolicy {
            name: "arn:aws:iam::aws:policy/Extra".into(),
            document: serde_json::json!({"Statement": [statement]}).to_string(),
        });
    }
    observed
}

#[test]
fn secrets_beyond_the_prefix_in_the_execution_role_are_findings() {
    for (action, resource) in [
        ("secretsmanager:GetSecretValue", "*"),
        (
            "secretsmanager:*",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:*",
        ),
        (
            "*",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:/openclaw/*",
        ),
        (
            "secretsmanager:Get*",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:/other/agents/x",
        ),
    ] {
        let observed = execution_with(serde_json::json!({
            "Sid": "Wide", "Effect": "Allow", "Action": action, "Resource": resource
        }));
        let found = rule_findings(&observed, Rule::Secrets);
        assert_eq!(
            found,
            [format!(
                "execution-role dev-task-execution: secrets: attached policy arn:aws:iam::aws:policy/Extra statement Wide allows Secrets Manager on {resource}: only secrets under /openclaw/agents/"
            )],
            "{action} on {resource}"
        );
    }
}

#[test]
fn not_action_and_not_resource_in_the_execution_role_are_findings() {
    let observed = execution_with(serde_json::json!({
        "Effect": "Allow", "NotAction": "iam:*", "Resource": "*"
    }));
    assert_eq!(rule_findings(&observed, Rule::Secrets).len(), 1);
    let observed = execution_with(serde_json::json!({
        "Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "NotResource": "arn:aws:secretsmanager:*:*:secret:/x*"
    }));
    let found = rule_findings(&observed, Rule::Secrets);
    assert!(found[0].contains("on NotResource"), "{found:?}");
}

#[test]
fn other_services_and_denies_in_the_execution_role_are_not_the_audits_business() {
    let observed = execution_with(serde_json::json!({
        "Effect": "Allow", "Action": "logs:*", "Resource": "*"
    }));
    assert_eq!(
        rule_findings(&observed, Rule::Secrets),
        Vec::<String>::new()
    );
    let observed = execution_with(serde_json::json!({
        "Effect": "Deny", "Action": "secretsmanager:*", "Resource": "*"
    }));
    assert_eq!(
        rule_findings(&observed, Rule::Secrets),
        Vec::<String>::new()
    );
}

#[test]
fn an_unreadable_execution_policy_is_a_finding() {
    let mut observed = clean();
    if let Some(role) = &mut observed.execution_role {
        role.inline[0].document = "%7B".into();
    }
    let found = rule_findings(&observed, Rule::Secrets);
    assert!(found[0].contains("unreadable"), "{found:?}");
}

// --- agent task roles ----------------------------------------------------------------------------

fn with_role(edit: impl FnOnce(&mut RolePolicies)) -> Observed {
    let mut observed = clean();
    if let Some(role) = &mut observed.agents[0].role {
        edit(role);
    }
    observed
}

fn edit_policy(edit: impl FnOnce(&mut Value)) -> Observed {
    with_role(|r| r.inline[0].document = edit_json(&r.inline[0].document, edit))
}

const ROLE: &str = "task-role cf-default-acme-support";

#[test]
fn a_trust_beyond_ecs_tasks_of_this_account_is_a_finding() {
    let edits: [fn(&mut Value); 4] = [
        |v| v["Statement"][0]["Principal"] = serde_json::json!({"AWS": "*"}),
        |v| {
            v["Statement"][0]["Principal"] =
                serde_json::json!({"Service": ["ecs-tasks.amazonaws.com", "ec2.amazonaws.com"]})
        },
        |v| v["Statement"][0]["Condition"] = serde_json::json!({}),
        |v| {
            v["Statement"][0]["Condition"]["StringEquals"]["aws:SourceAccount"] =
                "999999999999".into()
        },
    ];
    for edit in edits {
        let observed = with_role(|r| r.trust = edit_json(&r.trust, edit));
        let found = rule_findings(&observed, Rule::Trust);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with(&format!(
                "{ROLE}: trust: statement EcsTasksOfThisAccountOnly trusts"
            )),
            "{found:?}"
        );
    }
}

#[test]
fn a_missing_or_other_boundary_is_a_finding() {
    let observed = with_role(|r| r.permissions_boundary = None);
    assert_eq!(
        rule_findings(&observed, Rule::Boundary),
        [format!(
            "{ROLE}: boundary: no permissions boundary, expected {BOUNDARY}"
        )]
    );
    let observed = with_role(|r| {
        r.permissions_boundary = Some("arn:aws:iam::aws:policy/AdministratorAccess".into())
    });
    assert_eq!(rule_findings(&observed, Rule::Boundary).len(), 1);
}

#[test]
fn a_policy_widened_to_everything_is_a_finding() {
    let observed = edit_policy(|v| {
        v["Statement"][0]["Action"] = "*".into();
        v["Statement"][0]["Resource"] = "*".into();
    });
    let found = rule_findings(&observed, Rule::Policy);
    assert_eq!(
        found,
        [
            format!(
                "{ROLE}: policy: statement MountOwnAccessPointOnly allows *: only elasticfilesystem:ClientMount and elasticfilesystem:ClientWrite"
            ),
            format!(
                "{ROLE}: policy: statement MountOwnAccessPointOnly applies to *: only the file system {FS_ARN}"
            ),
        ]
    );
}

#[test]
fn root_access_or_other_actions_in_the_agent_policy_are_findings() {
    let observed = edit_policy(|v| {
        v["Statement"][0]["Action"] = serde_json::json!([
            "elasticfilesystem:ClientMount",
            "elasticfilesystem:ClientRootAccess"
        ]);
    });
    let found = rule_findings(&observed, Rule::Policy);
    assert_eq!(found.len(), 1);
    assert!(
        found[0].contains("allows elasticfilesystem:ClientRootAccess"),
        "{found:?}"
    );
}

#[test]
fn another_access_point_or_none_in_the_condition_is_a_finding() {
    let other = "arn:aws:elasticfilesystem:us-east-1:123456789012:access-point/fsap-other";
    let observed = edit_policy(|v| {
        v["Statement"][0]["Condition"]["ArnEquals"]["elasticfilesystem:AccessPointArn"] =
            other.into();
    });
    let found = rule_findings(&observed, Rule::Policy);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains(&format!("names access point {other}, not its own (arn:aws:elasticfilesystem:us-east-1:123456789012:access-point/fsap-1)")), "{found:?}");

    let observed = edit_policy(|v| v["Statement"][0]["Condition"] = serde_json::json!({}));
    let found = rule_findings(&observed, Rule::Policy);
    assert!(
        found[0].contains("it mounts every access point"),
        "{found:?}"
    );

    let observed = edit_policy(|v| {
        v["Statement"][0]["Condition"] =
            serde_json::json!({"ArnLike": {"elasticfilesystem:AccessPointArn": "*"}});
    });
    assert!(rule_findings(&observed, Rule::Policy)[0].contains("it mounts every access point"));
}

#[test]
fn extra_statements_policies_and_attachments_are_findings() {
    let observed = edit_policy(|v| {
        v["Statement"]
            .as_array_mut()
            .expect("list")
            .push(serde_json::json!({
                "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"
            }));
    });
    let found = rule_findings(&observed, Rule::Policy);
    assert!(
        found.contains(&format!(
            "{ROLE}: policy: 2 statements, expected exactly one"
        )),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|f| f.contains("statement 2 allows s3:GetObject")),
        "{found:?}"
    );

    let observed = with_role(|r| {
        r.inline.push(NamedPolicy {
            name: "extra".into(),
            document: "{}".into(),
        });
        r.attached.push(NamedPolicy {
            name: "arn:aws:iam::aws:policy/ReadOnlyAccess".into(),
            document: "{}".into(),
        });
    });
    assert_eq!(
        rule_findings(&observed, Rule::Policy),
        [
            format!(
                "{ROLE}: policy: attached policy arn:aws:iam::aws:policy/ReadOnlyAccess: an agent role holds only its inline policy"
            ),
            format!(
                "{ROLE}: policy: inline policy extra: an agent role holds only clawfleet-own-access-point"
            ),
        ]
    );
}

#[test]
fn not_action_in_the_agent_policy_is_a_finding() {
    let observed = edit_policy(|v| {
        let s = v["Statement"][0].as_object_mut().expect("statement");
        s.remove("Action");
        s.insert("NotAction".into(), "iam:*".into());
    });
    let found = rule_findings(&observed, Rule::Policy);
    assert!(found[0].contains("NotAction or NotResource"), "{found:?}");
}

// --- revisions -----------------------------------------------------------------------------------

fn with_volume(edit: impl Fn(&mut render::EfsVolume)) -> Observed {
    let mut observed = clean();
    if let Some(rev) = &mut observed.agents[0].revision {
        for v in &mut std::sync::Arc::make_mut(&mut rev.content).volumes {
            if let Some(efs) = &mut v.efs_volume_configuration {
                edit(efs);
            }
        }
    }
    observed
}

const REVISION: &str = "task-definition clawfleet_dev_acme-support:1";

#[test]
fn a_revision_without_iam_authorization_is_a_finding() {
    let observed = with_volume(|v| v.iam = None);
    assert_eq!(
        rule_findings(&observed, Rule::IamAuthorization),
        [format!(
            "{REVISION}: iam-authorization: volume clawfleet-workspace: authorizationConfig.iam is not ENABLED: EFS trusts any uid a client claims"
        )]
    );
}

#[test]
fn a_revision_without_transit_encryption_is_a_finding() {
    let observed = with_volume(|v| v.transit_encryption = Some("DISABLED".into()));
    assert_eq!(rule_findings(&observed, Rule::TransitEncryption).len(), 1);
}

#[test]
fn a_revision_on_another_access_point_file_system_or_none_is_a_finding() {
    let observed = with_volume(|v| v.access_point_id = Some("fsap-other".into()));
    assert_eq!(
        rule_findings(&observed, Rule::AccessPoint),
        [format!(
            "{REVISION}: access-point: volume clawfleet-workspace: mounts access point fsap-other, not the agent's own"
        )]
    );
    let observed = with_volume(|v| v.access_point_id = None);
    assert!(rule_findings(&observed, Rule::AccessPoint)[0].contains("without an access point"));
    let observed = with_volume(|v| v.file_system_id = "fs-other".into());
    assert!(rule_findings(&observed, Rule::AccessPoint)[0].contains("mounts file system fs-other"));
}

#[test]
fn a_revision_with_another_role_or_without_a_role_of_its_own_is_a_finding() {
    let mut observed = clean();
    if let Some(rev) = &mut observed.agents[0].revision {
        std::sync::Arc::make_mut(&mut rev.content).task_role_arn =
            Some("arn:aws:iam::123456789012:role/task".into());
    }
    let found = rule_findings(&observed, Rule::TaskRole);
    assert_eq!(found.len(), 1);
    assert!(found[0].starts_with(&format!("{REVISION}: task-role: runs as arn:aws:iam::123456789012:role/task, not the agent's own role")), "{found:?}");

    let mut observed = clean();
    observed.agents[0].role = None;
    assert_eq!(rule_findings(&observed, Rule::TaskRole).len(), 1);
}

// --- access points -------------------------------------------------------------------------------

#[test]
fn an_access_point_rooted_elsewhere_is_a_finding() {
    let mut observed = clean();
    observed.access_points[0].root_path = Some("/agents/acme".into());
    assert_eq!(
        rule_findings(&observed, Rule::RootPath),
        ["access-point fsap-1: root-path: root /agents/acme, expected /agents/acme/acme-support"]
    );
    observed.access_points[0].root_path = None;
    assert!(rule_findings(&observed, Rule::RootPath)[0].contains("root /, expected"));
}

#[test]
fn an_access_point_without_its_identity_tags_is_a_finding() {
    let mut observed = clean();
    observed.access_points[0]
        .tags
        .remove(render::tag::CLIENT_ID);
    assert!(rule_findings(&observed, Rule::RootPath)[0].contains("no clawfleet:client-id"));
}

#[test]
fn an_access_point_with_root_or_no_posix_user_is_a_finding() {
    let mut observed = clean();
    observed.access_points[0].posix_uid = Some(0);
    assert_eq!(
        rule_findings(&observed, Rule::PosixUser),
        ["access-point fsap-1: posix-user: forces uid 0 gid 1000: root is not allowed"]
    );
    observed.access_points[0].posix_uid = None;
    assert!(rule_findings(&observed, Rule::PosixUser)[0].contains("no POSIX user"));
}

#[test]
fn access_points_clawfleet_does_not_manage_are_not_audited() {
    let mut observed = clean();
    observed.access_points.push(crate::observed::AccessPoint {
        id: "fsap-foreign".into(),
        root_path: Some("/".into()),
        ..crate::observed::AccessPoint::default()
    });
    assert_eq!(
        lines(&audit(&per_agent_settings(), &observed)),
        Vec::<String>::new()
    );
}
