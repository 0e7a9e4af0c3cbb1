"""Starts moto_server with the fixes clawfleet's tests need, then serves until its parent exits.

Usage: python3 launcher.py PORT

- ECS: moto returns tasks[].containers[].cpu and memory as JSON numbers where the ECS model has
  strings, which aws-sdk-ecs refuses to parse. We fix the emulator, not the client.
- ECS: by default every DescribeTasks moves a task one step towards STOPPED. Tests stop tasks
  deliberately instead, so task transitions are manual.
- DynamoDB: moto serves requests on threads and checks a ConditionExpression apart from the write
  that follows it, so two conditional writes racing on one item could both succeed. DynamoDB
  never lets that happen, and the API's optimistic concurrency is tested on it, so DynamoDB
  requests are served one at a time.
- EFS: moto 5.2.1 has no DeleteFileSystemPolicy; `clawfleet audit`'s test removes the policy
  the way an operator would, so the launcher adds the operation (the backend already keeps
  the policy as one attribute that DescribeFileSystemPolicy reads).
- The server exits when the process that started it goes away, so a test binary that starts its
  own server never leaks one.
"""

import os
import sys
import threading
import time


def patch_ecs_container_types():
    from moto.ecs import models

    original_init = models.Container.__init__

    def init(self, task_def):
        original_init(self, task_def)
        if self.cpu is not None:
            self.cpu = str(self.cpu)
        if self.memory is not None:
            self.memory = str(self.memory)

    models.Container.__init__ = init


def count_missing_container_memory_as_zero():
    """AWS lets a container leave out memory and memoryReservation when the task sets memory
    (the purge task's one container does); moto's RunTask raises a TypeError (HTTP 500)."""
    from moto.ecs import models

    backend = models.EC2ContainerServiceBackend
    original = backend._calculate_task_resource_requirements
    keys = ("memory", "memoryReservation", "Memory", "MemoryReservation")

    def calculate(task_definition):
        missing = [
            c for c in task_definition.container_definitions if not any(k in c for k in keys)
        ]
        for c in missing:
            c["memoryReservation"] = 0
        try:
            return original(task_definition)
        finally:
            for c in missing:
                del c["memoryReservation"]

    backend._calculate_task_resource_requirements = staticmethod(calculate)


def manual_task_transitions():
    from moto.moto_api import state_manager

    state_manager.set_transition(
        model_name="ecs::task",
        transition={"progression": "manual", "times": 1000000},
    )


def atomic_dynamodb_requests():
    from moto.dynamodb.responses import DynamoHandler

    lock = threading.Lock()
    original = DynamoHandler.call_action

    def call_action(self):
        with lock:
            return original(self)

    DynamoHandler.call_action = call_action


def add_efs_delete_file_system_policy():
    from moto.efs.exceptions import FileSystemNotFound
    from moto.efs.models import EFSBackend
    from moto.efs.responses import EFSResponse

    def backend_delete(self, file_system_id):
        if file_system_id not in self.file_systems_by_id:
            raise FileSystemNotFound(file_system_id)
        self.file_systems_by_id[file_system_id].file_system_policy = None

    def delete_file_system_policy(self):
        self.efs_backend.delete_file_system_policy(self._get_param("FileSystemId"))
        return "{}", {"Content-Type": "application/json"}

    EFSBackend.delete_file_system_policy = backend_delete
    EFSResponse.delete_file_system_policy = delete_file_system_policy


def exit_with_parent():
    parent = os.getppid()

    def watch():
        while True:
            if os.getppid() != parent:
                os._exit(0)
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True).start()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: launcher.py PORT")
    port = sys.argv[1]
    patch_ecs_container_types()
    count_missing_container_memory_as_zero()
    manual_task_transitions()
    atomic_dynamodb_requests()
    add_efs_delete_file_system_policy()
    if os.environ.get("CLAWFLEET_MOTO_DETACHED") != "1":
        exit_with_parent()
    from moto.server import main as moto_main

    moto_main(["-H", "127.0.0.1", "-p", port])


if __name__ == "__main__":
    main()
