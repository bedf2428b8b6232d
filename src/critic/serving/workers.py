"""What the worker processes of one endpoint share, through its runtime folder.

``critic serve --workers N`` runs N processes behind one port, and the kernel hands each
request to whichever accepts it first; two things must still look like one endpoint's.

**The traffic weights** (:class:`SharedWeights`): a weight change sent to one worker (POST
/admin/weights) must reach all. The weights live in one small JSON file: the worker that
changes them writes the file (atomically, under a lock), and every worker compares the file's
stamp before it routes a request -- one stat() call, a microsecond or two -- and reloads it
when it changed.

**The figures each worker keeps** (:class:`WorkerStats`). Counters that Prometheus can add up
already do so (its multiprocess files); what it cannot add -- a shadow's latest disagreements,
the windows its percentiles come from, the capture's counts beside them -- each worker writes
to a JSON file of its own, about once a second and only when it changed, written atomically.
The worker that answers the page writes its own at that moment and reads the others', so its
own figures are exact and the others' at most a second old. A worker that died and was
restarted by the supervisor leaves its file behind: what it counted was counted, so it stays
in the totals.

**The supervisor's account** (:func:`describe_workers`): which workers serve, since when, and
how many died -- written by the supervisor (critic.apps.supervisor), which alone sees a
worker end, and read by any worker for /variants and /metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import orjson

from critic.fileio import write_bytes_atomic

WEIGHTS_FILE = "weights.json"


class SharedWeights:
    def __init__(self, folder: Path):
        self.path = Path(folder) / WEIGHTS_FILE
        self._lock_path = Path(folder) / (WEIGHTS_FILE + ".lock")
        self._stamp: tuple[int, int] | None = None

    @contextmanager
    def _locked(self):
        with open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def save(self, weights: dict[str, float]) -> None:
        """Publish the weights to every worker (write a temporary file, then rename it)."""
        with self._locked():
            self._write(weights)

    def _write(self, data: dict) -> None:
        """Under the lock: the file replaced whole, and this worker's stamp taken."""
        temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(data), encoding="utf-8")
        os.replace(temporary, self.path)
        self._stamp = self._read_stamp()

    def _read_stamp(self) -> tuple[int, int] | None:
        try:
            status = os.stat(self.path)
        except FileNotFoundError:
            return None
        return status.st_mtime_ns, status.st_ino

    def changed(self) -> dict[str, float] | None:
        """The weights another worker published since this one last looked, if any."""
        stamp = self._read_stamp()
        if stamp is None or stamp == self._stamp:
            return None
        with self._locked():
            self._stamp = self._read_stamp()
            return json.loads(self.path.read_text(encoding="utf-8"))


PROMOTED_FILE = "promoted.json"


class SharedPromotions(SharedWeights):
    """Shadows promoted to live variants while the endpoint runs, ``{name: {"bundle": path,
    "weight": weight}}``: the worker that takes the promotion writes it, each other worker
    sees the file change at its next look (as the weights) and loads the variant itself, and
    a worker the supervisor restarts loads them at start."""

    def __init__(self, folder: Path):
        super().__init__(folder)
        self.path = Path(folder) / PROMOTED_FILE
        self._lock_path = Path(folder) / (PROMOTED_FILE + ".lock")

    def add(self, name: str, bundle: Path, weight: float) -> None:
        """Publish one more promotion beside those already in the file."""
        with self._locked():
            try:
                current = json.loads(self.path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                current = {}
            self._write({**current, name: {"bundle": str(bundle), "weight": weight}})


FOLDER = "worker-stats"


class WorkerStats:
    def __init__(self, runtime_dir: Path, snapshot: Callable[[], dict], period_s: float = 1.0):
        self.folder = Path(runtime_dir) / FOLDER
        self.folder.mkdir(exist_ok=True)
        self.path = self.folder / f"{os.getpid()}.json"
        self._snapshot = snapshot
        self._period_s = period_s
        self._written: bytes | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        """Publish every ``period_s`` from the running event loop (where the figures change,
        so a snapshot never sees one half-updated); the file is written in a thread."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._period_s)
            data = orjson.dumps(self._snapshot())
            if data != self._written:
                await asyncio.to_thread(self._write, data)

    def _write(self, data: bytes) -> None:
        # A temporary name of its own per write: the publisher and a page's gather may write
        # at the same moment, from two threads.
        write_bytes_atomic(self.path, data)
        self._written = data

    def gather(self, own: dict) -> list[dict]:
        """Every worker's snapshot, this one's being ``own`` (taken now, on the loop). Blocking
        file work: call it in a thread."""
        self._write(orjson.dumps(own))
        snapshots = [own]
        for path in sorted(self.folder.glob("*.json")):
            if path == self.path:
                continue
            # A file renamed into place is whole; one that vanished or cannot be read is a
            # worker's figures missing from this look, not an error for the page.
            with contextlib.suppress(OSError, orjson.JSONDecodeError):
                snapshots.append(orjson.loads(path.read_bytes()))
        return snapshots


SUPERVISION_FILE = "supervision.json"
"""The supervisor's account of its workers, written by critic.apps.supervisor: which
processes serve now and since when, how many were restarted, how the latest ones ended."""


def publish_supervision(runtime_dir: Path, record: dict) -> None:
    write_bytes_atomic(Path(runtime_dir) / SUPERVISION_FILE, orjson.dumps(record))


def read_supervision(runtime_dir: Path) -> dict | None:
    """The supervisor's latest record; None before its first (or without a supervisor)."""
    try:
        return orjson.loads((Path(runtime_dir) / SUPERVISION_FILE).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None


def describe_workers(runtime_dir: Path | None, started: float) -> dict:
    """The endpoint's worker processes for /variants and /metrics: the supervisor's record
    with several, or this lone process (started at ``started``, never restarted) without.

    ``processes``: [{pid, started_at}] (Unix seconds); ``restarts``: workers that died and
    were started again since the endpoint started; ``deaths``: the latest few, newest last
    ({pid, ended, ran_s, at}); ``crash_loop``: whether they keep dying."""
    lone = {
        "processes": [{"pid": os.getpid(), "started_at": round(started, 3)}],
        "restarts": 0,
        "deaths": [],
        "crash_loop": False,
    }
    if runtime_dir is None:
        return lone
    return read_supervision(runtime_dir) or {**lone, "processes": []}
