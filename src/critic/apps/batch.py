"""Batch prediction over files, the contract of SageMaker Batch Transform with ``SplitType=Line``.

Every input line is one record and gets exactly one output line, in the same order, in
``OUTPUT/<input name>.out``:

* ``text/plain``: each line is one review;
* ``application/jsonlines``: each line is a review string, an object with the review in
  ``text`` (or ``review``, or ``--text-column``), or ``{"instances": [...]}`` of several,
  answered with ``{"predictions": [...]}`` on that one line;
* ``text/csv``: the first line is the header, naming the columns; ``--text-column`` (default
  ``text``) holds the review. A quoted field may span lines: the record is answered once.

An answer is the endpoint's prediction object (the same JSON the endpoint writes for
``application/jsonlines``: :func:`critic.serving.codec.encode_predictions`). A record that
cannot be answered -- a blank line, a line that is not UTF-8 or not JSON, a review with no
words -- gets an error record on its own line, shaped like the endpoint's error body plus the
line number: ``{"line": 7, "status": 400, "message": "the review is empty"}``. Nothing is
dropped, so nothing after it shifts against its review.

With ``join_input`` the input travels with its answer, as ``DataProcessing.JoinSource=Input``
writes it: a JSON object gains a ``SageMakerOutput`` key; any other JSON value, or a text
line, becomes ``{"SageMakerInput": ..., "SageMakerOutput": ...}``; a CSV row gets the columns
``label, probability, score, rating, domain_score, typical, error`` appended (and its header
their names; the domain columns are empty for a bundle without a domain model).

The output file appears only when the whole input succeeded (SageMaker's rule): it is written
as ``.<name>.out.partial`` beside a small progress file, ``.<name>.out.progress.json``, which
every few seconds records -- after the partial output is on disk (fsync) -- how many input
lines and bytes are done and how long the output then was. A run killed at any moment and
started again with the same settings cuts the partial output back to that length, reads on
from that byte, and so neither loses nor repeats a line; the rename to ``.out`` comes last.

Memory stays bounded: records are read, predicted and written ``batch_size`` at a time.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from critic.config import setting
from critic.errors import CriticError
from critic.fileio import sha256_file, write_text_atomic
from critic.serving.codec import (
    CSV,
    JSON_LINES,
    REVIEW_KEYS,
    TEXT,
    ClientError,
    encode_predictions,
    media_type,
    parse_json,
)

if TYPE_CHECKING:  # the Predictor brings torch: imported when a transform runs, not with the CLI
    from critic.inference.predictor import Predictor

CONTENT_TYPES = (TEXT, JSON_LINES, CSV)
# How a file's name says what it holds, when --content-type does not.
SUFFIX_TYPES = {".csv": CSV, ".jsonl": JSON_LINES, ".jsonlines": JSON_LINES, ".ndjson": JSON_LINES}
OUTPUT_SUFFIX = ".out"
CSV_OUTPUT_COLUMNS = (
    "label", "probability", "score", "rating", "domain_score", "typical", "error"
)  # fmt: skip
PROGRESS_VERSION = 1


@dataclass(frozen=True)
class TransformSettings:
    """How ``critic transform`` reads, answers and writes; each field is a command-line option."""

    content_type: str | None = setting(
        None,
        "text/plain (one review a line), application/jsonlines or text/csv (default: from each "
        "file's suffix: .csv, .jsonl/.jsonlines/.ndjson, else text/plain).",
    )
    text_column: str | None = setting(
        None,
        "CSV column (or JSON lines key) holding the review (default: text; a JSON object's "
        "review key is read too).",
    )
    join_input: bool = setting(
        False,
        "Write each input record with its answer, as SageMaker's JoinSource=Input: a JSON "
        "object gains SageMakerOutput; a CSV row gets label, probability, score, rating, "
        "domain_score, typical, error.",
    )
    fail_on_error: bool = setting(
        False,
        "Stop at the first line that cannot be answered (naming it), exit non-zero and write "
        "no .out, instead of writing an error record on that line.",
    )
    batch_size: int = setting(256, "Records read, predicted and written at a time.")
    checkpoint_seconds: float = setting(
        2.0, "How often the progress file is brought up to date.", option=False
    )

    def __post_init__(self) -> None:
        if self.content_type:  # Text/CSV; charset=utf-8 is text/csv
            object.__setattr__(self, "content_type", media_type(self.content_type))
        if self.content_type is not None and self.content_type not in CONTENT_TYPES:
            raise CriticError(
                f"cannot read {self.content_type!r}; content types: {', '.join(CONTENT_TYPES)}"
            )
        if self.batch_size < 1:
            raise CriticError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.text_column is not None and not self.text_column.strip():
            raise CriticError("text_column must name a column")
        if self.checkpoint_seconds < 0:
            raise CriticError("checkpoint_seconds must not be negative")


@dataclass(frozen=True)
class Record:
    """One record of an input: its first line's number (1-based), its bytes without the line
    ending, and the input's byte offset just after it."""

    line: int
    data: bytes
    end: int
    lines: int = 1
    """Physical lines it spans (a quoted CSV field may hold line breaks)."""


def read_records(
    stream: IO[bytes], *, line: int = 1, offset: int = 0, csv_quoting: bool = False
) -> Iterator[Record]:
    """The records of a binary stream, one per line (``\\n`` or ``\\r\\n``); a last line
    without a line ending is a record too. With ``csv_quoting``, a line that leaves a quoted
    field open is joined with the next ones (RFC 4180: the quotes of a record pair up)."""
    pending: list[bytes] = []
    start = line
    for raw in stream:
        offset += len(raw)
        if csv_quoting and (pending or raw.count(b'"') % 2):
            pending.append(raw)
            if sum(part.count(b'"') for part in pending) % 2:
                line += 1
                continue
            raw, spanned = b"".join(pending), len(pending)
            pending = []
        else:
            spanned = 1
        yield Record(start, _strip_line_ending(raw), offset, spanned)
        line += 1
        start = line
    if pending:  # an unclosed quote at the end of the input: one last (malformed) record
        yield Record(start, _strip_line_ending(b"".join(pending)), offset, len(pending))


def _strip_line_ending(raw: bytes) -> bytes:
    if raw.endswith(b"\n"):
        raw = raw[:-1]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
    return raw


@dataclass
class _Item:
    """A record as read: its reviews, or why it cannot be answered; and what a join keeps."""

    record: Record
    reviews: list[str] = field(default_factory=list)
    many: bool = False
    """``{"instances": [...]}``: answered as ``{"predictions": [...]}``."""
    error: str | None = None
    joined: Any = None


class RecordReader:
    """Turns records of one content type into reviews (the codec's rules for each type)."""

    def __init__(self, content_type: str, text_column: str | None = None):
        self.content_type = content_type
        self.text_column = text_column
        self.column_index: int | None = None
        self.header: list[str] | None = None

    def read_header(self, record: Record) -> None:
        """A CSV file's first record: find the review's column, or fail naming the columns."""
        row = self._csv_row(_decode(record.data))
        column = self.text_column or "text"
        if column not in row:
            raise CriticError(
                f"no column {column!r} in the CSV header (columns: {', '.join(row) or 'none'}); "
                "name the review's column with --text-column"
            )
        self.header, self.column_index = row, row.index(column)

    def item(self, record: Record) -> _Item:
        item = _Item(record)
        try:
            text = _decode(record.data)
        except ClientError as error:
            item.error, item.joined = error.message, record.data.decode("utf-8", "replace")
            return item
        item.joined = text
        try:
            if self.content_type == TEXT:
                item.reviews = [text]
            elif self.content_type == JSON_LINES:
                self._json_reviews(text, item)
            else:
                self._csv_review(text, item)
        except ClientError as error:
            item.error = error.message
        return item

    def _json_reviews(self, text: str, item: _Item) -> None:
        if not text.strip():
            raise ClientError(400, "the line is empty")
        value = parse_json(text, "the line")
        item.joined = value
        if isinstance(value, dict) and "instances" in value:
            value = value["instances"]
            if not isinstance(value, list):
                raise ClientError(400, '"instances" must be a list of reviews')
            item.many = True
        elif isinstance(value, list):
            item.many = True
        if item.many:
            item.reviews = [self._json_review(v, f"instance {i}") for i, v in enumerate(value)]
            if not item.reviews:
                raise ClientError(400, '"instances" holds no reviews')
        else:
            item.reviews = [self._json_review(value, "the line")]

    def _json_review(self, value: object, where: str) -> str:
        if isinstance(value, dict):
            keys = (self.text_column,) if self.text_column else REVIEW_KEYS
            key = next((key for key in keys if key in value), None)
            if key is None:
                raise ClientError(400, f"{where}: an object needs a {keys[0]!r} field")
            value = value[key]
        if not isinstance(value, str):
            raise ClientError(
                400, f"{where}: a review must be a string, not {type(value).__name__}"
            )
        return value

    def _csv_review(self, text: str, item: _Item) -> None:
        row = self._csv_row(text)
        item.joined = row
        assert self.column_index is not None, "read_header first"
        if len(row) <= self.column_index:
            raise ClientError(
                400,
                f"the row has {len(row)} field(s); the review is field {self.column_index + 1} "
                f"({self.header[self.column_index]!r})",  # type: ignore[index]
            )
        item.reviews = [row[self.column_index]]

    @staticmethod
    def _csv_row(text: str) -> list[str]:
        try:
            rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
        except csv.Error as error:
            raise ClientError(400, f"the line is not valid CSV ({error})") from None
        return rows[0] if rows else []


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ClientError(400, f"the line is not valid UTF-8 (byte {error.start})") from None


def predict_all(predictor: Predictor, texts: list[str], explain: bool = False) -> list[dict | str]:
    """A prediction per text, or the reason (a str) a text cannot be answered.

    The whole list goes to the model in one call; only when that is refused (an empty review
    among them) is each text read on its own to find which, and the others predicted."""
    if not texts:
        return []
    try:
        return predictor.predict(texts, explain=explain)
    except CriticError:
        pass
    results: list[dict | str] = []
    readable = []
    for index, text in enumerate(texts):
        try:
            predictor.read(text)
        except CriticError as error:
            results.append(str(error))
        else:
            results.append("")
            readable.append(index)
    predictions = (
        predictor.predict([texts[i] for i in readable], explain=explain) if readable else []
    )
    for index, prediction in zip(readable, predictions, strict=True):
        results[index] = prediction
    return results


class ChunkWriter:
    """Answers records a chunk at a time: the output bytes, one line per record."""

    def __init__(
        self,
        predictor: Predictor,
        reader: RecordReader,
        join_input: bool = False,
        explain: bool = False,
    ):
        self.predictor = predictor
        self.reader = reader
        self.join_input = join_input
        self.explain = explain

    def header(self) -> bytes:
        """What the output starts with: the joined CSV header, or nothing."""
        if self.reader.content_type == CSV and self.join_input and self.reader.header is not None:
            return _csv_line([*self.reader.header, *CSV_OUTPUT_COLUMNS])
        return b""

    def answer(self, records: Sequence[Record]) -> tuple[bytes, list[tuple[int, str]]]:
        """The output lines of ``records`` and the (line, message) of each error among them."""
        items = [self.reader.item(record) for record in records]
        texts = [review for item in items if item.error is None for review in item.reviews]
        results = iter(predict_all(self.predictor, texts, self.explain))
        answers: list[dict] = []
        errors: list[tuple[int, str]] = []
        for item in items:
            if item.error is None:
                found = [next(results) for _ in item.reviews]
                wrong = next(((i, r) for i, r in enumerate(found) if isinstance(r, str)), None)
                if wrong is not None:
                    index, reason = wrong
                    item.error = f"instance {index}: {reason}" if item.many else reason
                else:
                    answers.append({"predictions": found} if item.many else found[0])
                    continue
            errors.append((item.record.line, item.error))
            answers.append({"line": item.record.line, "status": 400, "message": item.error})
        return self._encode(items, answers), errors

    def _encode(self, items: list[_Item], answers: list[dict]) -> bytes:
        if not self.join_input:
            return encode_predictions(answers, JSON_LINES)
        if self.reader.content_type == CSV:
            width = len(self.reader.header or ())
            return b"".join(
                _csv_line([*_row(item, width), *_csv_fields(answer)])
                for item, answer in zip(items, answers, strict=True)
            )
        joined = []
        for item, answer in zip(items, answers, strict=True):
            if isinstance(item.joined, dict):
                joined.append({**item.joined, "SageMakerOutput": answer})
            else:
                joined.append({"SageMakerInput": item.joined, "SageMakerOutput": answer})
        return encode_predictions(joined, JSON_LINES)


def _row(item: _Item, width: int) -> list[str]:
    """The input row of a joined CSV record, padded to the header's width so that the answer's
    columns line up under their names."""
    if isinstance(item.joined, list):
        row = item.joined
    else:
        row = [item.joined] if isinstance(item.joined, str) else []
    return row + [""] * (width - len(row))


def _csv_fields(answer: dict) -> list[str]:
    if "label" in answer:
        domain = answer.get("domain")
        return [
            answer["label"],
            repr(answer["probability"]),
            repr(answer["score"]),
            str(answer["rating"]),
            "" if domain is None else repr(domain["score"]),
            "" if domain is None else str(domain["typical"]).lower(),
            "",
        ]
    return ["", "", "", "", "", "", f"line {answer['line']}: {answer['message']}"]


def _csv_line(fields: list[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(fields)
    return buffer.getvalue().encode("utf-8")


def answer_stream(
    predictor: Predictor,
    stream: IO[bytes],
    content_type: str = TEXT,
    *,
    batch_size: int = 64,
    explain: bool = False,
) -> Iterator[bytes]:
    """The output lines of a stream (``critic predict < file``), a chunk of lines at a time."""
    reader = RecordReader(content_type)
    writer = ChunkWriter(predictor, reader, explain=explain)
    records = read_records(stream, csv_quoting=content_type == CSV)
    if content_type == CSV:
        first = next(records, None)
        if first is None:
            return
        reader.read_header(first)
    while chunk := list(itertools.islice(records, batch_size)):
        yield writer.answer(chunk)[0]


class TransformFailed(CriticError):
    """``fail_on_error``: a record could not be answered; names the file and the line."""


@dataclass(frozen=True)
class FileResult:
    """What :func:`transform_file` wrote."""

    input: str
    output: str
    content_type: str
    records: int
    errors: int
    resumed_at_line: int | None = None
    """The first line this run read, when it continued an interrupted one."""


@dataclass
class _Progress:
    """The progress file: how far the partial output is known to be on disk, and for what."""

    identity: dict
    """The input (path, size, modification time), the model and the settings: a resume
    continues only the same job."""
    next_line: int = 1
    offset: int = 0
    output_bytes: int = 0
    records: int = 0
    errors: int = 0
    version: int = PROGRESS_VERSION

    def save(self, path: Path) -> None:
        write_text_atomic(path, orjson.dumps(asdict(self)).decode())

    @classmethod
    def load(cls, path: Path, identity: dict) -> _Progress | None:
        """The saved progress of the same job, or None (no file, another job, unreadable)."""
        try:
            saved = orjson.loads(path.read_bytes())
            progress = cls(**saved)
        except (OSError, ValueError, TypeError):
            return None
        if progress.version != PROGRESS_VERSION or progress.identity != identity:
            return None
        return progress


def content_type_of(path: Path, settings: TransformSettings) -> str:
    """The settings' content type, else the one the file's suffix names, else text/plain."""
    return settings.content_type or SUFFIX_TYPES.get(Path(path).suffix.lower(), TEXT)


def output_path(input_path: Path, output_dir: Path) -> Path:
    return Path(output_dir) / f"{Path(input_path).name}{OUTPUT_SUFFIX}"


def _side_files(final: Path) -> tuple[Path, Path]:
    """The partial output and the progress file of ``final``, hidden beside it."""
    return (
        final.with_name(f".{final.name}.partial"),
        final.with_name(f".{final.name}.progress.json"),
    )


def count_lines(path: Path) -> int:
    """Lines in a file, counted in 1 MiB blocks (about 1 GB/s): the progress bar's total."""
    count, last = 0, b"\n"
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


def transform_file(
    predictor: Predictor,
    input_path: Path,
    output_dir: Path,
    settings: TransformSettings,
    *,
    model_id: str = "",
    progress: Callable[[int], None] | None = None,
) -> FileResult:
    """Answer every record of ``input_path`` into ``output_dir/<name>.out`` (see the module's
    docstring), continuing an interrupted run of the same job where it stopped.

    ``model_id`` identifies the model (a resume must not mix two models' answers);
    ``progress(n)`` is told of every ``n`` input lines done.
    """
    input_path = Path(input_path)
    if not input_path.is_file():
        raise CriticError(f"{input_path} is not a file")
    content_type = content_type_of(input_path, settings)
    final = output_path(input_path, output_dir)
    partial, progress_file = _side_files(final)
    stat = input_path.stat()
    identity = {
        "input": str(input_path.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "model": model_id,
        "content_type": content_type,
        "text_column": settings.text_column,
        "join_input": settings.join_input,
    }
    reader = RecordReader(content_type, settings.text_column)
    writer = ChunkWriter(predictor, reader, settings.join_input)
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(input_path, "rb") as source:
        header = _read_header(source, reader, input_path)
        out, state, resumed = _start_or_resume(
            source, header, writer, partial, progress_file, identity
        )
        if progress is not None:
            progress(state.next_line - 1)
        try:
            _answer_file(source, out, writer, state, settings, progress_file, progress, input_path)
        except TransformFailed:
            out.close()
            _remove(partial, progress_file)  # the same input would fail the same way again
            raise
        except BaseException:
            out.close()  # the progress file vouches for what is on disk: run again to resume
            raise
    out.close()
    os.replace(partial, final)
    # A run killed while it saved its progress leaves that write's temporary file behind.
    _remove(progress_file, *final.parent.glob(f".{progress_file.name}.*.tmp"))
    return FileResult(
        str(input_path), str(final), content_type, state.records, state.errors, resumed
    )


def _start_or_resume(
    source: IO[bytes],
    header: Record | None,
    writer: ChunkWriter,
    partial: Path,
    progress_file: Path,
    identity: dict,
) -> tuple[IO[bytes], _Progress, int | None]:
    """The partial output, open for appending, the progress it holds and the line a resume
    starts at: that of an earlier run of the same job (``source`` moved to where it stopped,
    what it wrote after its last checkpoint cut off), else a fresh start after the header."""
    saved = _Progress.load(progress_file, identity)
    if saved is not None and partial.is_file() and partial.stat().st_size >= saved.output_bytes:
        out = open(partial, "r+b")  # noqa: SIM115 -- the caller closes it, on every path
        out.truncate(saved.output_bytes)
        out.seek(saved.output_bytes)
        source.seek(saved.offset)
        return out, saved, saved.next_line
    first_line = header.line + header.lines if header else 1
    state = _Progress(identity, first_line, header.end if header else 0)
    out = open(partial, "wb")  # noqa: SIM115
    state.output_bytes = out.write(writer.header())
    return out, state, None


def _read_header(source: IO[bytes], reader: RecordReader, input_path: Path) -> Record | None:
    """A CSV file's header, read and checked (None for the other content types)."""
    if reader.content_type != CSV:
        return None
    first = next(read_records(source, csv_quoting=True), None)
    if first is None:
        raise CriticError(f"{input_path} is empty: a CSV file needs a header naming its columns")
    try:
        reader.read_header(first)
    except ClientError as error:
        raise CriticError(f"{input_path}: the header: {error.message}") from None
    except CriticError as error:
        raise CriticError(f"{input_path}: {error}") from None
    return first


def _answer_file(
    source: IO[bytes],
    out: IO[bytes],
    writer: ChunkWriter,
    state: _Progress,
    settings: TransformSettings,
    progress_file: Path,
    progress: Callable[[int], None] | None,
    input_path: Path,
) -> None:
    """Read, answer and append chunk after chunk, saving the progress every few seconds."""
    records = read_records(
        source,
        line=state.next_line,
        offset=state.offset,
        csv_quoting=writer.reader.content_type == CSV,
    )
    last_checkpoint = time.monotonic()
    while chunk := list(itertools.islice(records, settings.batch_size)):
        data, errors = writer.answer(chunk)
        if errors and settings.fail_on_error:
            line, message = errors[0]
            raise TransformFailed(f"{input_path}: line {line}: {message}")
        state.output_bytes += out.write(data)
        state.records += len(chunk)
        state.errors += len(errors)
        state.next_line = chunk[-1].line + chunk[-1].lines
        state.offset = chunk[-1].end
        if progress is not None:
            progress(sum(record.lines for record in chunk))
        if time.monotonic() - last_checkpoint >= settings.checkpoint_seconds:
            _checkpoint(out, state, progress_file)
            last_checkpoint = time.monotonic()
    out.flush()
    os.fsync(out.fileno())


def _checkpoint(out: IO[bytes], state: _Progress, progress_file: Path) -> None:
    """The output up to here on disk first, then the progress file that vouches for it."""
    out.flush()
    os.fsync(out.fileno())
    state.save(progress_file)


def _remove(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def check_inputs(inputs: Iterable[Path], output_dir: Path) -> list[Path]:
    """The inputs, each an existing file, no two writing the same output."""
    checked: list[Path] = []
    names: dict[str, Path] = {}
    for path in map(Path, inputs):
        if not path.exists():
            raise CriticError(f"{path} does not exist")
        if not path.is_file():
            raise CriticError(f"{path} is not a file")
        if path.name in names:
            raise CriticError(
                f"{names[path.name]} and {path} would both write "
                f"{output_path(path, output_dir)}: give inputs distinct names"
            )
        names[path.name] = path
        checked.append(path)
    if not checked:
        raise CriticError("no input files given")
    return checked


def transform_files(
    bundle: Path,
    inputs: Sequence[Path],
    output_dir: Path,
    settings: TransformSettings,
    *,
    show_progress: bool = True,
    log: Callable[[str], None] = print,
) -> list[FileResult]:
    """Load ``bundle`` and transform each input in turn (:func:`transform_file`), with a
    progress bar per file (reviews/s and the time left) when stderr is a terminal."""
    from tqdm import tqdm

    from critic.inference.bundle import MANIFEST
    from critic.inference.predictor import Predictor

    inputs = check_inputs(inputs, output_dir)
    for path in inputs:  # a CSV header without the review's column fails before any work
        with open(path, "rb") as source:
            _read_header(
                source, RecordReader(content_type_of(path, settings), settings.text_column), path
            )
    predictor = Predictor.load(bundle)
    model_id = sha256_file(Path(bundle) / MANIFEST)  # the manifest holds every file's checksum
    results = []
    for path in inputs:
        total = count_lines(path) if show_progress and sys.stderr.isatty() else None
        with tqdm(
            total=total,
            unit=" reviews",
            desc=path.name,
            disable=None if show_progress else True,  # None: shown only on a terminal
            dynamic_ncols=True,
            smoothing=0.1,
        ) as bar:
            result = transform_file(
                predictor, path, output_dir, settings, model_id=model_id, progress=bar.update
            )
        if result.resumed_at_line is not None:
            log(f"transform: {path}: continued an interrupted run at line {result.resumed_at_line}")
        results.append(result)
    return results
