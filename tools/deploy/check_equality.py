"""Proves that the CloudFormation template deploys what the development stack creates: the
file-system policy, the agents' execution and template task roles (trust, inline policy,
boundary), the permissions boundary, both security groups' rules and the template task
definition. So the demo and every moto test run under the production documents.

It creates a development stack on the moto server at AWS_ENDPOINT_URL with
tools/moto/dev_stack.py, reads it back with boto3, resolves the template's intrinsic functions
with that stack's ids (tools/deploy/template.py; parameters keep their defaults, so the
template's defaults must agree with dev_stack.py's), and compares.

Usage: AWS_ENDPOINT_URL=http://127.0.0.1:PORT python check_equality.py
Exit 0 when equal, 1 with one line per difference, 2 when the stack cannot be created.
"""

import json
import os
import pathlib
import subprocess
import sys

import boto3

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "moto"))
import dev_stack  # noqa: E402
import template  # noqa: E402


def api_form(value, upper=True):
    """CloudFormation's PascalCase task definition properties in the ECS API's camelCase."""
    if isinstance(value, list):
        return [api_form(v, upper) for v in value]
    if isinstance(value, dict):
        return {
            (k[0].lower() + k[1:] if upper else k): api_form(v, upper and k != "Options")
            for k, v in value.items()
        }
    return value


def rules(resolver, group, direction):
    """The rule keys of one group and direction: inline rules plus standalone rule resources."""
    inline = "SecurityGroupIngress" if direction == "ingress" else "SecurityGroupEgress"
    standalone = "AWS::EC2::" + inline
    found = list(resolver.resource(group).get(inline, []))
    group_id = resolver.getatt(group, "GroupId")
    for name, resource in resolver.template["Resources"].items():
        if resource["Type"] == standalone:
            properties = resolver.resource(name)
            if properties.pop("GroupId") == group_id:
                found.append(properties)
    return sorted(dev_stack.rule_key(dev_stack.ip_permission(rule)) for rule in found)


def described_rules(ec2, group_id, direction):
    group = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
    permissions = group["IpPermissions" if direction == "ingress" else "IpPermissionsEgress"]
    return sorted(dev_stack.rule_key(p) for p in permissions)


def main():
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        print("check_equality: set AWS_ENDPOINT_URL (tools/moto/start.sh)", file=sys.stderr)
        return 2
    name = f"deploy-eq-{os.getpid()}"
    created = subprocess.run(
        [sys.executable, str(HERE.parent / "moto" / "dev_stack.py"), "--endpoint", endpoint,
         "--name", name],
        capture_output=True, text=True, check=False,
    )
    if created.returncode != 0:
        print(f"check_equality: dev_stack.py failed:\n{created.stderr}", file=sys.stderr)
        return 2
    env = dict(line.removeprefix("export ").split("=", 1) for line in created.stdout.splitlines())

    session = boto3.session.Session(region_name=template.REGION)
    ec2, efs, iam, ecs = (session.client(s, endpoint_url=endpoint) for s in ("ec2", "efs", "iam", "ecs"))
    file_system_id = env["CLAWFLEET_FILE_SYSTEM_ID"]
    file_system_arn = efs.describe_file_systems(FileSystemId=file_system_id)["FileSystems"][0]["FileSystemArn"]
    agents_group = env["CLAWFLEET_SECURITY_GROUPS"]
    mount_targets_group = ec2.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [f"{name}-mount-targets"]}]
    )["SecurityGroups"][0]["GroupId"]
    execution_role, task_role = f"{name}-task-execution", f"{name}-task"
    boundary_arn = env["CLAWFLEET_AGENT_PERMISSIONS_BOUNDARY"]

    resolver = template.Resolver(
        template.load(),
        stack_name=name,
        refs={"FileSystem": file_system_id, "AgentPermissionsBoundary": boundary_arn},
        attrs={
            ("FileSystem", "Arn"): file_system_arn,
            ("AgentSecurityGroup", "GroupId"): agents_group,
            ("MountTargetSecurityGroup", "GroupId"): mount_targets_group,
            ("AgentExecutionRole", "Arn"): env["CLAWFLEET_EXECUTION_ROLE_ARN"],
            ("AgentTemplateTaskRole", "Arn"): env["CLAWFLEET_TASK_ROLE_ARN"],
        },
    )

    def role(resource):
        properties = resolver.resource(resource)
        return properties, properties["Policies"][0]

    def deployed_role(role_name, policy_name):
        described = iam.get_role(RoleName=role_name)["Role"]
        policy = iam.get_role_policy(RoleName=role_name, PolicyName=policy_name)["PolicyDocument"]
        return described, dev_stack.parsed_document(policy)

    comparisons = []
    comparisons.append((
        "file-system policy",
        resolver.resource("FileSystem")["FileSystemPolicy"],
        json.loads(efs.describe_file_system_policy(FileSystemId=file_system_id)["Policy"]),
    ))
    for resource, role_name in (("AgentExecutionRole", execution_role), ("AgentTemplateTaskRole", task_role)):
        properties, policy = role(resource)
        described, deployed_policy = deployed_role(role_name, policy["PolicyName"])
        comparisons += [
            (f"{resource} trust policy", properties["AssumeRolePolicyDocument"],
             dev_stack.parsed_document(described["AssumeRolePolicyDocument"])),
            (f"{resource} policy {policy['PolicyName']}", policy["PolicyDocument"], deployed_policy),
            (f"{resource} permissions boundary", properties.get("PermissionsBoundary"),
             described.get("PermissionsBoundary", {}).get("PermissionsBoundaryArn")),
        ]
    version = iam.get_policy(PolicyArn=boundary_arn)["Policy"]["DefaultVersionId"]
    comparisons.append((
        "AgentPermissionsBoundary",
        resolver.resource("AgentPermissionsBoundary")["PolicyDocument"],
        dev_stack.parsed_document(
            iam.get_policy_version(PolicyArn=boundary_arn, VersionId=version)["PolicyVersion"]["Document"]
        ),
    ))
    for group, group_id in (("AgentSecurityGroup", agents_group), ("MountTargetSecurityGroup", mount_targets_group)):
        for direction in ("ingress", "egress"):
            comparisons.append((
                f"{group} {direction} rules",
                rules(resolver, group, direction), described_rules(ec2, group_id, direction),
            ))

    differences = [
        f"{what}: the template deploys {json.dumps(a, sort_keys=True)}; "
        f"dev_stack.py created {json.dumps(b, sort_keys=True)}"
        for what, a, b in comparisons if a != b
    ]
    desired = api_form(resolver.resource("AgentTemplateTaskDefinition"))
    described = ecs.describe_task_definition(
        taskDefinition=env["CLAWFLEET_TEMPLATE_TASK_DEFINITION"]
    )["taskDefinition"]
    observed = {k: v for k, v in described.items() if k not in dev_stack.DESCRIBED_ONLY}
    if dev_stack.differs(desired, observed):
        differences.append(
            f"template task definition: the template deploys {json.dumps(desired, sort_keys=True)}; "
            f"dev_stack.py registered {json.dumps(observed, sort_keys=True, default=str)}"
        )
    for difference in differences:
        print(difference, file=sys.stderr)
    if differences:
        return 1
    print(f"the template deploys what dev_stack.py creates ({len(comparisons) + 1} comparisons)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
