"""Creates clawfleet's development stack on a local moto server and prints the environment for it.

Usage: python3 tools/moto/dev_stack.py [--endpoint URL] [--region us-east-1] [--name clawfleet-dev]

    eval "$(tools/moto/start.sh)"
    eval "$(python3 tools/moto/dev_stack.py)"

The stack is what an operator provides in a real account: a VPC with two private subnets, the
agents' security group and the mount targets' security group, an ECS cluster, an encrypted EFS
file system with its file-system policy and a mount target per subnet, the task execution and
task roles, the agents' permissions boundary, and the template task definition the controller
derives each agent's revision from. Running the script again finds every resource by its Name tag
or name, puts every policy and rule back as written, and prints the same values; the template is
registered again only when its content changed.

The policies, the security-group rules and the template task definition come from
deploy/policies/*.json, which deploy/cloudformation/clawfleet.yaml is rendered from too
(tools/deploy/policies.py resolves their `${Name}` placeholders): the demo and every moto test
run under the production documents, and tools/deploy/check_equality.py proves both sides equal.

Why boto3 and not the product or CloudFormation:
- The VPC, subnets and security group are EC2 resources, and the Rust product must not link
  aws-sdk-ec2 (it is not needed at run time and is costly to build); boto3 comes with moto.
- CloudFormation on moto is partial (Secrets, the EFS volume of a task definition and GetAtt on
  EFS fail), so the deploy/ template is not applied here: tools/deploy_check.sh lints it
  (cfn-lint, checkov, parliament) and compares it with this stack (check_equality.py).

moto 5.2.x gotchas handled here:
- Fargate RunTask answers HTTP 500 unless the VPC of its subnets has DNS hostnames enabled.
- RunTask answers HTTP 500 unless every container definition has `memory` or `memoryReservation`
  (a task-level memory is not enough), so the template sets a soft reservation (see
  `template_task_definition`).
- CreateCluster replaces an existing cluster of the same name, so the cluster is looked up first.
- DescribeTaskDefinition by family returns the highest revision even when it is INACTIVE, so the
  latest ACTIVE revision is found through ListTaskDefinitions.
- moto checks no IAM policy, no file-system policy and no security group rule: they are
  written exactly as production has them, and tools/deploy/check_equality.py reads them back,
  but nothing here proves that AWS would enforce them (docs/security.md).

The endpoint must be a loopback URL: this script never talks to a real AWS account.
"""

import argparse
import json
import os
import sys
import time
import urllib.parse

import boto3
import botocore.config
from botocore.exceptions import BotoCoreError, ClientError

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "deploy"))
import policies  # noqa: E402  (tools/deploy/policies.py: deploy/policies/*.json)

VPC_CIDR = "10.40.0.0/16"
SUBNET_CIDRS = ("10.40.1.0/24", "10.40.2.0/24")
LOCAL_HOSTS = ("127.0.0.1", "localhost")
# The controller's default secret name prefix (/openclaw/agents/{agent_id}/secrets).
SECRET_NAME_PREFIX = "/openclaw/agents/"
AGENT_IMAGE = "openclaw/openclaw:latest"
# The template's health check; the CloudFormation parameter AgentHealthCheckCommand's default.
AGENT_HEALTH_CHECK = "test -w /home/openclaw/workspace"
# What the agents may reach on 443; the CloudFormation parameter AgentEgressCidr's default.
AGENT_EGRESS_CIDR = "0.0.0.0/0"


class StackError(Exception):
    """An expected failure that is not an AWS error response; its message is one line."""


def log(message):
    print(f"dev_stack: {message}", file=sys.stderr)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", default=os.environ.get("AWS_ENDPOINT_URL"))
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--name", default="clawfleet-dev")
    args = parser.parse_args(argv)
    if not args.endpoint:
        raise StackError(
            "no endpoint: pass --endpoint or set AWS_ENDPOINT_URL (tools/moto/start.sh)"
        )
    url = urllib.parse.urlsplit(args.endpoint)
    if url.scheme not in ("http", "https") or url.hostname not in LOCAL_HOSTS:
        raise StackError(
            f"refusing endpoint {args.endpoint!r}: only http(s)://127.0.0.1 or localhost (moto)"
        )
    # IAM role names are at most 64 characters and the longest is "{name}-task-execution".
    if not (
        1 <= len(args.name) <= 40
        and args.name[0].isalnum()
        and all(c.isalnum() or c == "-" for c in args.name)
    ):
        raise StackError(f"invalid --name {args.name!r}: 1-40 letters, digits and '-'")
    return args


def name_tags(name):
    return [{"Key": "Name", "Value": name}]


def only(items, what):
    if len(items) > 1:
        raise StackError(f"{len(items)} {what} match; expected at most one, remove the extras")
    return items[0] if items else None


# --- EC2 networking ------------------------------------------------------------------------------


def ensure_vpc(ec2, name):
    vpc = only(
        ec2.describe_vpcs(
            Filters=[
                {"Name": "tag:Name", "Values": [name]},
                {"Name": "cidr", "Values": [VPC_CIDR]},
            ]
        )["Vpcs"],
        f"VPCs named {name}",
    )
    if vpc:
        vpc_id = vpc["VpcId"]
        log(f"reusing VPC {vpc_id}")
    else:
        vpc_id = ec2.create_vpc(
            CidrBlock=VPC_CIDR,
            TagSpecifications=[{"ResourceType": "vpc", "Tags": name_tags(name)}],
        )["Vpc"]["VpcId"]
        log(f"created VPC {vpc_id}")
    # One attribute per ModifyVpcAttribute call; moto's Fargate RunTask needs DNS hostnames.
    for attribute, key in (("enableDnsSupport", "EnableDnsSupport"),
                           ("enableDnsHostnames", "EnableDnsHostnames")):
        current = ec2.describe_vpc_attribute(VpcId=vpc_id, Attribute=attribute)[key]["Value"]
        if not current:
            ec2.modify_vpc_attribute(VpcId=vpc_id, **{key: {"Value": True}})
            log(f"enabled {attribute} on {vpc_id}")
    return vpc_id


def ensure_subnets(ec2, name, vpc_id):
    zones = sorted(
        zone["ZoneName"]
        for zone in ec2.describe_availability_zones(
            Filters=[{"Name": "state", "Values": ["available"]}]
        )["AvailabilityZones"]
        if zone.get("ZoneType", "availability-zone") == "availability-zone"
    )
    if len(zones) < len(SUBNET_CIDRS):
        raise StackError(
            f"the region has {len(zones)} availability zones; need {len(SUBNET_CIDRS)}"
        )
    subnet_ids = []
    for index, (cidr, zone) in enumerate(zip(SUBNET_CIDRS, zones), start=1):
        subnet_name = f"{name}-private-{index}"
        subnet = only(
            ec2.describe_subnets(
                Filters=[
                    {"Name": "vpc-id", "Values": [vpc_id]},
                    {"Name": "tag:Name", "Values": [subnet_name]},
                ]
            )["Subnets"],
            f"subnets named {subnet_name}",
        )
        if subnet:
            log(f"reusing subnet {subnet['SubnetId']} ({subnet['AvailabilityZone']})")
        else:
            subnet = ec2.create_subnet(
                VpcId=vpc_id,
                CidrBlock=cidr,
                AvailabilityZone=zone,
                TagSpecifications=[{"ResourceType": "subnet", "Tags": name_tags(subnet_name)}],
            )["Subnet"]
            log(f"created subnet {subnet['SubnetId']} ({zone})")
        if subnet.get("MapPublicIpOnLaunch"):
            ec2.modify_subnet_attribute(
                SubnetId=subnet["SubnetId"], MapPublicIpOnLaunch={"Value": False}
            )
            log(f"turned off public IP mapping on {subnet['SubnetId']}")
        subnet_ids.append(subnet["SubnetId"])
    return subnet_ids


def ip_permission(rule):
    """A rule of deploy/policies/security-groups.json (CloudFormation's SecurityGroupIngress and
    SecurityGroupEgress shape) as the IpPermissions entry EC2's API takes."""
    permission = {"IpProtocol": rule["IpProtocol"]}
    if rule["IpProtocol"] != "-1":
        permission["FromPort"] = rule["FromPort"]
        permission["ToPort"] = rule["ToPort"]
    described = {"Description": rule["Description"]} if rule.get("Description") else {}
    if "CidrIp" in rule:
        permission["IpRanges"] = [{"CidrIp": rule["CidrIp"], **described}]
    group = rule.get("SourceSecurityGroupId") or rule.get("DestinationSecurityGroupId")
    if group:
        permission["UserIdGroupPairs"] = [{"GroupId": group, **described}]
    return permission


def rule_key(permission):
    """What a rule allows, without its description: two rules with one key are the same rule."""
    protocol = permission.get("IpProtocol")
    ports = (None, None) if protocol == "-1" else (permission.get("FromPort"), permission.get("ToPort"))
    return (
        protocol,
        *ports,
        tuple(sorted(r["CidrIp"] for r in permission.get("IpRanges", []))),
        tuple(sorted(r["CidrIpv6"] for r in permission.get("Ipv6Ranges", []))),
        tuple(sorted(p["GroupId"] for p in permission.get("UserIdGroupPairs", []))),
        tuple(sorted(p["PrefixListId"] for p in permission.get("PrefixListIds", []))),
    )


def bare_permission(permission):
    """A described rule in the form Authorize/Revoke accept (without empty lists or metadata)."""
    keys = ("IpProtocol", "FromPort", "ToPort", "IpRanges", "Ipv6Ranges",
            "UserIdGroupPairs", "PrefixListIds")
    return {k: permission[k] for k in keys if permission.get(k) not in (None, [])}


def find_or_create_security_group(ec2, vpc_id, group_name, description):
    group = only(
        ec2.describe_security_groups(
            Filters=[
                {"Name": "vpc-id", "Values": [vpc_id]},
                {"Name": "group-name", "Values": [group_name]},
            ]
        )["SecurityGroups"],
        f"security groups named {group_name}",
    )
    if group:
        log(f"reusing security group {group['GroupId']} ({group_name})")
        return group["GroupId"]
    group_id = ec2.create_security_group(
        GroupName=group_name,
        Description=description,
        VpcId=vpc_id,
        TagSpecifications=[{"ResourceType": "security-group", "Tags": name_tags(group_name)}],
    )["GroupId"]
    log(f"created security group {group_id} ({group_name})")
    return group_id


def set_rules(ec2, group_id, direction, rules):
    """Makes the group's rules of one direction exactly `rules`: revokes the others (a new
    group's allow-all egress among them, as in AWS) and authorizes the missing ones."""
    group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    observed = group.get("IpPermissions" if direction == "ingress" else "IpPermissionsEgress", [])
    desired = [ip_permission(rule) for rule in rules]
    wanted = {rule_key(p) for p in desired}
    extra = [bare_permission(p) for p in observed if rule_key(p) not in wanted]
    have = {rule_key(p) for p in observed}
    missing = [p for p in desired if rule_key(p) not in have]
    revoke = getattr(ec2, f"revoke_security_group_{direction}")
    authorize = getattr(ec2, f"authorize_security_group_{direction}")
    # Authorize first, so that a group never passes through "no rule at all" needlessly.
    if missing:
        authorize(GroupId=group_id, IpPermissions=missing)
        log(f"allowed {len(missing)} {direction} rule(s) on {group_id}")
    if extra:
        revoke(GroupId=group_id, IpPermissions=extra)
        log(f"revoked {len(extra)} {direction} rule(s) of {group_id} not in deploy/policies")


def ensure_security_groups(ec2, name, vpc_id):
    """The agents' group and the mount targets' group, with the rules of
    deploy/policies/security-groups.json: agents have no ingress and reach 443 and, on 2049, the
    mount targets only; the mount targets accept 2049 from the agents only."""
    raw = policies.load("security-groups")
    agents = find_or_create_security_group(
        ec2, vpc_id, f"{name}-agents", raw["agents"]["description"]
    )
    mount_targets = find_or_create_security_group(
        ec2, vpc_id, f"{name}-mount-targets", raw["mount-targets"]["description"]
    )
    rules = policies.resolve(raw, {
        "AgentEgressCidr": AGENT_EGRESS_CIDR,
        "AgentSecurityGroupId": agents,
        "MountTargetSecurityGroupId": mount_targets,
    })
    for group_id, key in ((agents, "agents"), (mount_targets, "mount-targets")):
        for direction in ("ingress", "egress"):
            set_rules(ec2, group_id, direction, rules[key][direction])
    return agents, mount_targets



# --- ECS cluster ---------------------------------------------------------------------------------


def ensure_cluster(ecs, name):
    # moto's CreateCluster replaces a cluster of the same name, so look before creating.
    clusters = ecs.describe_clusters(clusters=[name])["clusters"]
    if any(c["status"] == "ACTIVE" for c in clusters):
        log(f"reusing ECS cluster {name}")
    else:
        ecs.create_cluster(clusterName=name, tags=[{"key": "Name", "value": name}])
        log(f"created ECS cluster {name}")
    return name


# --- EFS -----------------------------------------------------------------------------------------


def ensure_file_system(efs, name):
    token = f"{name}-dev-stack"
    file_system = only(
        efs.describe_file_systems(CreationToken=token)["FileSystems"],
        f"file systems with creation token {token}",
    )
    if file_system:
        log(f"reusing EFS file system {file_system['FileSystemId']}")
    else:
        file_system = efs.create_file_system(
            CreationToken=token,
            Encrypted=True,
            PerformanceMode="generalPurpose",
            Tags=name_tags(name),
        )
        log(f"created EFS file system {file_system['FileSystemId']}")
    file_system_id = file_system["FileSystemId"]
    # Mount targets need an available file system (moto makes it available at once).
    for _ in range(60):
        state = efs.describe_file_systems(FileSystemId=file_system_id)["FileSystems"][0]
        if state["LifeCycleState"] == "available":
            return file_system_id, state["FileSystemArn"]
        time.sleep(1)
    raise StackError(f"EFS file system {file_system_id} did not become available within 60 s")


def ensure_mount_targets(efs, file_system_id, subnet_ids, group_id):
    existing = {
        target["SubnetId"]: target
        for target in efs.describe_mount_targets(FileSystemId=file_system_id)["MountTargets"]
    }
    for subnet_id in subnet_ids:
        target = existing.get(subnet_id)
        if target is None:
            target = efs.create_mount_target(
                FileSystemId=file_system_id, SubnetId=subnet_id, SecurityGroups=[group_id]
            )
            log(f"created mount target {target['MountTargetId']} in {subnet_id}")
            continue
        groups = efs.describe_mount_target_security_groups(
            MountTargetId=target["MountTargetId"]
        )["SecurityGroups"]
        if groups != [group_id]:
            efs.modify_mount_target_security_groups(
                MountTargetId=target["MountTargetId"], SecurityGroups=[group_id]
            )
            log(f"set security group of mount target {target['MountTargetId']} to {group_id}")
        else:
            log(f"reusing mount target {target['MountTargetId']} in {subnet_id}")


# --- IAM -----------------------------------------------------------------------------------------


def stack_values(name, partition, region, account_id):
    """The values of the placeholders every document of deploy/policies shares."""
    return {
        "Partition": partition,
        "Region": region,
        "AccountId": account_id,
        "SecretPrefix": SECRET_NAME_PREFIX,
        "AgentLogGroup": f"/clawfleet/{name}/agents",
    }


def role_trust(values):
    return policies.render("ecs-tasks-trust-policy", values)


def parsed_document(document):
    """moto and AWS return policy documents URL-encoded, as a string or already parsed."""
    if isinstance(document, str):
        return json.loads(urllib.parse.unquote(document))
    return document


def ensure_role(iam, role_name, description, trust, boundary_arn=None):
    try:
        role = iam.get_role(RoleName=role_name)["Role"]
    except ClientError as error:
        if error.response["Error"]["Code"] != "NoSuchEntity":
            raise
        extra = {"PermissionsBoundary": boundary_arn} if boundary_arn else {}
        role = iam.create_role(
            RoleName=role_name,
            AssumeRolePolicyDocument=json.dumps(trust),
            Description=description,
            Tags=name_tags(role_name),
            **extra,
        )["Role"]
        log(f"created IAM role {role_name}")
        return role["Arn"]
    current_boundary = role.get("PermissionsBoundary", {}).get("PermissionsBoundaryArn")
    if boundary_arn and current_boundary != boundary_arn:
        iam.put_role_permissions_boundary(RoleName=role_name, PermissionsBoundary=boundary_arn)
        log(f"set the permissions boundary of {role_name}")
    if parsed_document(role.get("AssumeRolePolicyDocument")) != trust:
        iam.update_assume_role_policy(RoleName=role_name, PolicyDocument=json.dumps(trust))
        log(f"reset the trust policy of {role_name} (deploy/policies/ecs-tasks-trust-policy.json)")
    else:
        log(f"reusing IAM role {role_name}")
    return role["Arn"]


def put_inline_policy(iam, role_name, policy_name, document):
    """PutRolePolicy replaces the document, so calling it on every run is idempotent."""
    iam.put_role_policy(
        RoleName=role_name, PolicyName=policy_name, PolicyDocument=json.dumps(document)
    )


def ensure_execution_role(iam, name, values):
    """The agents' execution role: ECS pulls the image, writes the logs and injects the secrets
    (only under the prefix) with it; the container never sees its credentials."""
    role_name = f"{name}-task-execution"
    arn = ensure_role(
        iam, role_name, "ECS task execution role of clawfleet agents (image, logs, secrets)",
        role_trust(values),
    )
    put_inline_policy(
        iam, role_name, "clawfleet-agent-execution",
        policies.render("agent-execution-role-policy", values),
    )
    return arn


def ensure_permissions_boundary(iam, name, values, file_system_arn):
    """The boundary every per-agent task role is created under (issue 13: the controller does not
    create per-agent roles yet). A new default version replaces a changed document."""
    policy_name = f"{name}-agent-boundary"
    document = policies.render("agent-permissions-boundary", {**values, "FileSystemArn": file_system_arn})
    arn = f"arn:{values['Partition']}:iam::{values['AccountId']}:policy/{policy_name}"
    try:
        policy = iam.get_policy(PolicyArn=arn)["Policy"]
    except ClientError as error:
        if error.response["Error"]["Code"] != "NoSuchEntity":
            raise
        iam.create_policy(
            PolicyName=policy_name,
            PolicyDocument=json.dumps(document),
            Description="Permissions boundary of clawfleet agents' task roles",
        )
        log(f"created IAM policy {policy_name}")
        return arn
    current = iam.get_policy_version(PolicyArn=arn, VersionId=policy["DefaultVersionId"])
    if parsed_document(current["PolicyVersion"]["Document"]) == document:
        log(f"reusing IAM policy {policy_name}")
        return arn
    for version in iam.list_policy_versions(PolicyArn=arn)["Versions"]:
        if not version["IsDefaultVersion"]:
            iam.delete_policy_version(PolicyArn=arn, VersionId=version["VersionId"])
    iam.create_policy_version(PolicyArn=arn, PolicyDocument=json.dumps(document), SetAsDefault=True)
    log(f"updated IAM policy {policy_name} to deploy/policies/agent-permissions-boundary.json")
    return arn


def ensure_task_role(iam, name, values, file_system_arn, boundary_arn):
    """The template's task role, shared by every agent until per-agent roles land (issue 13).
    EFS volumes with IAM authorization mount with the task role's identity."""
    role_name = f"{name}-task"
    arn = ensure_role(
        iam, role_name, "Task role of clawfleet agents (EFS IAM authorization)",
        role_trust(values), boundary_arn,
    )
    put_inline_policy(
        iam, role_name, "clawfleet-efs-client",
        policies.render("template-task-role-policy", {**values, "FileSystemArn": file_system_arn}),
    )
    return arn


def ensure_file_system_policy(efs, file_system_id, values, file_system_arn):
    """Deny-only: no client action without an access point or without TLS, no root access."""
    document = policies.render(
        "efs-file-system-policy", {**values, "FileSystemArn": file_system_arn}
    )
    try:
        current = efs.describe_file_system_policy(FileSystemId=file_system_id)["Policy"]
        if json.loads(current) == document:
            log(f"reusing the file-system policy of {file_system_id}")
            return
    except ClientError as error:
        if error.response["Error"]["Code"] != "PolicyNotFound":
            raise
    efs.put_file_system_policy(FileSystemId=file_system_id, Policy=json.dumps(document))
    log(f"put the file-system policy of {file_system_id} (deploy/policies/efs-file-system-policy.json)")


# --- Template task definition --------------------------------------------------------------------


def template_task_definition(family, values, execution_role_arn, task_role_arn):
    """The template every agent's revision is derived from (the plan's size comes as overrides):
    deploy/policies/template-task-definition.json.

    Container sizing: container `cpu` 0 and no hard `memory`, so the one container can use the
    whole task size whatever plan the RunTask overrides choose. moto's RunTask fails (HTTP 500,
    TypeError in its placement arithmetic) when a container has neither `memory` nor
    `memoryReservation`, so the container carries a soft `memoryReservation` of 512 MiB: the
    smallest Fargate task memory, so it stays valid under any plan's task-level memory override,
    and a reservation never caps the container.
    """
    return policies.render("template-task-definition", {
        **values,
        "TemplateFamily": family,
        "ExecutionRoleArn": execution_role_arn,
        "TemplateTaskRoleArn": task_role_arn,
        "AgentImage": AGENT_IMAGE,
        "AgentHealthCheckCommand": AGENT_HEALTH_CHECK,
    })



def latest_active_revision(ecs, family):
    """The highest ACTIVE revision (moto's DescribeTaskDefinition by family may return INACTIVE)."""
    arns = []
    for page in ecs.get_paginator("list_task_definitions").paginate(
        familyPrefix=family, status="ACTIVE"
    ):
        # AWS matches familyPrefix as a prefix: keep this family only.
        arns += [
            arn for arn in page["taskDefinitionArns"]
            if arn.rsplit("/", 1)[-1].rsplit(":", 1)[0] == family
        ]
    if not arns:
        return None
    latest = max(arns, key=lambda a: int(a.rsplit(":", 1)[-1]))
    return ecs.describe_task_definition(taskDefinition=latest)["taskDefinition"]


def differs(desired, observed):
    """True when `observed` lacks a desired value or holds a non-empty value not desired.

    ECS fills in defaults (empty portMappings, environment, ...), so empty extras are ignored.
    """
    if isinstance(desired, dict):
        if not isinstance(observed, dict):
            return True
        if any(differs(value, observed.get(key)) for key, value in desired.items()):
            return True
        extras = observed.keys() - desired.keys()
        return any(observed[key] not in (None, [], {}, "") for key in extras)
    if isinstance(desired, list):
        if not isinstance(observed, list) or len(desired) != len(observed):
            return True
        return any(differs(d, o) for d, o in zip(desired, observed))
    return desired != observed


# Fields of a described task definition that ECS sets itself, not part of the registered content.
DESCRIBED_ONLY = {
    "taskDefinitionArn", "revision", "status", "requiresAttributes", "compatibilities",
    "registeredAt", "registeredBy", "deregisteredAt",
}


def ensure_task_definition(ecs, name, values, execution_role_arn, task_role_arn):
    family = f"{name}-agent-template"
    desired = template_task_definition(family, values, execution_role_arn, task_role_arn)
    current = latest_active_revision(ecs, family)
    if current is not None:
        observed = {k: v for k, v in current.items() if k not in DESCRIBED_ONLY}
        if not differs(desired, observed):
            log(f"reusing task definition {family}:{current['revision']} (unchanged)")
            return family
    registered = ecs.register_task_definition(
        **desired, tags=[{"key": "Name", "value": family}]
    )["taskDefinition"]
    log(f"registered task definition {family}:{registered['revision']}")
    return family


def ensure_task_events(sqs, events, name, cluster_arn):
    """The EventBridge rule that sends the agents' cluster's task state changes to the
    controller's queue, as deploy/cloudformation does: a dead-letter queue for the queue
    (maxReceiveCount 5) and for the rule's target, SSE-SQS, a retry policy, and a queue policy
    that lets only this rule send."""
    def queue(queue_name, attributes):
        url = sqs.create_queue(QueueName=queue_name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return url, arn

    dead_url, dead_arn = queue(
        f"{name}-task-events-dlq",
        {"SqsManagedSseEnabled": "true", "MessageRetentionPeriod": "1209600"},
    )
    url, arn = queue(
        f"{name}-task-events",
        {
            "SqsManagedSseEnabled": "true",
            "MessageRetentionPeriod": "3600",
            "VisibilityTimeout": "60",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": 5}),
        },
    )
    rule_name = f"{name}-task-events"
    pattern = {
        "source": ["aws.ecs"],
        "detail-type": ["ECS Task State Change"],
        "detail": {"clusterArn": [cluster_arn]},
    }
    rule_arn = events.put_rule(
        Name=rule_name,
        EventPattern=json.dumps(pattern),
        Description="ECS task state changes of clawfleet's agents' cluster, to the controller's queue",
    )["RuleArn"]
    events.put_targets(
        Rule=rule_name,
        Targets=[{
            "Id": "controller-queue",
            "Arn": arn,
            "DeadLetterConfig": {"Arn": dead_arn},
            "RetryPolicy": {"MaximumRetryAttempts": 10, "MaximumEventAgeInSeconds": 3600},
        }],
    )
    for queue_url, queue_arn in ((url, arn), (dead_url, dead_arn)):
        policy = {
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "EventBridgeRuleOnly",
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
            }],
        }
        sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
    log(f"task-state events of {cluster_arn} go to {url} (rule {rule_name})")
    return url


# --- main ----------------------------------------------------------------------------------------


def create_stack(args):
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    session = boto3.session.Session(region_name=args.region)
    # moto answers at once or not at all: fail fast instead of retrying a broken request.
    config = botocore.config.Config(retries={"mode": "standard", "max_attempts": 2})

    def client(service):
        return session.client(service, endpoint_url=args.endpoint, config=config)

    ec2, ecs, efs, iam = client("ec2"), client("ecs"), client("efs"), client("iam")
    partition = session.get_partition_for_region(args.region)
    account_id = client("sts").get_caller_identity()["Account"]
    name = args.name
    values = stack_values(name, partition, args.region, account_id)

    vpc_id = ensure_vpc(ec2, name)
    subnet_ids = ensure_subnets(ec2, name, vpc_id)
    agents_group, mount_targets_group = ensure_security_groups(ec2, name, vpc_id)
    cluster = ensure_cluster(ecs, name)
    file_system_id, file_system_arn = ensure_file_system(efs, name)
    ensure_file_system_policy(efs, file_system_id, values, file_system_arn)
    ensure_mount_targets(efs, file_system_id, subnet_ids, mount_targets_group)
    execution_role_arn = ensure_execution_role(iam, name, values)
    boundary_arn = ensure_permissions_boundary(iam, name, values, file_system_arn)
    task_role_arn = ensure_task_role(iam, name, values, file_system_arn, boundary_arn)
    family = ensure_task_definition(ecs, name, values, execution_role_arn, task_role_arn)
    cluster_arn = ecs.describe_clusters(clusters=[cluster])["clusters"][0]["clusterArn"]
    events_queue = ensure_task_events(client("sqs"), client("events"), name, cluster_arn)

    return [
        ("CLAWFLEET_CLUSTER", cluster),
        ("CLAWFLEET_SUBNETS", ",".join(subnet_ids)),
        # Only the agents' group: the controller launches agents with it (the mount targets'
        # group is attached to the mount targets).
        ("CLAWFLEET_SECURITY_GROUPS", agents_group),
        ("CLAWFLEET_FILE_SYSTEM_ID", file_system_id),
        ("CLAWFLEET_TEMPLATE_TASK_DEFINITION", family),
        ("CLAWFLEET_TASK_ROLE_ARN", task_role_arn),
        ("CLAWFLEET_EXECUTION_ROLE_ARN", execution_role_arn),
        # For per-agent task roles (issue 13; `--agent-permissions-boundary`).
        ("CLAWFLEET_AGENT_PERMISSIONS_BOUNDARY", boundary_arn),
        # The controller's task-state events (issue 14; `--task-events-queue`).
        ("CLAWFLEET_TASK_EVENTS_QUEUE", events_queue),
    ]


def main(argv=None):
    try:
        args = parse_args(argv)
        environment = create_stack(args)
    except StackError as error:
        log(str(error))
        return 2
    except ClientError as error:
        details = error.response.get("Error", {})
        code = details.get("Code", "?")
        message = " ".join(str(details.get("Message", "")).split())[:300]
        log(f"{error.operation_name} failed: {code}: {message}")
        return 2
    except BotoCoreError as error:
        log(f"AWS request failed: {error}")
        return 2
    for key, value in environment:
        print(f"export {key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
