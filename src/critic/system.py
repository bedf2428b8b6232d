"""Facts about the machine a process runs on, for the parts that size themselves to it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


def available_cores() -> int:
    """The cores this process may run on (its affinity: what a container or `taskset` grants
    it), else the machine's."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextmanager
def subnormals_flushed(device) -> Iterator[None]:
    """On the CPU, flush subnormal floats to zero while the block runs (the training loops
    run in one), then put the calling thread's mode back as it was.

    Gradients that vanish through hundreds of LSTM steps become subnormal floats, and CPU
    arithmetic on subnormals is many times slower: flushing them to zero made a training step
    here about 5x faster, with no measurable effect on accuracy. torch cannot read the mode
    back (``set_flush_denormal`` returns whether the CPU supports it), so it is probed: a
    subnormal doubled stays non-zero only while subnormals are kept. Left on, the flag broke
    whatever ran next in the process and needs IEEE floats (hypothesis refuses to draw floats
    with it set).
    """
    if device.type != "cpu":
        yield
        return
    import torch  # here: the serving side reads this module's core count without torch

    def flushing() -> bool:
        return float(torch.tensor([2.0**-1070], dtype=torch.float64) * 2) == 0.0

    was_flushing = flushing()
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(was_flushing)
