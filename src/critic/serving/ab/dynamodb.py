"""Feedback and online counts in one DynamoDB table: the store for endpoints on more than one
machine (``--feedback-db dynamodb://TABLE``).

Every server and the Lambda in front of a SageMaker endpoint read and write the same table, so
a vote counts once however many servers receive it, every server recognises every answer id,
and the A/B view of any of them decides over all the votes. One table, on-demand capacity, a
string partition key ``pk`` and a string sort key ``sk``::

    pk      sk                    what
    meta    answer-key            the answer ids' key (critic.serving.ab.answers), made once
    meta    vote-seq              the last vote number given
    vote    0000000000000042      one verdict, numbered in the order they came
    answer  <answer id>           that the answer has its verdict: one per id
    tally   <variant>             verdicts and "right" verdicts of the variant
    counts  <run>#<variant>       a run's online counts of the variant (critic.serving.ab.counts)

A vote takes two requests: an atomic ``ADD`` that numbers it, then one transaction that writes
the vote, the answer's marker -- on condition that none exists, which is what makes a second
vote on the same answer fail on every server at once -- and the tally. Reading is cheap: the
A/B view reads the tallies (one query) and only the votes it has not seen before (votes never
change, so each store keeps those it read). Counts are added per variant with ``ADD`` (no lost
update however many processes flush at once), one request per variant a second per process.

Standard library and boto3 only (with critic.serving.ab.answers and .votes), so that the Lambda
in front of a SageMaker endpoint records votes with this very code. boto3 is optional
(``pip install 'critic[aws]'``); credentials and region come from the
environment as for every AWS SDK (``AWS_REGION``, ``AWS_PROFILE``, ``AWS_ENDPOINT_URL``...),
or ``dynamodb://TABLE?region=eu-west-1``.
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

from critic.errors import CriticError
from critic.serving.ab.answers import new_key
from critic.serving.ab.votes import DuplicateFeedback, FeedbackError, Votes, check_verdict

SCHEME = "dynamodb://"
_TABLE = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
_SEQ_DIGITS = 16
INSTALL_HINT = "pip install 'critic[aws]'"


def is_dynamodb(spec: object) -> bool:
    return isinstance(spec, str) and spec.startswith(SCHEME)


def parse_url(spec: str) -> tuple[str, str | None]:
    """``dynamodb://TABLE[?region=R]`` -> (table, region or None)."""
    parts = urlsplit(spec)
    table = (parts.netloc + parts.path).strip("/")
    if parts.scheme != "dynamodb" or not _TABLE.match(table):
        raise CriticError(
            f"{spec!r} is not a DynamoDB table: give dynamodb://TABLE (3-255 letters, digits, "
            "'_', '-' or '.'), optionally ?region=REGION"
        )
    query = parse_qs(parts.query)
    unknown = sorted(set(query) - {"region"})
    if unknown:
        raise CriticError(f"{spec!r}: unknown setting {unknown[0]!r}; only region is read")
    region = query.get("region", [None])[0]
    return table, region


def dynamodb_client(region: str | None = None) -> Any:
    """A DynamoDB client from the environment (a CriticError when boto3 is missing)."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise CriticError(
            f"a DynamoDB feedback store needs boto3, which is not installed: {INSTALL_HINT}"
        ) from None
    try:
        # Standard retries: a throttled write is retried rather than lost.
        config = Config(retries={"mode": "standard", "max_attempts": 5})
        return boto3.session.Session().client("dynamodb", region_name=region, config=config)
    except Exception as error:  # botocore's NoRegionError and friends
        raise CriticError(f"cannot reach DynamoDB: {_one_line(error)}") from None


def create_table(table: str, region: str | None = None, client: Any = None) -> dict:
    """Create the feedback table (on-demand capacity) and wait until it is ACTIVE; a table
    that exists already is a CriticError."""
    client = client or dynamodb_client(region)
    with _errors(f"creating DynamoDB table {table}"):
        answer = client.create_table(
            TableName=table,
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            BillingMode="PAY_PER_REQUEST",
            Tags=[{"Key": "critic:feedback", "Value": table}],
        )
        client.get_waiter("table_exists").wait(
            TableName=table, WaiterConfig={"Delay": 2, "MaxAttempts": 60}
        )
    return answer["TableDescription"]


def delete_table(table: str, region: str | None = None, client: Any = None) -> None:
    """Delete the feedback table and every vote in it, and wait until it is gone."""
    client = client or dynamodb_client(region)
    with _errors(f"deleting DynamoDB table {table}"):
        client.delete_table(TableName=table)
        client.get_waiter("table_not_exists").wait(
            TableName=table, WaiterConfig={"Delay": 2, "MaxAttempts": 60}
        )


class DynamoFeedbackStore:
    """Feedback in a DynamoDB table: the same methods as the SQLite FeedbackStore."""

    keeps_shadow_answers = False
    """Shadow answers stay out of the table (millions a day; not yet kept across machines)."""

    def __init__(self, spec: str, client: Any = None):
        self.table, region = parse_url(spec)
        self.url = f"{SCHEME}{self.table}"
        self.path = None  # there is no file
        self._client = client or dynamodb_client(region)
        self._lock = threading.Lock()
        # The votes read so far, in order: (number, variant, right, share, pinned).
        self._seen: list[tuple[int, str, int, float, bool]] = []
        with _errors(f"opening DynamoDB table {self.table}"):
            description = self._client.describe_table(TableName=self.table)["Table"]
        keys = {entry["AttributeName"]: entry["KeyType"] for entry in description["KeySchema"]}
        if keys != {"pk": "HASH", "sk": "RANGE"}:
            raise FeedbackError(
                f"DynamoDB table {self.table} is not a critic feedback table (keys pk, sk): "
                "make one with critic sagemaker feedback-table create"
            )
        self.answer_key = self._answer_key()

    def __str__(self) -> str:
        return self.url

    # --- writing -----------------------------------------------------------------------------

    def _answer_key(self) -> bytes:
        """The one key every server shares: whoever comes first writes it."""
        with _errors(f"reading the answer key in {self.url}"):
            # Another server made it first: then theirs is the key.
            with contextlib.suppress(self._client.exceptions.ConditionalCheckFailedException):
                self._client.put_item(
                    TableName=self.table,
                    Item={"pk": {"S": "meta"}, "sk": {"S": "answer-key"}, "key": {"B": new_key()}},
                    ConditionExpression="attribute_not_exists(pk)",
                )
            item = self._client.get_item(
                TableName=self.table,
                Key={"pk": {"S": "meta"}, "sk": {"S": "answer-key"}},
                ConsistentRead=True,
            )["Item"]
        return bytes(item["key"]["B"])

    def record(
        self,
        *,
        review: str,
        variant: str,
        label: str,
        feedback: str,
        model: str | None = None,
        probability: float | None = None,
        rating: int | None = None,
        answer_id: str | None = None,
        share: float | None = None,
        pinned: bool = False,
    ) -> int:
        """Store one verdict; its number. A second verdict on the same answer id, from this
        server or any other, is refused (:class:`DuplicateFeedback`)."""
        check_verdict(label, feedback)
        created = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        with _errors(f"recording feedback in {self.url}"):
            number = int(
                self._client.update_item(
                    TableName=self.table,
                    Key={"pk": {"S": "meta"}, "sk": {"S": "vote-seq"}},
                    UpdateExpression="ADD #seq :one",
                    ExpressionAttributeNames={"#seq": "seq"},
                    ExpressionAttributeValues={":one": {"N": "1"}},
                    ReturnValues="UPDATED_NEW",
                )["Attributes"]["seq"]["N"]
            )
            vote: dict[str, dict] = {
                "pk": {"S": "vote"},
                "sk": {"S": _seq_key(number)},
                "created_at": {"S": created},
                "variant": {"S": variant},
                "review": {"S": review},
                "label": {"S": label},
                "feedback": {"S": feedback},
                "pinned": {"BOOL": bool(pinned)},
            }
            for name, value in (("model", model), ("answer_id", answer_id)):
                if value is not None:
                    vote[name] = {"S": value}
            for name, value in (("probability", probability), ("rating", rating), ("share", share)):
                if value is not None:
                    vote[name] = {"N": repr(float(value)) if name != "rating" else str(int(value))}
            actions: list[dict] = [{"Put": {"TableName": self.table, "Item": vote}}]
            if answer_id is not None:
                actions.append(
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": {
                                "pk": {"S": "answer"},
                                "sk": {"S": answer_id},
                                "vote": {"N": str(number)},
                            },
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    }
                )
            actions.append(
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": {"pk": {"S": "tally"}, "sk": {"S": variant}},
                        "UpdateExpression": "ADD #total :one, #right :right",
                        "ExpressionAttributeNames": {"#total": "total", "#right": "right"},
                        "ExpressionAttributeValues": {
                            ":one": {"N": "1"},
                            ":right": {"N": "1" if feedback == "right" else "0"},
                        },
                    }
                }
            )
            try:
                # The token makes a retried transaction (a timeout after DynamoDB had
                # committed it) succeed again, rather than fail its own condition.
                self._client.transact_write_items(
                    TransactItems=actions, ClientRequestToken=f"critic-vote-{number}"
                )
            except self._client.exceptions.TransactionCanceledException as error:
                reasons = error.response.get("CancellationReasons", [])
                if any(reason.get("Code") == "ConditionalCheckFailed" for reason in reasons):
                    raise DuplicateFeedback("this answer already has its feedback") from None
                raise
        return number

    # --- reading -----------------------------------------------------------------------------

    def rows(self, limit: int = 100) -> list[dict]:
        """The most recent verdicts, newest first, as the SQLite store's rows."""
        with _errors(f"reading feedback from {self.url}"):
            answer = self._client.query(
                TableName=self.table,
                KeyConditionExpression="pk = :vote",
                ExpressionAttributeValues={":vote": {"S": "vote"}},
                ScanIndexForward=False,
                Limit=int(limit),
                ConsistentRead=True,
            )
        return [_row(item) for item in answer.get("Items", [])]

    def votes(self, variants: Sequence[str], after: int = 0) -> Votes:
        """Every verdict on these variants in the order they came (after number ``after``)."""
        with self._lock:
            self._read_new_votes()
            chosen = set(variants)
            picked = [vote for vote in self._seen if vote[0] > after and vote[1] in chosen]
        return Votes(
            [variant for _, variant, *_ in picked],
            [right for _, _, right, *_ in picked],
            [share for *_, share, _ in picked],
            [pinned for *_, pinned in picked],
        )

    def _read_new_votes(self) -> None:
        last = self._seen[-1][0] if self._seen else 0
        with _errors(f"reading feedback from {self.url}"):
            for item in _items(
                self._client, self.table, "vote", _seq_key(last),
                ("variant", "feedback", "share", "pinned"),
            ):  # fmt: skip
                self._seen.append(
                    (
                        int(item["sk"]["S"]),
                        item["variant"]["S"],
                        int(item["feedback"]["S"] == "right"),
                        float(item["share"]["N"]) if "share" in item else math.nan,
                        bool(item.get("pinned", {}).get("BOOL", False)),
                    )
                )

    def verdicts(self) -> list[tuple[str, str, str, str]]:
        """(answer id, label answered, verdict, when) of every vote that names its answer, in
        the order they came: what the ground-truth export reads."""
        found = []
        fields = ("answer_id", "label", "feedback", "created_at")
        with _errors(f"reading feedback from {self.url}"):
            for item in _items(self._client, self.table, "vote", fields=fields):
                if "answer_id" in item:
                    found.append(tuple(item[name]["S"] for name in fields))
        return found

    def last_id(self) -> int:
        """The number of the latest verdict (0 before any)."""
        with _errors(f"reading feedback from {self.url}"):
            item = self._client.get_item(
                TableName=self.table,
                Key={"pk": {"S": "meta"}, "sk": {"S": "vote-seq"}},
                ConsistentRead=True,
            ).get("Item")
        return int(item["seq"]["N"]) if item else 0

    def summary(self, variants: Sequence[str] = ()) -> list[dict]:
        """Per variant: verdicts, "right" ones, the accuracy and its 95% interval."""
        from critic.serving.ab.feedback import summary_rows  # its interval needs scipy

        with _errors(f"reading feedback from {self.url}"):
            counts = {
                item["sk"]["S"]: (int(item["total"]["N"]), int(item["right"]["N"]))
                for item in _items(self._client, self.table, "tally")
            }
        return summary_rows(counts, variants)

    def add_shadow_answers(self, rows: Sequence[tuple[str, str, str]]) -> None:
        raise FeedbackError("a DynamoDB feedback store does not keep shadow answers yet")

    def shadow_pairs(self, shadow: str, live_variant: str) -> tuple[list[int], list[int]]:
        return [], []


class DynamoCountStore:
    """The online counts of the runs of an endpoint, in the feedback table: the same methods
    as the SQLite CountStore."""

    def __init__(self, store: DynamoFeedbackStore, run: str):
        self.table = store.table
        self.run = run
        self._client = store._client
        self.path = None

    def add(self, deltas: dict[str, dict[str, float]]) -> None:
        """Add one process's new counts to this run's items: one ADD per variant."""
        for variant, counts in deltas.items():
            counts = {counter: value for counter, value in counts.items() if value}
            if not counts:
                continue
            names = {f"#c{index}": counter for index, counter in enumerate(counts)}
            values = {
                f":v{index}": {"N": repr(float(value))}
                for index, value in enumerate(counts.values())
            }
            with _errors(f"adding online counts to {SCHEME}{self.table}"):
                self._client.update_item(
                    TableName=self.table,
                    Key={"pk": {"S": "counts"}, "sk": {"S": f"{self.run}#{variant}"}},
                    UpdateExpression="ADD "
                    + ", ".join(f"#c{index} :v{index}" for index in range(len(counts))),
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                )

    def earlier(self) -> dict[str, dict[str, float]]:
        """The counts of every run before this one, per variant."""
        found: dict[str, dict[str, float]] = {}
        with _errors(f"reading online counts from {SCHEME}{self.table}"):
            for item in _items(self._client, self.table, "counts"):
                run, _, variant = item["sk"]["S"].partition("#")
                if run == self.run:
                    continue
                into = found.setdefault(variant, {})
                for counter, value in item.items():
                    if counter not in ("pk", "sk"):
                        into[counter] = into.get(counter, 0.0) + float(value["N"])
        return found


def _items(client: Any, table: str, partition: str, after: str | None = None, fields=()):
    """Every item of one partition (``pk``), in sort-key order, page by page; only those whose
    ``sk`` comes after ``after``, and only ``fields`` (with ``sk``) when given. Names go behind
    placeholders: DynamoDB reserves hundreds of words."""
    condition = "pk = :pk" + (" AND sk > :after" if after is not None else "")
    values = {":pk": {"S": partition}}
    if after is not None:
        values[":after"] = {"S": after}
    extra: dict[str, Any] = {}
    if fields:
        extra["ProjectionExpression"] = ", ".join(["sk", *(f"#f{n}" for n in range(len(fields)))])
        extra["ExpressionAttributeNames"] = {f"#f{n}": name for n, name in enumerate(fields)}
    pages = client.get_paginator("query").paginate(
        TableName=table,
        KeyConditionExpression=condition,
        ExpressionAttributeValues=values,
        ConsistentRead=True,
        **extra,
    )
    for page in pages:
        yield from page.get("Items", [])


def _seq_key(number: int) -> str:
    # Zero-padded so that the string sort key orders votes as numbers.
    return f"{number:0{_SEQ_DIGITS}d}"


def _row(item: dict) -> dict:
    def value(name: str) -> Any:
        field = item.get(name)
        if field is None:
            return None
        if "S" in field:
            return field["S"]
        if "N" in field:
            number = float(field["N"])
            return int(number) if name == "rating" else number
        if "BOOL" in field:
            return int(field["BOOL"])
        return None

    row = {
        name: value(name)
        for name in (
            "created_at", "variant", "model", "review", "label", "probability", "rating",
            "feedback", "answer_id", "share", "pinned",
        )
    }  # fmt: skip
    return {"id": int(item["sk"]["S"]), **row}


class _errors:
    """AWS failures inside the block as one-line FeedbackErrors (DuplicateFeedback and other
    CriticErrors pass through)."""

    def __init__(self, action: str):
        self.action = action

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, traceback) -> bool:
        if error is None or isinstance(error, CriticError):
            return False
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(error, ClientError):
            details = error.response.get("Error", {})
            code = details.get("Code", "Error")
            message = details.get("Message", "")
            if code == "ResourceNotFoundException":
                raise FeedbackError(
                    f"{self.action} failed: there is no such table; make it with critic "
                    "sagemaker feedback-table create"
                ) from None
            raise FeedbackError(f"{self.action} failed: {code}: {_one_line(message)}") from None
        if isinstance(error, BotoCoreError):
            raise FeedbackError(f"{self.action} failed: {_one_line(error)}") from None
        return False


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


__all__ = [
    "SCHEME",
    "DynamoCountStore",
    "DynamoFeedbackStore",
    "create_table",
    "delete_table",
    "dynamodb_client",
    "is_dynamodb",
    "parse_url",
]
