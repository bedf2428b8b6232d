"""The ``critic`` command as a process, started as a user's shell would start it.

run_cli runs a command to its end and hands back what it wrote; start_cli starts one that a
test then signals, waits for or stops (a training run to interrupt; servers.py builds its
servers on it).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path

CLI = [sys.executable, "-m", "critic.cli"]


def environment(changes: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """This process's environment (as it is now: monkeypatch's changes count) with
    ``changes``; a value of None removes the variable."""
    env = dict(os.environ)
    for name, value in (changes or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = str(value)
    return env


def run_cli(
    *args: object,
    env: Mapping[str, str | None] | None = None,
    check: bool = False,
    timeout: float = 300,
    **options,
) -> subprocess.CompletedProcess:
    """``critic ARGS`` run to its end, text in and out, both captured. ``env``: changes to the
    environment (see environment). ``check``: a failed exit raises, showing what it wrote.
    Other ``options`` (input, cwd) go to subprocess.run."""
    completed = subprocess.run(
        [*CLI, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment(env),
        **options,
    )
    if check and completed.returncode != 0:
        raise AssertionError(f"exit {completed.returncode}\n{completed.stdout}\n{completed.stderr}")
    return completed


# A background job of a non-interactive shell (`make test &` in a script) starts with SIGINT
# and SIGQUIT ignored, and so does everything it starts: a Python started with SIGINT ignored
# keeps it ignored (it installs its KeyboardInterrupt handler only over the default), so a
# test's SIGINT would never reach critic. subprocess's restore_signals puts back only SIGPIPE
# and SIGXFSZ. SIGTERM too, in case whatever runs the tests ignores it: the tests stop their
# servers with it.
DEFAULT_SIGNALS = (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM)


def default_signals() -> None:
    """In the child, before it runs the command: the signals above back to their defaults."""
    for number in DEFAULT_SIGNALS:
        signal.signal(number, signal.SIG_DFL)


class Process:
    """A command started in the background. What it writes goes to files, read at any time
    with stdout(), stderr() and log(); never to a pipe nobody reads, which, once full, blocks
    the process writing to it."""

    def __init__(
        self,
        command: list[str],
        env: Mapping[str, str | None] | None = None,
        cwd: Path | str | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ):
        self.command = command
        folder = Path(tempfile.mkdtemp(prefix="critic-test-process-"))
        weakref.finalize(self, shutil.rmtree, folder, ignore_errors=True)
        self._stdout = folder / "stdout"
        self._stderr = folder / "stderr"

        def prepare() -> None:
            default_signals()
            if preexec_fn is not None:
                preexec_fn()

        # Unbuffered, so that what was printed is in the file by the time anyone reads it.
        changes = {"PYTHONUNBUFFERED": "1", **(env or {})}
        with self._stdout.open("wb") as stdout, self._stderr.open("wb") as stderr:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                env=environment(changes),
                cwd=cwd,
                preexec_fn=prepare,
            )

    def stdout(self) -> str:
        return self._stdout.read_text(encoding="utf-8", errors="replace")

    def stderr(self) -> str:
        return self._stderr.read_text(encoding="utf-8", errors="replace")

    def log(self, last: int | None = None) -> str:
        """Both outputs so far, each named (the last ``last`` characters of each if given)."""
        parts = []
        for name, text in (("stderr", self.stderr()), ("stdout", self.stdout())):
            if last is not None and len(text) > last:
                text = "..." + text[-last:]
            parts.append(f"--- {name} ---\n{text.rstrip() or '(nothing)'}")
        return "\n".join(parts)

    def describe(self) -> str:
        shown = (
            ["critic", *self.command[len(CLI) :]]
            if self.command[: len(CLI)] == CLI
            else self.command
        )
        code = self.process.poll()
        state = "running" if code is None else f"exit code {code}"
        return f"`{' '.join(map(str, shown))}` (pid {self.process.pid}, {state})"

    def wait(self, timeout: float) -> int:
        """The exit code, once the process has ended (subprocess.TimeoutExpired after
        ``timeout`` seconds)."""
        return self.process.wait(timeout=timeout)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, and SIGKILL if it has not ended ``timeout`` seconds later; the exit code
        (at once if it had ended already)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        return self.process.returncode


def start_cli(
    *args: object,
    env: Mapping[str, str | None] | None = None,
    cwd: Path | str | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> Process:
    """``critic ARGS`` started in the background (see Process). ``env``: changes to the
    environment; ``preexec_fn``: run in the child before the command, after the signals
    are set back to their defaults."""
    return Process([*CLI, *map(str, args)], env=env, cwd=cwd, preexec_fn=preexec_fn)
