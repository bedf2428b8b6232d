"""Atomic writes, checksums and the files of a package that a copy of it carries."""

import hashlib
import os

import pytest

from critic.fileio import package_files, sha256_file, write_atomic, write_text_atomic


def test_a_files_sha256_is_that_of_its_bytes_across_read_blocks(tmp_path):
    # Over 1 MiB: the digest spans more than one of the blocks it is read in.
    data = os.urandom((1 << 20) + 12345)
    (tmp_path / "big").write_bytes(data)
    (tmp_path / "empty").write_bytes(b"")
    assert sha256_file(tmp_path / "big") == hashlib.sha256(data).hexdigest()
    assert sha256_file(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.json"
    write_text_atomic(target, "old")

    def half_then_fail(temporary):
        temporary.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomic(target, half_then_fail)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_an_atomic_write_gets_the_permissions_of_a_plain_open(tmp_path):
    write_text_atomic(tmp_path / "new" / "file.txt", "text")
    (tmp_path / "plain.txt").write_text("text")
    written = (tmp_path / "new" / "file.txt").stat().st_mode & 0o777
    assert written == (tmp_path / "plain.txt").stat().st_mode & 0o777


def test_a_package_copy_carries_every_file_but_caches_and_hidden_ones(tmp_path):
    package = tmp_path / "pkg"
    for name in (
        "__init__.py", "py.typed", "web/static/app.js", "web/static/logo.svg",
        "__pycache__/x.cpython-312.pyc", "web/__pycache__/y.pyc", "stale.pyc",
        ".hidden", ".git/config", "web/.index.html.swp",
    ):  # fmt: skip
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text("x")
    assert [p.as_posix() for p in package_files(package)] == [
        "__init__.py",
        "py.typed",
        "web/static/app.js",
        "web/static/logo.svg",
    ]
