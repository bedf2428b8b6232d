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


def flush_subnormals(device) -> None:
    """On the CPU, flush subnormal floats to zero from now on (training loops call this).

    Gradients that vanish through hundreds of LSTM steps become subnormal floats, and CPU
    arithmetic on subnormals is many times slower: flushing them to zero made a training step
    here about 5x faster, with no measurable effect on accuracy. The flag is not restored
    afterwards: torch cannot read it back (``set_flush_denormal`` returns whether the CPU
    supports it, not the previous mode).
    """
    if device.type == "cpu":
        import torch  # here: the serving side reads this module's core count without torch

        torch.set_flush_denormal(True)
