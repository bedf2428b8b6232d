"""Data capture: requests and answers as JSON lines in SageMaker's data-capture shape.

What SageMaker's endpoints write to S3 when data capture is on, written here to a local
folder, so that what monitors a SageMaker endpoint (``critic monitor``, SageMaker Model
Monitor's own parsers) reads this endpoint's traffic too. One line per captured request::

    {"captureData": {"endpointInput":  {"observedContentType": "application/json",
                                        "mode": "INPUT", "data": "...", "encoding": "JSON"},
                     "endpointOutput": {"observedContentType": "application/json",
                                        "mode": "OUTPUT", "data": "...", "encoding": "JSON"}},
     "eventMetadata": {"eventId": "<uuid>", "inferenceId": "<answer id>",
                       "inferenceTime": "2026-11-29T05:12:03Z"},
     "eventVersion": "0"}

* ``data`` holds the body exactly as it came and went: JSON and JSON lines bodies as text with
  encoding ``JSON``, CSV as text with ``CSV``, anything else (text/plain) base64 with
  ``BASE64`` -- SageMaker's own rule, with JSON and CSV content types declared;
* ``inferenceId`` is the id critic gave the (first) answer: what feedback names, so captured
  traffic can be joined with the feedback (SageMaker's ground-truth merge does the same);
* files are hourly, on SageMaker's path: ``DIR/ENDPOINT/VARIANT/yyyy/mm/dd/hh/
  mm-ss-fff-<uuid>.jsonl`` (UTC); each worker process writes its own file;
* ``capture_percent`` samples requests; only answered requests (2xx) are captured;
* with ``capture_text`` off, the review text never reaches the disk: the input's ``data`` is
  then ``{"omitted": "review text", "words": [...]}`` (encoding ``JSON``), each review's word
  count, so that ``critic monitor`` can still follow review length and the answers;
* the disk bound (``capture_max_mb``): past it the *oldest* hourly files are deleted, like a
  rotating log, so the newest traffic -- what a monitor looks at -- is always there;
* nothing is written on the request path: :meth:`CaptureWriter.offer` puts the raw bodies on
  a bounded queue and a thread of its own writes them; when the queue is full the record is
  dropped and counted (``critic_capture_dropped``), never waited for.
"""

from __future__ import annotations

import base64
import contextlib
import json
import queue
import random
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from critic.errors import CriticError
from critic.serving.codec import CSV, JSON, JSON_LINES, decode_reviews, media_type

EVENT_VERSION = "0"
QUEUE_RECORDS = 10_000  # records waiting for the writer before new ones are dropped
_TEXT_ENCODINGS = {JSON: "JSON", JSON_LINES: "JSON", CSV: "CSV"}
OMITTED = "review text"


@dataclass(frozen=True)
class CaptureConfig:
    """Where and what to capture (from :class:`~critic.serving.settings.ServerSettings`)."""

    folder: Path
    endpoint: str
    percent: float = 100.0
    max_mb: float = 1024.0
    keep_text: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.percent <= 100:
            raise CriticError(f"capture_percent must lie in (0, 100], got {self.percent}")
        if not self.max_mb > 0:
            raise CriticError(f"capture_max_mb must be above 0, got {self.max_mb}")


def _payload(body: bytes, content_type: str | None, mode: str) -> dict:
    observed = content_type or "application/octet-stream"
    encoding = _TEXT_ENCODINGS.get(media_type(content_type))
    if encoding is not None:
        try:
            data = body.decode("utf-8")
        except UnicodeDecodeError:
            encoding = None
    if encoding is None:
        encoding, data = "BASE64", base64.b64encode(body).decode("ascii")
    return {"observedContentType": observed, "mode": mode, "data": data, "encoding": encoding}


def capture_record(
    request_body: bytes,
    request_type: str | None,
    response_body: bytes,
    response_type: str,
    inference_id: str | None,
    when: datetime,
    reviews: list[str] | None = None,
) -> dict:
    """One capture line. With ``reviews`` given, the input's text is left out and only each
    review's word count kept (see the module's docstring)."""
    if reviews is None:
        endpoint_input = _payload(request_body, request_type, "INPUT")
    else:
        omitted = {"omitted": OMITTED, "words": [len(review.split()) for review in reviews]}
        endpoint_input = {
            "observedContentType": request_type or "application/octet-stream",
            "mode": "INPUT",
            "data": json.dumps(omitted),
            "encoding": "JSON",
        }
    metadata = {"eventId": str(uuid.uuid4())}
    if inference_id is not None:
        metadata["inferenceId"] = inference_id
    metadata["inferenceTime"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "captureData": {
            "endpointInput": endpoint_input,
            "endpointOutput": _payload(response_body, response_type, "OUTPUT"),
        },
        "eventMetadata": metadata,
        "eventVersion": EVENT_VERSION,
    }


def capture_path(folder: Path, endpoint: str, variant: str, when: datetime) -> Path:
    """SageMaker's layout: ENDPOINT/VARIANT/yyyy/mm/dd/hh/mm-ss-fff-<uuid>.jsonl (UTC)."""
    hour = folder / endpoint / variant / when.strftime("%Y/%m/%d/%H")
    stamp = when.strftime("%M-%S-") + f"{when.microsecond // 1000:03d}"
    return hour / f"{stamp}-{uuid.uuid4()}.jsonl"


# --- the shape, checked ----------------------------------------------------------------------

_PAYLOAD_KEYS = {"observedContentType", "mode", "data", "encoding"}
_ENCODINGS = {"JSON", "CSV", "BASE64"}


def validate_record(record: Any) -> list[str]:
    """What in one capture line departs from SageMaker's shape (empty when nothing does)."""
    if not isinstance(record, dict):
        return ["a capture line must be a JSON object"]
    problems = []
    if set(record) != {"captureData", "eventMetadata", "eventVersion"}:
        problems.append(
            f"top-level keys must be captureData, eventMetadata, eventVersion; got {sorted(record)}"
        )
    if record.get("eventVersion") != EVENT_VERSION:
        problems.append(f"eventVersion must be {EVENT_VERSION!r}")
    data = record.get("captureData")
    if (
        not isinstance(data, dict)
        or not data
        or not set(data) <= {"endpointInput", "endpointOutput"}
    ):
        problems.append("captureData must hold endpointInput and/or endpointOutput")
        data = {}
    for key, mode in (("endpointInput", "INPUT"), ("endpointOutput", "OUTPUT")):
        payload = data.get(key)
        if payload is None:
            continue
        if not isinstance(payload, dict) or set(payload) != _PAYLOAD_KEYS:
            problems.append(f"{key} must have exactly {sorted(_PAYLOAD_KEYS)}")
            continue
        if payload["mode"] != mode:
            problems.append(f"{key}.mode must be {mode}")
        if payload["encoding"] not in _ENCODINGS:
            problems.append(f"{key}.encoding must be one of {sorted(_ENCODINGS)}")
        if not all(isinstance(payload[k], str) for k in _PAYLOAD_KEYS):
            problems.append(f"{key}: every field must be a string")
        elif payload["encoding"] == "BASE64":
            try:
                base64.b64decode(payload["data"], validate=True)
            except ValueError:
                problems.append(f"{key}.data is not base64")
    problems += _metadata_problems(record.get("eventMetadata"))
    return problems


def _metadata_problems(metadata: Any) -> list[str]:
    if (
        not isinstance(metadata, dict)
        or "eventId" not in metadata
        or "inferenceTime" not in metadata
    ):
        return ["eventMetadata must hold eventId and inferenceTime"]
    problems = []
    if not set(metadata) <= {"eventId", "inferenceId", "inferenceTime"}:
        problems.append(f"eventMetadata has unknown keys: {sorted(metadata)}")
    if not all(isinstance(value, str) for value in metadata.values()):
        problems.append("eventMetadata's values must be strings")
    else:
        try:
            datetime.strptime(metadata["inferenceTime"], "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            problems.append(
                "eventMetadata.inferenceTime must be ISO 8601 UTC, e.g. 2026-01-31T12:00:00Z"
            )
    return problems


def validate_capture_file(path: Path) -> list[str]:
    """Every problem of a capture file, each as ``path:line: problem``."""
    problems = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            try:
                record = json.loads(line)
            except ValueError as error:
                problems.append(f"{path}:{number}: not JSON ({error})")
                continue
            problems += [f"{path}:{number}: {problem}" for problem in validate_record(record)]
    return problems


# --- reading back ------------------------------------------------------------------------------


def decode_payload(payload: dict) -> bytes:
    """The body a capture payload holds, as bytes."""
    if payload["encoding"] == "BASE64":
        return base64.b64decode(payload["data"])
    return payload["data"].encode("utf-8")


def captured_reviews(record: dict) -> tuple[list[str] | None, list[int]]:
    """The reviews of a captured request (None when their text was left out) and each one's
    word count."""
    payload = record["captureData"]["endpointInput"]
    body = decode_payload(payload)
    if payload["encoding"] == "JSON":
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and parsed.get("omitted") == OMITTED:
            return None, [int(words) for words in parsed["words"]]
    reviews = decode_reviews(body, payload["observedContentType"], max_reviews=10**9)
    return reviews, [len(review.split()) for review in reviews]


# --- the writer ------------------------------------------------------------------------------


@dataclass
class _Captured:
    variant: str
    request_body: bytes
    request_type: str | None
    response_body: bytes
    response_type: str
    inference_id: str | None
    when: datetime
    reviews: list[str] | None


class CaptureWriter:
    """Writes capture lines from a thread of its own; :meth:`offer` never blocks."""

    def __init__(
        self,
        config: CaptureConfig,
        seed: int | None = None,
        registry=None,
        max_queued: int = QUEUE_RECORDS,
    ):
        self.config = config
        self.captured = 0
        self.dropped = 0
        self.deleted_files = 0
        self._random = random.Random(seed)
        self._queue: queue.Queue[_Captured | None] = queue.Queue(maxsize=max_queued)
        self._files: dict[str, tuple[Path, Any]] = {}  # variant -> (path, open file)
        self._bytes = _folder_bytes(config.folder)
        self._bound = int(config.max_mb * 1024 * 1024)
        self._dropped_metric = self._written_metric = None
        if registry is not None:
            from prometheus_client import Counter

            self._written_metric = Counter(
                "critic_capture_records", "Requests captured to disk.", registry=registry
            )
            self._dropped_metric = Counter(
                "critic_capture_dropped",
                "Requests sampled for capture but dropped: the writer's queue was full.",
                registry=registry,
            )
        self._thread = threading.Thread(target=self._run, name="critic-capture", daemon=True)
        self._thread.start()

    def offer(
        self,
        variant: str,
        request_body: bytes,
        request_type: str | None,
        response_body: bytes,
        response_type: str,
        inference_id: str | None,
        reviews: list[str],
        when: datetime | None = None,
    ) -> None:
        """Capture one answered request, if the sampling draws it; returns at once. ``when``:
        the time of the answer, now unless given (a capture replayed from elsewhere)."""
        if self.config.percent < 100 and self._random.random() * 100 >= self.config.percent:
            return
        item = _Captured(
            variant,
            request_body,
            request_type,
            response_body,
            response_type,
            inference_id,
            when or datetime.now(timezone.utc),
            None if self.config.keep_text else reviews,
        )
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            if self._dropped_metric is not None:
                self._dropped_metric.inc()

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued (for ``timeout_s`` at most), close the files, stop the thread."""
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout_s)
        self._thread.join(timeout_s)

    def flush(self, timeout_s: float = 10.0) -> None:
        """Wait until everything offered so far is on disk (tests, benchmarks)."""
        done = threading.Event()
        self._queue.put(done, timeout=timeout_s)  # type: ignore[arg-type]
        done.wait(timeout_s)

    def _run(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                if isinstance(item, threading.Event):
                    for _, handle in self._files.values():
                        handle.flush()
                    item.set()
                    continue
                try:
                    self._write(item)
                    # Flushed once the queue is empty: one system call for a burst of records,
                    # not one a record. A buffered file hands the OS whole lines (a line that
                    # does not fit the buffer flushes it first), so a reader never sees half
                    # of one.
                    if self._queue.empty():
                        for _, handle in self._files.values():
                            handle.flush()
                except OSError:
                    # A full or unwritable disk must not end the capture thread, nor reach the
                    # requests; the record is counted as dropped.
                    self.dropped += 1
        finally:
            for _, handle in self._files.values():
                handle.close()

    def _write(self, item: _Captured) -> None:
        record = capture_record(
            item.request_body,
            item.request_type,
            item.response_body,
            item.response_type,
            item.inference_id,
            item.when,
            item.reviews,
        )
        line = _escape_line_breaks(orjson.dumps(record)) + b"\n"
        self._file(item.variant, item.when).write(line)
        self.captured += 1
        if self._written_metric is not None:
            self._written_metric.inc()
        self._bytes += len(line)
        if self._bytes > self._bound:
            self._trim()

    def _file(self, variant: str, when: datetime):
        hour = when.strftime("%Y/%m/%d/%H")
        current = self._files.get(variant)
        if current is not None and current[0].parent.as_posix().endswith(hour):
            return current[1]
        if current is not None:
            current[1].close()
        path = capture_path(self.config.folder, self.config.endpoint, variant, when)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Held open for the hour, closed on rotation; a buffer larger than most bursts.
        handle = open(path, "ab", buffering=1 << 18)  # noqa: SIM115
        self._files[variant] = (path, handle)
        return handle

    def _trim(self) -> None:
        """Delete the oldest capture files until the folder is back under the bound (files
        another worker or an earlier run wrote count too); the files open now are kept."""
        open_now = {path for path, _ in self._files.values()}
        files = sorted(
            (path for path in self.config.folder.rglob("*.jsonl") if path not in open_now),
            key=_hour_and_name,
        )
        total = _folder_bytes(self.config.folder)
        for path in files:
            if total <= self._bound:
                break
            try:
                size = path.stat().st_size
                path.unlink()
            except OSError:
                continue
            total -= size
            self.deleted_files += 1
        self._bytes = total

    def describe(self) -> dict:
        return {
            "folder": str(self.config.folder),
            "percent": self.config.percent,
            "keep_text": self.config.keep_text,
            "captured": self.captured,
            "dropped": self.dropped,
            "deleted_files": self.deleted_files,
        }


def describe_capture(snapshots: list[dict]) -> dict:
    """The capture's view from each worker process's :meth:`CaptureWriter.describe`: one
    folder and one sampling, the counts summed."""
    merged = dict(snapshots[0])
    for key in ("captured", "dropped", "deleted_files"):
        merged[key] = sum(snapshot[key] for snapshot in snapshots)
    return merged


# orjson (fifty times quicker than json.dumps here, on the capture thread that shares the GIL
# with the event loop) writes UTF-8 as it is; a review's U+2028, U+2029 or U+0085, left raw,
# would end a line for readers that split on every Unicode line break (Python's
# str.splitlines among them), so they are written as JSON escapes.
_LINE_BREAKS = (
    (b"\xe2\x80\xa8", b"\\u2028"),
    (b"\xe2\x80\xa9", b"\\u2029"),
    (b"\xc2\x85", b"\\u0085"),
)


def _escape_line_breaks(line: bytes) -> bytes:
    for raw, escaped in _LINE_BREAKS:
        if raw in line:
            line = line.replace(raw, escaped)
    return line


def _hour_and_name(path: Path) -> tuple[str, str]:
    # .../yyyy/mm/dd/hh/mm-ss-fff-uuid.jsonl: the last five parts order files in time, across
    # variants.
    return ("/".join(path.parts[-5:]), str(path))


def _folder_bytes(folder: Path) -> int:
    if not folder.is_dir():
        return 0
    return sum(path.stat().st_size for path in folder.rglob("*.jsonl") if path.is_file())


def capture_files(folder: Path) -> list[Path]:
    """Every capture file under ``folder``, oldest first."""
    if not Path(folder).is_dir():
        raise CriticError(f"{folder} is not a folder of captured data")
    return sorted(Path(folder).rglob("*.jsonl"), key=_hour_and_name)
