"""Renders deploy/policies/*.json into deploy/cloudformation/clawfleet.yaml.

The template is written by hand except between marker lines, which this script owns:

    PolicyDocument:
      # BEGIN deploy/policies/controller-role-policy.json mapping
      ...generated...
      # END deploy/policies/controller-role-policy.json

`mapping` writes the document's top-level keys as the enclosing mapping's keys; `item` writes the
document as one list item. `NAME.json#/a/0` selects a part of the document (a JSON pointer).
Each `${Name}` placeholder becomes the CloudFormation expression PLACEHOLDERS gives it (a Ref,
a GetAtt or an Fn::Sub), and the template task definition's keys are turned from the ECS API's
camelCase into CloudFormation's PascalCase.

Usage: render_template.py          rewrite the template in place
       render_template.py --check  exit 1 when the committed template is not up to date
"""

import json
import pathlib
import re
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import policies  # noqa: E402

TEMPLATE = policies.ROOT / "deploy" / "cloudformation" / "clawfleet.yaml"

# Placeholder -> its Fn::Sub text in the template: a parameter, a pseudo parameter, a resource
# (its Ref) or ${RESOURCE.ATTRIBUTE} (its GetAtt), possibly within other text.
PLACEHOLDERS = {
    "Partition": "${AWS::Partition}",
    "Region": "${AWS::Region}",
    "AccountId": "${AWS::AccountId}",
    "SecretPrefix": "${SecretPrefix}",
    "TableName": "${Table}",
    "ClusterName": "${AgentCluster}",
    "FileSystemArn": "${FileSystem.Arn}",
    "AgentLogGroup": "${AgentLogGroup}",
    "ServiceLogGroup": "${ServiceLogGroup}",
    "ExecutionRoleArn": "${AgentExecutionRole.Arn}",
    "TemplateTaskRoleArn": "${AgentTemplateTaskRole.Arn}",
    "AgentRolePath": "/clawfleet/${Installation}/",
    "AgentPermissionsBoundaryArn": "${AgentPermissionsBoundary}",
    "TaskEventsQueueArn": "${TaskEventsQueue.Arn}",
    "ApiTokensSecretArn": "${ApiTokensSecret}",
    "AgentImage": "${AgentImage}",
    "AgentHealthCheckCommand": "${AgentHealthCheckCommand}",
    "TemplateFamily": "${AWS::StackName}-agent-template",
    "AgentEgressCidr": "${AgentEgressCidr}",
    "AgentSecurityGroupId": "${AgentSecurityGroup.GroupId}",
    "MountTargetSecurityGroupId": "${MountTargetSecurityGroup.GroupId}",
}

BEGIN = re.compile(r"^(?P<indent> *)# BEGIN deploy/policies/(?P<name>[\w-]+)\.json"
                   r"(?:#(?P<pointer>\S+))? (?P<mode>mapping|item)$")
END = re.compile(r"^ *# END deploy/policies/")
# Maps whose keys are data, not CloudFormation property names.
VERBATIM_KEYS = {"options", "Options"}


class TemplateError(Exception):
    """The template's markers are malformed or name something unknown."""


def expression(text):
    """A string of a document as CloudFormation writes it."""
    names = policies.PLACEHOLDER.findall(text)
    if not names:
        return text
    unknown = [n for n in names if n not in PLACEHOLDERS]
    if unknown:
        raise TemplateError(f"no CloudFormation expression for ${{{unknown[0]}}} (PLACEHOLDERS)")
    sub = policies.PLACEHOLDER.sub(lambda m: PLACEHOLDERS[m.group(1)], text)
    whole = re.fullmatch(r"\$\{([A-Za-z0-9:]+)(?:\.([A-Za-z]+))?\}", sub)
    if whole and whole.group(2):
        return {"Fn::GetAtt": [whole.group(1), whole.group(2)]}
    if whole:
        return {"Ref": whole.group(1)}
    return {"Fn::Sub": sub}


def to_cloudformation(value, pascal):
    if isinstance(value, str):
        return expression(value)
    if isinstance(value, list):
        return [to_cloudformation(item, pascal) for item in value]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            name = key[0].upper() + key[1:] if pascal else key
            inner = pascal and key not in VERBATIM_KEYS
            out[name] = to_cloudformation(item, inner)
        return out
    return value


def select(document, pointer):
    for part in filter(None, (pointer or "").split("/")):
        document = document[int(part)] if isinstance(document, list) else document[part]
    return document


def compact(value, indent, width=100):
    """JSON, one value per line where it does not fit in `width` columns, else on one line."""
    one_line = json.dumps(value, separators=(", ", ": "))
    if indent + len(one_line) <= width or not isinstance(value, (dict, list)) or not value:
        return one_line
    pad = " " * (indent + 2)
    if isinstance(value, list):
        items = [pad + compact(item, indent + 2, width) for item in value]
        return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"
    items = [f"{pad}{json.dumps(key)}: {compact(item, indent + 2, width)}"
             for key, item in value.items()]
    return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"


def flow(value, indent):
    """JSON (valid YAML flow style) whose continuation lines sit below `indent`."""
    return compact(value, indent + 2)


def block(name, pointer, mode, indent):
    document = to_cloudformation(
        select(policies.load(name), pointer), pascal=(name == "template-task-definition")
    )
    pad = " " * indent
    if mode == "item":
        return [f"{pad}- {flow(document, indent)}"]
    if not isinstance(document, dict):
        raise TemplateError(f"{name}.json#{pointer}: `mapping` needs a JSON object")
    return [f"{pad}{key}: {flow(item, indent)}" for key, item in document.items()]


def render(text):
    out, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        i += 1
        begin = BEGIN.match(line)
        if not begin:
            continue
        while i < len(lines) and not END.match(lines[i]):
            i += 1
        if i == len(lines):
            raise TemplateError(f"no END after: {line.strip()}")
        out += block(begin["name"], begin["pointer"], begin["mode"], len(begin["indent"]))
        out.append(lines[i])
        i += 1
    return "\n".join(out)


def main(argv):
    current = TEMPLATE.read_text(encoding="utf-8")
    try:
        rendered = render(current)
    except (TemplateError, KeyError, IndexError, ValueError) as error:
        print(f"render_template: {error}", file=sys.stderr)
        return 2
    if argv[1:] == ["--check"]:
        if rendered != current:
            print("deploy/cloudformation/clawfleet.yaml is not up to date with deploy/policies: "
                  "run python3 tools/deploy/render_template.py", file=sys.stderr)
            return 1
        print("clawfleet.yaml is up to date with deploy/policies")
        return 0
    TEMPLATE.write_text(rendered, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
