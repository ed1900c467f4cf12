"""`delete`: what containerd runs when a task's shim died (killed, crashed): the task's
hyperd container goes (and the pod, its VM, if the task was the sandbox), its root
filesystem is unmounted, and a DeleteResponse is printed (status 137, as runc's shim
reports a task it cleaned up)."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime

from ..log import get_logger
from .bundle import TaskRecord, load_config
from .events import timestamp
from .hyperd import Hyperd
from .process import VM_GONE_STATUS
from .protogen import shim_protos
from .rootfs import unmount_rootfs
from .status import RpcError

log = get_logger()


def delete(args: argparse.Namespace) -> int:
    bundle = args.bundle or os.getcwd()
    record = TaskRecord.load(bundle)
    if record is not None:
        hyperd = Hyperd(load_config(bundle) or record.config)
        try:
            if record.container:  # none yet: the shim died while the pod was made
                hyperd.remove_container(record.container)
            if record.sandbox and record.pod:
                hyperd.remove_pod(record.pod)
        except RpcError as e:  # told to containerd as a cleanup warning
            print(f"containerd-shim-hyper-v2: {e.message}", file=sys.stderr)
    unmount_rootfs(bundle)
    TaskRecord.remove(bundle)
    protos = shim_protos()
    response = protos.message("containerd.task.v2.DeleteResponse")(
        pid=record.vm_pid if record else 0, exit_status=VM_GONE_STATUS
    )
    response.exited_at.CopyFrom(timestamp(protos, datetime.now(UTC)))
    sys.stdout.buffer.write(response.SerializeToString())
    return 0
