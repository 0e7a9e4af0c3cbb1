//! `clawfleet audit` on the development stack with a converged agent (its own task role): clean,
//! then one weakness injected per test, each found with its line and exit code 1.
//!
//! The weaknesses are injected as an operator or an attacker with console access would: the
//! SDK for IAM and EFS, and boto3 (which moto installs) for EC2 and for re-registering a
//! revision, because the product links no aws-sdk-ec2 and a revision is simplest copied as the
//! JSON ECS describes. moto 5.2.1 has no DeleteFileSystemPolicy: tools/moto/launcher.py adds it.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::process::Command;

use support::{Fleet, Run};

/// A development stack with one agent of tenant `acme` brought to Running by `reconcile`.
fn converged(prefix: &str) -> (Fleet, String) {
    // The development stack's execution role reads secrets under the default prefix; with the
    // per-stack prefix `on_dev_stack` sets, the audit rightly finds that it reads beyond it.
    // Unique agent ids keep the tests' secrets apart under the default prefix.
    let fleet = Fleet::on_dev_stack(prefix).env(
        "CLAWFLEET_SECRET_PREFIX",
        spec::render::DEFAULT_SECRET_PREFIX,
    );
    let agent = local_aws::unique("agent");
    let run = fleet.run_with_stdin(
        &["apply", "-f", "-"],
        &format!("agent_id: {agent}\nclient_id: acme\n"),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    fleet.ok(&["reconcile", &agent]);
    assert!(fleet.ok(&["get", &agent]).contains("Running"));
    (fleet, agent)
}

fn var(fleet: &Fleet, key: &str) -> String {
    fleet.var(key).unwrap_or_else(|| panic!("{key} not set"))
}

/// Runs `script` with boto3 against the fleet's local AWS; `args` are its `sys.argv[1:]`.
fn boto3(fleet: &Fleet, script: &str, args: &[&str]) {
    let python = std::env::var("CLAWFLEET_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(python)
        .arg("-c")
        .arg(format!(
            "import os, sys, boto3\n\
             def client(name):\n    return boto3.client(name, endpoint_url=os.environ['AWS_ENDPOINT_URL'], region_name='us-east-1')\n\
             {script}"
        ))
        .args(args)
        .env("AWS_ENDPOINT_URL", fleet.endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn audit(fleet: &Fleet) -> Run {
    fleet.run(&["audit"])
}

/// Exit 1, and `line` among the findings.
fn assert_found(run: &Run, line: &str) {
    assert_eq!(
        run.code, 1,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert!(
        run.stdout.lines().any(|l| l.starts_with(line)),
        "no line starting with {line:?} in:\n{}",
        run.stdout
    );
}

#[test]
fn the_development_stack_with_a_converged_agent_is_clean() {
    let (fleet, _) = converged("audit-clean");
    let run = audit(&fleet);
    assert_eq!(
        run.code, 0,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert_eq!(run.stdout, "");
}

#[tokio::test]
async fn a_removed_file_system_policy_is_found() {
    let (fleet, _) = converged("audit-fsp");
    let fs = var(&fleet, "CLAWFLEET_FILE_SYSTEM_ID");
    aws_sdk_efs::Client::new(&local_aws::sdk_config().await)
        .delete_file_system_policy()
        .file_system_id(&fs)
        .send()
        .await
        .unwrap();
    assert_found(
        &audit(&fleet),
        &format!("file-system {fs}: policy: no file-system policy"),
    );
}

#[test]
fn an_ingress_rule_on_the_agents_group_is_found() {
    let (fleet, _) = converged("audit-sg");
    let group = var(&fleet, "CLAWFLEET_SECURITY_GROUPS");
    boto3(
        &fleet,
        "client('ec2').authorize_security_group_ingress(GroupId=sys.argv[1], IpPermissions=[\
         {'IpProtocol': 'tcp', 'FromPort': 22, 'ToPort': 22, 'IpRanges': [{'CidrIp': '10.0.0.0/8'}]}])",
        &[&group],
    );
    assert_found(
        &audit(&fleet),
        &format!("security-group {group}: ingress: allows tcp port 22 with 10.0.0.0/8"),
    );
}

#[tokio::test]
async fn an_agent_policy_widened_to_everything_is_found() {
    let (fleet, agent) = converged("audit-role");
    let role = format!(
        "cf-{}-{agent}",
        spec::render::default_installation(&fleet.table)
    );
    aws_sdk_iam::Client::new(&local_aws::sdk_config().await)
        .put_role_policy()
        .role_name(&role)
        .policy_name(spec::render::ROLE_POLICY_NAME)
        .policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"Wide","Effect":"Allow","Action":"*","Resource":"*"}]}"#,
        )
        .send()
        .await
        .unwrap();
    let run = audit(&fleet);
    assert_found(
        &run,
        &format!(
            "task-role {role}: policy: statement Wide allows *: only elasticfilesystem:ClientMount"
        ),
    );
    assert_found(
        &run,
        &format!(
            "task-role {role}: policy: statement Wide has no ArnEquals elasticfilesystem:AccessPointArn condition"
        ),
    );
}

#[test]
fn a_revision_registered_without_iam_authorization_is_found() {
    let (fleet, agent) = converged("audit-rev");
    let family = format!("clawfleet_{}_{agent}", var(&fleet, "CLAWFLEET_CLUSTER"));
    boto3(
        &fleet,
        "ecs = client('ecs')\n\
         out = ecs.describe_task_definition(taskDefinition=sys.argv[1], include=['TAGS'])\n\
         d = out['taskDefinition']\n\
         for k in ('taskDefinitionArn', 'revision', 'status', 'requiresAttributes', 'compatibilities', 'registeredAt', 'registeredBy', 'deregisteredAt'):\n    d.pop(k, None)\n\
         for v in d.get('volumes', []):\n    e = v.get('efsVolumeConfiguration')\n    if e: e.setdefault('authorizationConfig', {})['iam'] = 'DISABLED'\n\
         ecs.register_task_definition(**d, tags=out.get('tags') or [])",
        &[&family],
    );
    assert_found(
        &audit(&fleet),
        &format!(
            "task-definition {family}:2: iam-authorization: volume clawfleet-workspace: authorizationConfig.iam is not ENABLED"
        ),
    );
}

#[test]
fn aws_failures_exit_2_naming_the_operation() {
    let fleet = Fleet::on_dev_stack("audit-err").env("CLAWFLEET_FILE_SYSTEM_ID", "fs-00000000");
    let run = audit(&fleet);
    assert_eq!(
        run.code, 2,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr.contains("EFS DescribeFileSystem"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
}

#[tokio::test]
async fn an_attached_policy_reading_every_secret_on_the_execution_role_is_found() {
    let (fleet, _) = converged("audit-exec");
    let role_arn = var(&fleet, "CLAWFLEET_EXECUTION_ROLE_ARN");
    let role = role_arn.rsplit('/').next().unwrap().to_owned();
    let iam = aws_sdk_iam::Client::new(&local_aws::sdk_config().await);
    let policy = iam
        .create_policy()
        .policy_name(local_aws::unique("every-secret"))
        .policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"AllSecrets","Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#,
        )
        .send()
        .await
        .unwrap();
    let policy_arn = policy.policy().unwrap().arn().unwrap().to_owned();
    iam.attach_role_policy()
        .role_name(&role)
        .policy_arn(&policy_arn)
        .send()
        .await
        .unwrap();
    assert_found(
        &audit(&fleet),
        &format!(
            "execution-role {role}: secrets: attached policy {policy_arn} statement AllSecrets allows Secrets Manager on *"
        ),
    );
}

#[test]
fn a_configured_security_group_that_does_not_exist_is_found_not_an_error() {
    let (fleet, _) = converged("audit-nosg");
    let real = var(&fleet, "CLAWFLEET_SECURITY_GROUPS");
    let fleet = fleet.env(
        "CLAWFLEET_SECURITY_GROUPS",
        format!("{real},sg-0000000000000dead"),
    );
    let run = audit(&fleet);
    assert_found(
        &run,
        "security-group sg-0000000000000dead: ingress: not found",
    );
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
}
