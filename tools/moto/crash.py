"""Crashes one agent's task on the local AWS, as the demo shows it: StopTask behind clawfleet's
back, then the ECS task state change event on the controller's queue, as EventBridge would
deliver it (moto's ECS emits no events; the event is the documented sample's shape,
crates/controller/fixtures/ecs-task-state-change.json). Waits until a new task of the agent
runs and prints how long that took.

Usage: crash.py AGENT_ID     (CLAWFLEET_CLUSTER, CLAWFLEET_TASK_EVENTS_QUEUE and AWS_* from the
                               development stack's environment)
"""

import json
import os
import pathlib
import sys
import time

import boto3

ROOT = pathlib.Path(__file__).resolve().parents[2]


def main(agent_id):
    session = boto3.session.Session(region_name=os.environ.get("AWS_REGION", "us-east-1"))
    ecs = session.client("ecs", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    sqs = session.client("sqs", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    cluster = os.environ["CLAWFLEET_CLUSTER"]
    started_by = f"clawfleet/{agent_id}"

    def running():
        arns = ecs.list_tasks(cluster=cluster, startedBy=started_by, desiredStatus="RUNNING")["taskArns"]
        if not arns:
            return []
        tasks = ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"]
        return [t for t in tasks if t["lastStatus"] == "RUNNING"]

    before = running()
    if len(before) != 1:
        print(f"{agent_id}: expected one running task, found {len(before)}", file=sys.stderr)
        return 2
    task = before[0]
    ecs.stop_task(cluster=cluster, task=task["taskArn"], reason="Essential container in task exited")
    stopped = time.monotonic()
    event = json.loads((ROOT / "crates/controller/fixtures/ecs-task-state-change.json").read_text())
    detail = event["detail"]
    detail.update(
        clusterArn=task["clusterArn"],
        taskArn=task["taskArn"],
        startedBy=started_by,
        lastStatus="STOPPED",
        desiredStatus="STOPPED",
        stopCode="EssentialContainerExited",
        stoppedReason="Essential container in task exited",
        version=detail["version"] + 10,
    )
    sqs.send_message(QueueUrl=os.environ["CLAWFLEET_TASK_EVENTS_QUEUE"], MessageBody=json.dumps(event))
    print(f"stopped {agent_id}'s task {task['taskArn'].rsplit('/', 1)[-1]}; its event is on the queue")
    while time.monotonic() - stopped < 30:
        now = [t for t in running() if t["taskArn"] != task["taskArn"]]
        if now:
            took = time.monotonic() - stopped
            print(f"relaunched as {now[0]['taskArn'].rsplit('/', 1)[-1]} {took:.1f}s after the crash")
            return 0
        time.sleep(0.2)
    print(f"{agent_id}: not relaunched within 30 s", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
