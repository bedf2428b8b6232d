"""Files: atomic writes, checksums, and which files of a package folder travel in a copy.

An atomic write goes beside the target under a temporary name, then is renamed: a reader --
or a later run -- never sees a half-written file, either the old one or the new.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from critic.errors import CriticError


def default_cache_dir() -> Path:
    """Where critic keeps what it can make again: prepared data, word vectors, measured
    backends, fetched models and packages. ``CRITIC_CACHE`` moves it."""
    if "CRITIC_CACHE" in os.environ:
        return Path(os.environ["CRITIC_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "critic"


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


def replace_folder_atomic(path: Path, fill: Callable[[Path], None]) -> None:
    """Call ``fill(temporary_folder)`` beside ``path`` and rename the folder onto it (an old
    one removed first): a reader finds the whole of one entry or none."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        fill(temporary)
        if path.exists():
            shutil.rmtree(path)
        os.replace(temporary, path)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


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


def unsafe_member(member: tarfile.TarInfo) -> str | None:
    """Why a member of an archive critic reads must be refused, if it must: a name that is
    absolute or climbs out with "..", or a link or device, could make whoever unpacks the
    archive (critic, or SageMaker on an instance) write or read outside its folder."""
    name = member.name
    if name.startswith(("/", "\\")) or PurePosixPath(name).is_absolute() or ":" in name[:3]:
        return "has an absolute name"
    if ".." in PurePosixPath(name.replace("\\", "/")).parts:
        return "climbs out of its folder with '..'"
    if member.issym() or member.islnk():
        return f"is a link (to {member.linkname!r})"
    if not (member.isfile() or member.isdir()):
        return "is not a regular file or folder"
    return None


def check_members(archive: tarfile.TarFile, path: Path) -> None:
    """Refuse ``archive`` (with a CriticError naming the member) if any member is unsafe."""
    for member in archive.getmembers():
        reason = unsafe_member(member)
        if reason is not None:
            raise CriticError(f"the archive {path} is refused: its member {member.name!r} {reason}")


MIN_FREE_BYTES = 256 * 1024 * 1024
"""What a training run needs free beside its output: the largest bundles critic makes (the
n-gram model, the 30,000-word recurrent models with their checkpoint and its previous copy)
stay under a third of this."""


def check_output_folder(out: Path, min_free: int = MIN_FREE_BYTES) -> None:
    """Fail now, with one line, if ``out`` cannot take a training run's files: not a folder,
    not writable, or on a disk that is (nearly) full -- not after an hour of training."""
    out = Path(out).absolute()
    # The folder itself is made later, by the run: probe the nearest folder that exists.
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise CriticError(f"cannot write the bundle to {out}: {existing} is not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".critic-probe-"):
            pass
    except OSError as error:
        raise CriticError(f"cannot write the bundle to {out}: {error.strerror or error}") from None
    free = shutil.disk_usage(existing).free
    if free < min_free:
        raise CriticError(
            f"cannot write the bundle to {out}: {free // 2**20} MB free on its disk; a "
            f"training run needs about {min_free // 2**20} MB for its checkpoints and bundle"
        )
