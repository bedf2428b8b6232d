"""Facts about the machine a process runs on, for the parts that size themselves to it."""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from critic.errors import CriticError


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


# --- threads on a shared machine ---------------------------------------------------------------

THREADS_VARIABLE = "CRITIC_THREADS"
CHECK_EVERY_S = 2.0  # how often a run looks again at what the other processes use
SAMPLE_S = 0.1  # the first look, before the run starts: 20 clock ticks over two cores


class CoreLoad:
    """How much of the cores this process may use the *other* processes use.

    /proc/stat counts every core's busy and idle time; this process's own CPU time (every
    thread, spin-waiting OpenMP workers included) is taken out, so what is left is what the
    others took. None where /proc/stat cannot be read (not Linux)."""

    def __init__(self) -> None:
        try:
            self.cores = sorted(os.sched_getaffinity(0))
        except AttributeError:
            self.cores = []
        self._ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._last = self._read()

    def _read(self) -> tuple[float, float, float] | None:
        """(busy seconds over the cores, all seconds over the cores, this process's CPU s)."""
        try:
            with open("/proc/stat", encoding="ascii") as stat:
                lines = stat.read().splitlines()
        except OSError:
            return None
        wanted = {f"cpu{core}" for core in self.cores}
        busy = total = 0
        for line in lines:
            name, _, rest = line.partition(" ")
            if name not in wanted:
                continue
            # user nice system idle iowait irq softirq steal (guest time is inside user)
            values = [int(value) for value in rest.split()[:8]]
            idle = values[3] + values[4]
            total += sum(values)
            busy += sum(values) - idle
        if not total:
            return None
        times = os.times()
        return busy / self._ticks, total / self._ticks, times.user + times.system

    def others(self) -> float | None:
        """Cores' worth of work the other processes did since the last call."""
        now = self._read()
        last, self._last = self._last, now
        if now is None or last is None:
            return None
        wall = (now[1] - last[1]) / max(len(self.cores), 1)
        if wall <= 0:
            return None
        return max(0.0, ((now[0] - last[0]) - (now[2] - last[2])) / wall)


def free_share(cores: int, others: float) -> int:
    """Threads for the cores the others leave: what is free, rounded half down, at least 1."""
    return max(1, min(cores, math.ceil(cores - others - 0.5)))


class ThreadGovernor:
    """torch's intra-op threads, sized to the cores the other processes leave free, at the
    start of a run and again every ``every_s`` while it runs.

    OpenMP workers wait for each other by spinning. On cores another process also wants, a
    spinning worker burns the time slice the worker it waits for needs, and a training went 7
    times slower beside a second one (issue 30); with one thread per core left free, no worker
    waits on a core that is taken. On an idle machine nothing changes: a thread a core.

    ``forced`` (``--threads``), else ``CRITIC_THREADS`` or ``OMP_NUM_THREADS``, fixes the
    count and nothing adapts: the way to rerun with bit-identical results, since a count that
    changes changes the order of floating-point sums. Threads are shed at the first look that
    finds their cores taken, and added back when two looks in a row find them free."""

    def __init__(
        self,
        forced: int | None = None,
        log: Callable[[str], None] = print,
        what: str = "train",
        every_s: float = CHECK_EVERY_S,
        adapt: bool = True,
        say_at_first_batch: bool = False,
    ):
        if forced is not None and (not isinstance(forced, int) or forced < 1):
            raise CriticError(f"threads must be a whole number of at least 1, got {forced!r}")
        self.cores = available_cores()
        self.what = what
        self.every_s = every_s
        self.adapt = adapt
        self.log = log
        # A command that stops on a mistake in its input should print only the mistake.
        self._say_later = say_at_first_batch
        self._unsaid: str | None = None
        self.forced, self.source = forced, "--threads"
        for variable in (THREADS_VARIABLE, "OMP_NUM_THREADS"):
            if self.forced is None and os.environ.get(variable, "").strip():
                self.forced, self.source = _threads_from(variable), variable
        self.threads = 0
        self._load: CoreLoad | None = None
        self._next = 0.0
        self._proposed: int | None = None
        self._thread = threading.get_ident()

    def start(self) -> int:
        """Choose and set the count for the run's start; the count. This governor is the one
        :func:`keep_pace` consults from now on (a fixed one there does nothing)."""
        import torch

        global _paced
        _paced, self._thread = self, threading.get_ident()

        if self.forced is not None:
            self.threads = self.forced
            torch.set_num_threads(self.threads)
            self._say(f"{self.what}: {self.threads} thread(s), as {self.source} says")
            return self.threads
        load = CoreLoad()
        time.sleep(SAMPLE_S)
        others = load.others()
        self.threads = self.cores if others is None else free_share(self.cores, others)
        torch.set_num_threads(self.threads)
        seen = "" if others is None else f"; other processes use {others:.1f} of them"
        how = (
            f"looked at again every {self.every_s:g} s; --threads N fixes it"
            if self.adapt
            else "kept for the whole run"
        )
        self._say(f"{self.what}: {self.threads} thread(s) on {self.cores} core(s){seen} ({how})")
        if self.adapt:
            self._load = load
            self._next = time.monotonic() + self.every_s
        return self.threads

    def _say(self, line: str) -> None:
        if self._say_later:
            self._unsaid = line
        else:
            self.log(line)

    def stop(self) -> None:
        """The run is over: :func:`keep_pace` no longer consults this governor (the count it
        set stays)."""
        global _paced
        if _paced is self:
            _paced = None

    def check(self) -> None:
        """Cheap unless it is time to look again; then resize the threads if the free cores
        changed (two looks in a row agreeing)."""
        if self._unsaid is not None:
            line, self._unsaid = self._unsaid, None
            self.log(line)
        # torch's count is the setting thread's own (OpenMP keeps one per thread): from another
        # thread, set_num_threads would resize that thread's pool, not the run's.
        if self._load is None or time.monotonic() < self._next:
            return
        if threading.get_ident() != self._thread:
            return
        self._next = time.monotonic() + self.every_s
        others = self._load.others()
        if others is None:
            return
        wanted = free_share(self.cores, others)
        if wanted == self.threads:
            self._proposed = None
            return
        # Fewer threads at once (a spinning thread on a taken core costs the most); more only
        # when the next look agrees, so that a moment's quiet elsewhere does not make it hop.
        if wanted > self.threads and self._proposed != wanted:
            self._proposed = wanted
            return
        import torch

        before, self.threads, self._proposed = self.threads, wanted, None
        torch.set_num_threads(wanted)
        self.log(
            f"{self.what}: {wanted} thread(s) from now, {before} before: other processes use "
            f"{others:.1f} of the {self.cores} core(s)"
        )


_paced: ThreadGovernor | None = None  # the governor a command started last, if it adapts


def keep_pace() -> None:
    """Between two batches of torch work: the command's ThreadGovernor looks again at the free
    cores when it is time, so a long ``critic evaluate`` or ``transform`` sheds threads when
    another process starts and takes them back when it ends, as ``critic train`` does. A
    clock read otherwise; nothing where no governor adapts (the endpoint sizes its threads
    once, by its own settings) or from a thread other than the one that started it."""
    if _paced is not None:
        _paced.check()


def _threads_from(variable: str) -> int:
    text = os.environ[variable].strip()
    try:
        value = int(text)
    except ValueError:
        raise CriticError(f"{variable} must be a whole number of threads, got {text!r}") from None
    if value < 1:
        raise CriticError(f"{variable} must be at least 1, got {value}")
    return value
