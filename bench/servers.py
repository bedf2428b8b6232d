"""Starting and stopping servers for the benchmarks: a free loopback port, a process, /ping."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_ping(port: int, process: subprocess.Popen, seconds: float = 300) -> None:
    """Until GET /ping answers 200; a process that exits, or the time running out, ends it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"a server exited at start-up: {process.args}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"no /ping answer on port {port} within {seconds:g} s")


def start(command: list[str], port: int, environment: dict[str, str] | None = None):
    """Run ``command`` (a server on ``port``) and wait until it answers /ping."""
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, **(environment or {})},
    )
    wait_for_ping(port, process)
    return process


def critic_command(bundle: Path, port: int) -> list[str]:
    return [sys.executable, "-m", "critic.cli", "serve", str(bundle), "--port", str(port),
            "--feedback-db", "off"]  # fmt: skip


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
