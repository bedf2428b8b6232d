"""Facts about the machine a process runs on, for the parts that size themselves to it."""

from __future__ import annotations

import os


def available_cores() -> int:
    """The cores this process may run on (its affinity: what a container or `taskset` grants
    it), else the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
