"""Runs parliament on every policy document clawfleet deploys: each one the CloudFormation
template holds (intrinsics resolved with fixed values, tools/deploy/template.py) and the
per-agent task role policy the controller will render (deploy/policies/agent-task-role-policy.json,
issue 13), with parliament's community auditors.

Ignores live in tools/deploy/parliament-overrides.yaml, each with its reason. They are applied
here rather than by parliament's --config: parliament 1.6's CLI never matches a plain-string
`ignore_locations` value (its make_list() turns a str into []), so its ignores do nothing.
An entry ignores a finding when each of its keys matches the finding's location in full
(regular expressions, case-insensitive); for `actions`, every action of the finding must match.

Usage (in the venv tools/deploy_check.sh makes): python lint_policies.py
Exit 0 when nothing is found, 1 with one line per finding.
"""

import json
import pathlib
import re
import sys

import parliament
import yaml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import policies  # noqa: E402
import template  # noqa: E402

OVERRIDES = pathlib.Path(__file__).resolve().parent / "parliament-overrides.yaml"


def documents():
    resolver = template.Resolver(template.load())
    found = template.policy_documents(resolver)
    values = {
        "FileSystemArn": resolver.getatt("FileSystem", "Arn"),
        "AccessPointArn": f"arn:aws:elasticfilesystem:{template.REGION}:{template.ACCOUNT}"
                          ":access-point/fsap-0123456789abcdef0",
    }
    found.append(("agent-task-role-policy", policies.render("agent-task-role-policy", values)))
    return found


def ignored(finding, ignores):
    for entry in ignores.get(finding.issue, []):
        def matches(key, pattern):
            value = finding.location.get(key, "")
            values = value if isinstance(value, list) else [value]
            return bool(values) and all(
                re.fullmatch(pattern, str(v), re.IGNORECASE) for v in values
            )

        if all(matches(key, pattern) for key, pattern in entry.items()):
            return True
    return False


def main():
    with open(OVERRIDES, encoding="utf-8") as file:
        ignores = {
            issue: settings.get("ignore_locations", [])
            for issue, settings in (yaml.safe_load(file) or {}).items()
        }
    # The community auditors' findings are described in their own file, as parliament's CLI does.
    parliament.override_config(
        pathlib.Path(parliament.__file__).parent / "community_auditors" / "config_override.yaml"
    )
    found = documents()
    problems = []
    for location, document in found:
        policy = parliament.analyze_policy_string(
            json.dumps(document, indent=2), f"{location}.json",
            include_community_auditors=True, config=parliament.config,
        )
        for finding in policy.findings:
            finding = parliament.enhance_finding(finding)
            if not ignored(finding, ignores):
                problems.append(
                    f"{location}: {finding.severity} {finding.issue}: {finding.title}"
                    f" {finding.detail or ''} {finding.location}"
                )
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print(f"parliament: no findings in {len(found)} policy documents")
    return 0


if __name__ == "__main__":
    sys.exit(main())
