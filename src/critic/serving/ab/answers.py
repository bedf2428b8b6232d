"""Answer ids: every answer the endpoint gives carries one, and feedback must name one.

An id is a random nonce and a keyed hash (BLAKE2b) of that nonce with the variant and the
label it was issued for. The endpoint keeps nothing per answer: it checks an id by hashing
again, so any worker process, and the same endpoint after a restart, recognises the ids it
issued -- the key lives in the feedback database, which they share. A client cannot make an
id for a variant or a label it was not given, and the feedback table's unique index lets
each id vote once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

ID_HEADER = "X-Critic-Answer-Id"
_NONCE_BYTES = 9  # 12 characters of base64: a collision is not a concern at any traffic
_MAC_BYTES = 12


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def new_key() -> bytes:
    return os.urandom(32)


class AnswerIds:
    def __init__(self, key: bytes):
        if len(key) < 16:
            raise ValueError("an answer-id key needs at least 16 bytes")
        self._key = key

    def _mac(self, nonce: str, variant: str, label: str) -> str:
        message = f"{nonce}\n{variant}\n{label}".encode()
        digest = hashlib.blake2b(message, key=self._key, digest_size=_MAC_BYTES).digest()
        return _b64(digest)

    def issue(self, variant: str, label: str) -> str:
        """A fresh id for one answer: ``label`` from ``variant``."""
        nonce = _b64(os.urandom(_NONCE_BYTES))
        return f"{nonce}.{self._mac(nonce, variant, label)}"

    def check(self, answer_id: str, variant: str, label: str) -> bool:
        """Whether this endpoint issued ``answer_id`` for exactly this variant and label."""
        nonce, dot, mac = answer_id.partition(".")
        if not dot or not nonce or not mac or len(answer_id) > 64:
            return False
        return hmac.compare_digest(mac, self._mac(nonce, variant, label))
