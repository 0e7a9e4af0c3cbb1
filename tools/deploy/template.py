"""Reads deploy/cloudformation/clawfleet.yaml and resolves its intrinsic functions with fixed
values, so that tests can look at what a stack would deploy: its policy documents (for
parliament) and its policies, rules and template task definition (to compare with the
development stack).

Fixed values: parameters take their defaults, else FIXED_PARAMETERS; a resource's Ref is its
physical name property when it has one (TableName, ClusterName, LogGroupName, Name), else a
made-up id; GetAtt gives a made-up ARN or id. Callers override any of them (`refs`, `attrs`),
e.g. with what the development stack really created.
"""

import pathlib
import re

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "cloudformation" / "clawfleet.yaml"
PARTITION, REGION, ACCOUNT = "aws", "us-east-1", "123456789012"
# Values for the parameters without a default; every condition is true with them, so every
# optional resource and policy is resolved too.
FIXED_PARAMETERS = {
    "VpcId": "vpc-0123456789abcdef0",
    "PrivateSubnet1": "subnet-0123456789abcdef1",
    "PrivateSubnet2": "subnet-0123456789abcdef2",
    "PrivateSubnet3": "subnet-0123456789abcdef3",
    "ApiSubnetIds": ["subnet-0123456789abcdefa", "subnet-0123456789abcdefb"],
    "ControllerImage": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/clawfleet@sha256:" + "0" * 64,
    "ApiCertificateArn": f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/00000000-0000-0000-0000-000000000000",
    "PrometheusWorkspaceId": "ws-00000000-0000-0000-0000-000000000000",
    "AlarmTopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:clawfleet-alarms",
}
# The property whose value a resource's Ref returns, for the types whose Ref is a name.
NAME_PROPERTIES = {
    "AWS::DynamoDB::Table": "TableName",
    "AWS::ECS::Cluster": "ClusterName",
    "AWS::Logs::LogGroup": "LogGroupName",
}
NO_VALUE = object()


class Unresolvable(Exception):
    """The template uses an intrinsic function or reference this resolver does not know."""


def _tagged(tag, long_name):
    def construct(loader, node):
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if tag == "!GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {long_name: value}

    return construct


class CloudFormationLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub, ...) turned into their long form."""


for _short, _long in {
    "!Ref": "Ref", "!Sub": "Fn::Sub", "!GetAtt": "Fn::GetAtt", "!Join": "Fn::Join",
    "!If": "Fn::If", "!Equals": "Fn::Equals", "!Not": "Fn::Not", "!And": "Fn::And",
    "!Or": "Fn::Or", "!Select": "Fn::Select", "!Split": "Fn::Split", "!Condition": "Condition",
    "!GetAZs": "Fn::GetAZs", "!Base64": "Fn::Base64", "!FindInMap": "Fn::FindInMap",
}.items():
    CloudFormationLoader.add_constructor(_short, _tagged(_short, _long))


def load(path=TEMPLATE):
    with open(path, encoding="utf-8") as file:
        return yaml.load(file, Loader=CloudFormationLoader)  # noqa: S506 (a SafeLoader subclass)


class Resolver:
    def __init__(self, template, stack_name="clawfleet", parameters=None, refs=None, attrs=None):
        self.template = template
        self.stack_name = stack_name
        self.parameters = {}
        for name, spec in template.get("Parameters", {}).items():
            if parameters and name in parameters:
                self.parameters[name] = parameters[name]
            elif name in FIXED_PARAMETERS:
                self.parameters[name] = FIXED_PARAMETERS[name]
            elif "Default" in spec:
                self.parameters[name] = spec["Default"]
            else:
                raise Unresolvable(f"parameter {name} has no default and no fixed value")
        self.refs = refs or {}
        self.attrs = attrs or {}

    # --- references --------------------------------------------------------------------------

    def ref(self, name):
        pseudo = {
            "AWS::Partition": PARTITION, "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
            "AWS::StackName": self.stack_name, "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if name in self.refs:
            return self.refs[name]
        resource = self.template["Resources"].get(name)
        if resource is None:
            raise Unresolvable(f"Ref to unknown {name}")
        properties = resource.get("Properties", {})
        kind = resource["Type"]
        if NAME_PROPERTIES.get(kind) in properties:
            return self.resolve(properties[NAME_PROPERTIES[kind]])
        if kind == "AWS::IAM::ManagedPolicy":
            return f"arn:{PARTITION}:iam::{ACCOUNT}:policy/{self.stack_name}-{name}"
        if kind == "AWS::SecretsManager::Secret":
            return f"arn:{PARTITION}:secretsmanager:{REGION}:{ACCOUNT}:secret:{self.stack_name}-{name}-AbCdEf"
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{self.stack_name}-{name}"
        return f"{self.stack_name}-{name}"

    def getatt(self, name, attribute):
        if (name, attribute) in self.attrs:
            return self.attrs[(name, attribute)]
        resource = self.template["Resources"].get(name)
        if resource is None:
            raise Unresolvable(f"GetAtt of unknown {name}")
        kind, ref = resource["Type"], self.ref(name)
        arns = {
            "AWS::IAM::Role": f"arn:{PARTITION}:iam::{ACCOUNT}:role/{self.stack_name}-{name}",
            "AWS::EFS::FileSystem": f"arn:{PARTITION}:elasticfilesystem:{REGION}:{ACCOUNT}:file-system/fs-0123456789abcdef0",
            "AWS::SQS::Queue": f"arn:{PARTITION}:sqs:{REGION}:{ACCOUNT}:{self.stack_name}-{name}",
            "AWS::ECS::Cluster": f"arn:{PARTITION}:ecs:{REGION}:{ACCOUNT}:cluster/{ref}",
            "AWS::Events::Rule": f"arn:{PARTITION}:events:{REGION}:{ACCOUNT}:rule/{self.stack_name}-{name}",
        }
        if attribute == "Arn" and kind in arns:
            return arns[kind]
        if attribute == "GroupId":
            return f"sg-{name.lower()}"
        if attribute == "QueueName":
            return f"{self.stack_name}-{name}"
        if attribute == "DNSName":
            return f"{name.lower()}.{REGION}.elb.amazonaws.com"
        raise Unresolvable(f"GetAtt {name}.{attribute}")

    # --- functions ---------------------------------------------------------------------------

    def condition(self, name):
        return bool(self.resolve(self.template["Conditions"][name]))

    def sub(self, text, variables):
        def one(match):
            expr = match.group(1)
            if expr.startswith("!"):
                return "${" + expr[1:] + "}"
            if expr in variables:
                return str(variables[expr])
            if "." in expr and not expr.startswith("AWS::"):
                return str(self.getatt(*expr.split(".", 1)))
            return str(self.ref(expr))

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def resolve(self, value):
        if isinstance(value, list):
            items = [self.resolve(v) for v in value]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                name, attribute = arg.split(".", 1) if isinstance(arg, str) else arg
                return self.getatt(name, attribute)
            if key == "Fn::Sub":
                if isinstance(arg, str):
                    return self.sub(arg, {})
                variables = {k: self.resolve(v) for k, v in arg[1].items()}
                return self.sub(arg[0], variables)
            if key == "Fn::Join":
                return arg[0].join(str(v) for v in self.resolve(arg[1]))
            if key == "Fn::If":
                return self.resolve(arg[1] if self.condition(arg[0]) else arg[2])
            if key == "Fn::Equals":
                return self.resolve(arg[0]) == self.resolve(arg[1])
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(a) for a in arg)
            if key == "Fn::Or":
                return any(self.resolve(a) for a in arg)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::Select":
                return self.resolve(arg[1])[int(self.resolve(arg[0]))]
            if key.startswith("Fn::"):
                raise Unresolvable(key)
        out = {}
        for key, item in value.items():
            resolved = self.resolve(item)
            if resolved is not NO_VALUE:
                out[key] = resolved
        return out

    def resource(self, name):
        """A resource's Properties with every intrinsic function resolved."""
        return self.resolve(self.template["Resources"][name].get("Properties", {}))


def policy_documents(resolver):
    """(location, document) for every IAM, file-system and queue policy document of the template."""
    found = []
    for name, resource in resolver.template["Resources"].items():
        if "Condition" in resource and not resolver.condition(resource["Condition"]):
            continue
        kind = resource["Type"]
        properties = resolver.resource(name)
        if kind == "AWS::IAM::Role":
            found.append((f"{name}.AssumeRolePolicyDocument", properties["AssumeRolePolicyDocument"]))
            for policy in properties.get("Policies", []):
                found.append((f"{name}.Policies.{policy['PolicyName']}", policy["PolicyDocument"]))
        elif kind in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy", "AWS::SQS::QueuePolicy"):
            found.append((f"{name}.PolicyDocument", properties["PolicyDocument"]))
        elif kind == "AWS::EFS::FileSystem" and "FileSystemPolicy" in properties:
            found.append((f"{name}.FileSystemPolicy", properties["FileSystemPolicy"]))
    return found
