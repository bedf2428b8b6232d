"""A real ``critic serve`` (or ``critic web``) on a loopback port: one way to start it, wait
until it answers, show what it wrote when a test fails, and stop it.

    with running_server(["serve", bundle, "--feedback-db", "off"]) as server:
        urllib.request.urlopen(f"{server.url}/ping")

Tests that do something special to the process (SIGTERM mid-load, kill -9) use start_server
and the handle's process, and stop() it in a finally. two_worker_server starts one with two
worker processes, and from_every_worker asks each of them. running_mlflow_server starts the
one other server the tests need, MLflow's tracking server. A server that must fail to start is
run to its end with run_cli (support.cli).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from support.cli import CLI, Process

# The servers started and not yet stopped: tests/conftest.py shows their output under a test
# that fails while they run (a module's server, say, started by a fixture).
_RUNNING: list[Server] = []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, seconds=60, every=0.05):
    """The first true value ``condition()`` returns, polled until ``seconds`` have passed."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("the condition did not hold in time")


class Server(Process):
    """A server process (see support.cli.Process) and the loopback port it listens on."""

    def __init__(self, command: list[str], port: int, **options):
        super().__init__(command, **options)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def stop(self, timeout: float = 30) -> int:
        if self in _RUNNING:
            _RUNNING.remove(self)
        return super().stop(timeout)


def running() -> list[Server]:
    """The servers started and not yet stopped."""
    return list(_RUNNING)


def wait_for_ping(server: Server, seconds: float = 60, path: str = "/ping") -> None:
    """Until ``GET path`` (/ping) is 200; an AssertionError, with what the server wrote, at
    once if it exits, or after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"the server exited: {server.describe()}\n{server.log()}")
        try:
            with urllib.request.urlopen(f"{server.url}{path}", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:  # refused, 503 while it loads (an HTTPError), or slow to answer
            time.sleep(0.1)
    raise AssertionError(
        f"the server did not answer /ping in {seconds:g} s: {server.describe()}\n{server.log()}"
    )


def start_server(
    args: list[object],
    *,
    env: Mapping[str, str | None] | None = None,
    port: int | None = None,
    pass_port: bool = True,
    seconds: float = 60,
    preexec_fn: Callable[[], None] | None = None,
) -> Server:
    """``critic ARGS`` started and answering /ping on 127.0.0.1: on ``port``, else a free one,
    given as ``--port`` unless ``pass_port`` is false (a server told its port some other way).
    ``env``: changes to the environment (None removes a variable); ``preexec_fn``: run in the
    child first. The caller stops it (stop()); running_server does that itself."""
    port = port or free_port()
    command = [*CLI, *map(str, args), *(["--port", str(port)] if pass_port else [])]
    server = Server(command, port, env=env, preexec_fn=preexec_fn)
    _RUNNING.append(server)
    try:
        wait_for_ping(server, seconds)
    except BaseException:
        server.stop()
        raise
    return server


# Enough of a server's output to see why it failed, not a whole soak test's worth.
SHOWN_CHARACTERS = 20_000


def show_log(error: BaseException, server: Server) -> None:
    """Add what ``server`` wrote to ``error``, shown under its traceback."""
    note = f"the server's output: {server.describe()}\n{server.log(last=SHOWN_CHARACTERS)}"
    if hasattr(error, "add_note"):  # Python 3.11
        error.add_note(note)
    else:
        print(note, file=sys.stderr)  # pytest shows the captured stderr of a failed test


@contextmanager
def running_server(args: list[object], *, stop_timeout: float = 30, **options) -> Iterator[Server]:
    """start_server(ARGS, **options) for the length of the block, then stopped: SIGTERM, and
    SIGKILL ``stop_timeout`` seconds later. If the block raises, what the server wrote is
    added to the error."""
    server = start_server(args, **options)
    try:
        yield server
    except BaseException as error:  # pytest.fail's exception is no Exception
        server.stop(stop_timeout)
        show_log(error, server)
        raise
    finally:
        server.stop(stop_timeout)


# --- Several worker processes ------------------------------------------------------------

TWO_CORES = sorted(os.sched_getaffinity(0))[:2]
"""The cores a two-worker server is held to (one worker each, by the default count)."""


@contextmanager
def two_worker_server(
    args: list[object], *, env: Mapping[str, str | None] | None = None, seconds: float = 120
) -> Iterator[Server]:
    """``critic ARGS`` with the default worker count on a process given exactly two cores --
    two workers -- for the length of the block. (conftest sets CRITIC_WORKERS to 1 for every
    other server; it is taken away here.)"""
    server = start_server(
        args,
        env={**(env or {}), "CRITIC_WORKERS": None},
        preexec_fn=lambda: os.sched_setaffinity(0, TWO_CORES),
        seconds=seconds,
    )
    try:
        yield server
    finally:
        server.stop(timeout=60)


def from_every_worker(
    url: str, path: str = "/variants", workers: int = 2, seconds: float = 90
) -> dict[int, dict]:
    """``GET path`` (JSON with a "worker" pid, as /variants) as each worker answers it, by
    pid. Each new connection may land on either worker and the kernel favours an idle one,
    so several threads ask at once (one worker busy while another accepts) until every
    worker has answered -- or ``seconds`` pass: fewer entries then. A connection a killed
    worker held is asked again."""
    seen: dict[int, dict] = {}
    deadline = time.monotonic() + seconds

    def ask() -> None:
        while len(seen) < workers and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}{path}", timeout=30) as response:
                    answer = json.loads(response.read())
            except (OSError, ValueError):
                time.sleep(0.05)
                continue
            seen[answer["worker"]] = answer

    askers = [threading.Thread(target=ask) for _ in range(6)]
    for thread in askers:
        thread.start()
    for thread in askers:
        thread.join()
    return seen


# --- MLflow's tracking server ------------------------------------------------------------


@contextmanager
def running_mlflow_server(folder, seconds: float = 90) -> Iterator[Server]:
    """``mlflow server`` on a free loopback port for the length of the block: its runs and
    registry in a SQLite file in ``folder``, the artifacts clients upload through it in
    ``folder/artifacts``; answering ``GET /health`` before the block starts."""
    port = free_port()
    command = [
        os.path.join(os.path.dirname(sys.executable), "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{folder}/mlflow.db",
        "--artifacts-destination",
        f"{folder}/artifacts",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    server = Server(command, port)
    _RUNNING.append(server)
    try:
        wait_for_ping(server, seconds, path="/health")
        yield server
    except BaseException as error:
        server.stop()
        show_log(error, server)
        raise
    finally:
        server.stop()
