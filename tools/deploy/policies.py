"""Reads deploy/policies/*.json, the one source of the IAM and file-system policies, the
security-group rules and the template task definition, and resolves their placeholders.

A placeholder is `${Name}` inside a JSON string (the syntax of CloudFormation's Fn::Sub). Both
consumers resolve the same names: tools/moto/dev_stack.py with the values of the development
stack, tools/deploy/render_template.py with the CloudFormation expression for each name
(PLACEHOLDERS in that file). A name neither knows is an error, never left in a document.
"""

import json
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
POLICIES = ROOT / "deploy" / "policies"
PLACEHOLDER = re.compile(r"\$\{([A-Za-z][A-Za-z0-9]*)\}")


class UnresolvedPlaceholder(Exception):
    """A document names a placeholder for which no value was given."""


def load(name):
    """The document deploy/policies/NAME.json as written, placeholders included."""
    with open(POLICIES / f"{name}.json", encoding="utf-8") as file:
        return json.load(file)


def names():
    """Every document's name (the file name without .json), sorted."""
    return sorted(path.stem for path in POLICIES.glob("*.json"))


def placeholders(document):
    """The placeholder names a document uses."""
    found = set()

    def walk(value):
        if isinstance(value, str):
            found.update(PLACEHOLDER.findall(value))
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(document)
    return found


def resolve(document, values):
    """A copy of `document` with every `${Name}` replaced by `values[Name]`."""

    def substitute(match):
        name = match.group(1)
        if name not in values:
            raise UnresolvedPlaceholder(f"no value for ${{{name}}}")
        return str(values[name])

    def walk(value):
        if isinstance(value, str):
            return PLACEHOLDER.sub(substitute, value)
        if isinstance(value, dict):
            return {key: walk(item) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item) for item in value]
        return value

    return walk(document)


def render(name, values):
    """deploy/policies/NAME.json with its placeholders resolved."""
    return resolve(load(name), values)
