"""Static checks of deploy/monitoring that promtool does not make:

- every alert has a runbook_url whose anchor is a heading of docs/operations.md;
- every alert has a promtool test in which it fires and one in which it stays silent;
- every metric the rules and the dashboard query is registered by the code in crates/
  (a string literal in a crates/*/src file, the name without _total/_bucket/_sum/_count), or
  listed in deploy/monitoring/pending-metrics.txt. A rule on a metric that does not exist is a
  silent alert. This reads the source; scraping a running controller and API is the stronger
  test issue 15 asks for (docs/operations.md, "Monitoring").

Usage: check_monitoring.py      exit 0 when all hold, 1 with one line per problem
"""

import json
import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
PREFIXES = ("controller_runtime_", "workqueue_", "clawfleet_", "leader_election_")
SUFFIXES = ("_total", "_bucket", "_sum", "_count")


def anchors(markdown):
    """GitHub's heading anchors: lowercase, punctuation dropped, spaces to hyphens."""
    found = set()
    for line in markdown.splitlines():
        match = re.match(r"#+\s+(.*)", line)
        if match:
            text = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower())
            found.add(text.replace(" ", "-"))
    return found


def metric_names(expr):
    return {name for name in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr) if name.startswith(PREFIXES)}


def registered():
    names = set()
    for path in (ROOT / "crates").glob("*/src/**/*.rs"):
        names.update(re.findall(r'"([a-z_:][a-z0-9_:]*)"', path.read_text(encoding="utf-8")))
    return names


def base(name):
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def main():
    problems = []
    rules = yaml.safe_load((MONITORING / "clawfleet.rules.yaml").read_text(encoding="utf-8"))
    tests = yaml.safe_load((MONITORING / "clawfleet.rules.test.yaml").read_text(encoding="utf-8"))
    headings = anchors((ROOT / "docs" / "operations.md").read_text(encoding="utf-8"))

    firing, silent = set(), set()
    for test in tests["tests"]:
        for case in test.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else silent).add(case["alertname"])

    used = {}
    for group in rules["groups"]:
        for rule in group["rules"]:
            alert = rule.get("alert")
            for name in metric_names(rule["expr"]):
                used.setdefault(name, f"alert {alert}")
            if not alert:
                continue
            url = rule.get("annotations", {}).get("runbook_url", "")
            anchor = url.partition("#")[2]
            if not url.startswith("docs/operations.md#") or anchor not in headings:
                problems.append(f"alert {alert}: runbook_url {url!r} is not a heading of docs/operations.md")
            if alert not in firing:
                problems.append(f"alert {alert}: no promtool test in which it fires")
            if alert not in silent:
                problems.append(f"alert {alert}: no promtool test in which it stays silent")

    dashboard = json.loads((MONITORING / "clawfleet.dashboard.json").read_text(encoding="utf-8"))
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            for name in metric_names(target["expr"]):
                used.setdefault(name, f"dashboard panel {panel['title']!r}")

    known = registered()
    pending = {
        line.strip() for line in (MONITORING / "pending-metrics.txt").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for name, where in sorted(used.items()):
        if base(name) not in known and name not in known and name not in pending:
            problems.append(f"{where}: metric {name} is not registered in crates/ nor pending")
    for name in sorted(pending):
        if base(name) in known or name in known:
            problems.append(f"pending-metrics.txt: {name} is registered now; remove the line")

    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        return 1
    print(f"monitoring: {len(firing)} alerts with runbooks and tests; {len(used)} metrics, all exported")
    return 0


if __name__ == "__main__":
    sys.exit(main())
