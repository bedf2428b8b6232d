"""Traffic weights shared by the worker processes of one endpoint.

`critic serve --workers N` runs N processes behind one port; a weight change sent to one of
them (POST /admin/weights) must reach all. The weights live in one small JSON file in the
endpoint's runtime folder: the worker that changes them writes the file (atomically, under a
lock), and every worker compares the file's stamp before it routes a request -- one stat()
call, a microsecond or two -- and reloads it when it changed.
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path

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
            temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(json.dumps(weights), encoding="utf-8")
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
