"""The supervisor of ``critic serve --workers N``: uvicorn's, made to say what happens.

uvicorn's supervisor (``uvicorn.supervisors.Multiprocess``) checks its workers every half
second and starts a new one in place of any that died -- and says so only at INFO level, in
one line without how the worker ended, which critic's warning-level log hides. A worker
killed by the kernel's OOM killer or a crash in a native library then vanishes without a
trace. This subclass keeps uvicorn's process handling (its health checks, its signals, its
graceful stop) and adds what an operator needs:

- one warning line per death: the worker's pid, how it ended (a signal, an exit status, or
  no answer to the health check) and how long it had run, and the pid of its replacement;
- a record in the runtime folder (critic.serving.workers) from which every worker shows the
  serving processes and their start times on /variants, and ``critic_worker_restarts_total``
  on /metrics;
- when workers keep dying (a model that crashes the process on some input, memory that runs
  out at each start), one line saying so instead of a line per death, restarts that wait
  longer each time (up to half a minute) so that reloading the models does not starve the
  workers still answering, and one line with the count once they stay up again.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess, Process

from critic.serving.workers import publish_supervision

__all__ = ["CrashLoop", "WatchedWorkers", "how_it_ended"]

logger = logging.getLogger("uvicorn.error")

RECENT_DEATHS = 10  # kept in the record for /variants


def how_it_ended(exitcode: int | None, answered: bool) -> str:
    """A worker's end in words, from its exit code (negative: the signal that ended it)."""
    if not answered:
        return "stopped answering the supervisor's health check and was killed"
    if exitcode is None:
        return "ended"
    if exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with status {exitcode}"


@dataclass
class CrashLoop:
    """When workers keep dying: ``deaths`` deaths within ``window_s`` seconds start a crash
    loop, which ends once ``window_s`` pass without one. During a loop each restart waits
    twice as long as the one before (1 s, 2 s, ... up to ``max_delay_s``).

    Pure bookkeeping on the times it is given, so that its rules are tested by themselves."""

    deaths: int = 3
    window_s: float = 60.0
    max_delay_s: float = 30.0
    looping: bool = False
    restarts_in_loop: int = 0
    _times: deque = field(default_factory=deque)

    @property
    def recent(self) -> int:
        """Deaths within the window, as of the latest."""
        return len(self._times)

    def died(self, now: float) -> tuple[bool, float]:
        """A worker died at ``now``: whether this death starts a crash loop, and how long to
        wait before starting its replacement."""
        self._times.append(now)
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()
        started = not self.looping and len(self._times) >= self.deaths
        if started:
            self.looping = True
            self.restarts_in_loop = 0
        if not self.looping:
            return False, 0.0
        self.restarts_in_loop += 1
        return started, min(self.max_delay_s, 2.0 ** (self.restarts_in_loop - 1))

    def calmed(self, now: float) -> int | None:
        """The restarts of a crash loop that ended by ``now`` (no death for ``window_s``);
        None when there is no loop or it goes on."""
        if not self.looping or (self._times and now - self._times[-1] <= self.window_s):
            return None
        self.looping = False
        return self.restarts_in_loop


class WatchedWorkers(Multiprocess):
    """uvicorn's supervisor, reporting deaths and restarts (see the module's text)."""

    def __init__(self, config, sockets, runtime_dir: Path, crash_loop: CrashLoop | None = None):
        super().__init__(config, sockets)
        self.runtime_dir = Path(runtime_dir)
        self.crash_loop = crash_loop or CrashLoop()
        self.restarts = 0
        self.deaths: deque[dict] = deque(maxlen=RECENT_DEATHS)
        self._started: dict[int, tuple[float, float]] = {}  # pid -> (wall, monotonic) start
        self._pending: dict[int, float] = {}  # slot -> when its replacement may start
        self._published: tuple | None = None

    def init_processes(self) -> None:
        super().init_processes()
        self._publish()

    def keep_subprocess_alive(self) -> None:
        """uvicorn's check of each worker (``Multiprocess.keep_subprocess_alive``), with the
        death reported and, during a crash loop, the restart delayed."""
        if self.should_exit.is_set():
            return
        now = time.monotonic()
        # SIGTTOU (one worker fewer) may have taken the slot of a pending restart.
        self._pending = {s: t for s, t in self._pending.items() if s < len(self.processes)}
        for slot, process in enumerate(self.processes):
            if slot in self._pending:
                if now >= self._pending[slot]:
                    del self._pending[slot]
                    self._replace(slot)
                continue
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            running = process.process.is_alive()  # alive but silent: hung, uvicorn kills it
            process.kill()
            process.join()
            if process.exitcode == STARTUP_FAILURE:
                # Failed before it served (uvicorn's own rule and exit status): the app or the
                # socket is broken and would fail the same way each time.
                logger.error(f"Worker [{process.pid}] failed to start; stopping the endpoint.")
                self.should_exit.set()
                return
            if self.should_exit.is_set():
                return
            self._died(slot, process, answered=not running)
        calmed = self.crash_loop.calmed(now)
        if calmed is not None:
            logger.warning(
                f"Workers have stayed up for {self.crash_loop.window_s:.0f} s: the crash loop "
                f"is over after {calmed} restarts ({self.restarts} since the endpoint started)."
            )
        self._publish()

    def _died(self, slot: int, process: Process, answered: bool) -> None:
        started = self._started.pop(process.pid, None)
        ran_s = time.monotonic() - started[1] if started else None
        ended = how_it_ended(process.exitcode, answered)
        self.deaths.append(
            {
                "pid": process.pid,
                "ended": ended,
                "exitcode": process.exitcode,
                "ran_s": None if ran_s is None else round(ran_s, 1),
                "at": round(time.time(), 3),
            }
        )
        loop_started, delay = self.crash_loop.died(time.monotonic())
        ran = "" if ran_s is None else f" after {ran_s:.1f} s"
        if loop_started:
            logger.warning(
                f"Workers keep dying: {self.crash_loop.recent} deaths within "
                f"{self.crash_loop.window_s:.0f} s, the latest worker [{process.pid}] {ended}"
                f"{ran}. The other workers answer on; each restart now waits longer (up to "
                f"{self.crash_loop.max_delay_s:.0f} s); further deaths are counted "
                "(critic_worker_restarts_total on /metrics, workers on /variants), not logged "
                "one by one."
            )
        if delay > 0:
            self._pending[slot] = time.monotonic() + delay
            return
        new = self._replace(slot)
        if not self.crash_loop.looping:
            logger.warning(
                f"Worker [{process.pid}] {ended}{ran}; worker [{new.pid}] starts in its "
                f"place (restart {self.restarts})."
            )

    def _replace(self, slot: int) -> Process:
        process = Process(self.config, self.sockets)
        process.start()
        self.processes[slot] = process
        self.restarts += 1
        self._publish()
        return process

    def _publish(self) -> None:
        """Write the record when something in it changed: a worker came or went (any way:
        a restart here, SIGHUP's restart_all, SIGTTIN/SIGTTOU), or a death."""
        serving = [p for slot, p in enumerate(self.processes) if slot not in self._pending]
        for process in serving:
            if process.pid is not None and process.pid not in self._started:
                self._started[process.pid] = (time.time(), time.monotonic())
        pids = tuple(p.pid for p in serving)
        key = (pids, self.restarts, self.crash_loop.looping)
        if key == self._published:
            return
        record = {
            "supervisor": os.getpid(),
            "processes": [
                {"pid": pid, "started_at": round(self._started[pid][0], 3)}
                for pid in pids
                if pid in self._started
            ],
            "restarts": self.restarts,
            "deaths": list(self.deaths),
            "crash_loop": self.crash_loop.looping,
        }
        publish_supervision(self.runtime_dir, record)
        self._published = key
