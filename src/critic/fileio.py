"""Files: atomic writes, checksums, and which files of a package folder travel in a copy.

An atomic write goes beside the target under a temporary name, then is renamed: a reader --
or a later run -- never sees a half-written file, either the old one or the new.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(temporary_path)`` and rename the result onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        write(temporary)
        # mkstemp creates the file as 0600; give it the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise


def write_text_atomic(path: Path, text: str) -> None:
    write_atomic(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    write_atomic(path, lambda temporary: temporary.write_bytes(data))


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file's bytes, as hex, read in 1 MiB blocks (bundles hold large weights)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package_files(package: Path) -> list[Path]:
    """The files of a Python package folder that a copy of it needs, sorted, relative to it.

    Everything but byte-code caches and hidden files (editor swap files, ``.DS_Store``): a
    static asset or data file added to the package travels without a list to update.
    """
    package = Path(package)
    kept = []
    for file in sorted(package.rglob("*")):
        relative = file.relative_to(package)
        if (
            file.is_file()
            and "__pycache__" not in relative.parts
            and file.suffix not in (".pyc", ".pyo")
            and not any(part.startswith(".") for part in relative.parts)
        ):
            kept.append(relative)
    return kept
