"""Run one task per item on a few threads; the first failure stops the others."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Cancelled(Exception):
    """Another task failed: stop this one."""


def run_all(
    work: Callable[[Item, threading.Event], Result], items: list[Item], workers: int
) -> list[Result]:
    """`work(item, cancel)` for every item, at most `workers` at a time; results in order.

    When one fails, `cancel` is set (a task checks it between chunks and raises
    `Cancelled`), the tasks not started are dropped, and the first failure is raised
    once every running task has stopped.
    """
    cancel = threading.Event()
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(work, item, cancel) for item in items]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in futures if f in done and f.exception() is not None]
        if failed:
            cancel.set()
            for future in pending:
                future.cancel()
            wait(pending)
            error = failed[0].exception()
            assert error is not None  # `failed` holds only futures that raised
            raise error
    return [future.result() for future in futures]
