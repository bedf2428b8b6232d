"""Answer ids: every answer the endpoint gives carries one, and feedback must name one.

An id is a random nonce, how the variant was chosen, and a keyed hash (BLAKE2b) of these with
the variant and the label it was issued for. How it was chosen is the probability it was
drawn with, in ten-thousandths (the weights of that moment), or ``t`` when the client named
the target variant: the A/B test weighs each vote by it (critic.evaluation.abtest), and the
hash keeps a client from changing it. The endpoint keeps nothing per answer: it checks an id by hashing
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
SHARE_SCALE = 10_000  # the probability in the id, in ten-thousandths
PINNED = "t"  # the client named the target variant


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def new_key() -> bytes:
    return os.urandom(32)


class AnswerIds:
    def __init__(self, key: bytes):
        if len(key) < 16:
            raise ValueError("an answer-id key needs at least 16 bytes")
        self._key = key

    def _mac(self, nonce: str, variant: str, label: str, chosen: str | None = None) -> str:
        fields = [nonce, variant, label] if chosen is None else [nonce, variant, label, chosen]
        message = "\n".join(fields).encode()
        digest = hashlib.blake2b(message, key=self._key, digest_size=_MAC_BYTES).digest()
        return _b64(digest)

    def issue(
        self, variant: str, label: str, share: float | None = None, pinned: bool = False
    ) -> str:
        """A fresh id for one answer: ``label`` from ``variant``, chosen with probability
        ``share``, or named by the client (``pinned``); with neither known, an id that says
        nothing of how (the older form)."""
        nonce = _b64(os.urandom(_NONCE_BYTES))
        if not pinned and share is None:
            return f"{nonce}.{self._mac(nonce, variant, label)}"
        chosen = PINNED if pinned else str(max(1, round(share * SHARE_SCALE)))
        return f"{nonce}.{chosen}.{self._mac(nonce, variant, label, chosen)}"

    def check(self, answer_id: str, variant: str, label: str) -> bool:
        """Whether this endpoint issued ``answer_id`` for exactly this variant and label
        (also an id of the older form, without how the variant was chosen)."""
        parts = answer_id.split(".")
        if len(answer_id) > 64 or len(parts) not in (2, 3) or not all(parts):
            return False
        nonce, *chosen, mac = parts
        if chosen and not _valid_chosen(chosen[0]):
            return False
        return hmac.compare_digest(mac, self._mac(nonce, variant, label, *chosen))


def allocation(answer_id: str) -> tuple[float | None, bool]:
    """How the variant of a checked id was chosen: (the probability it was drawn with, or
    None when unknown; whether the client named it)."""
    parts = answer_id.split(".")
    if len(parts) != 3:
        return None, False  # an id from before critic logged it
    if parts[1] == PINNED:
        return None, True
    return int(parts[1]) / SHARE_SCALE, False


def _valid_chosen(chosen: str) -> bool:
    return chosen == PINNED or (chosen.isdigit() and 1 <= int(chosen) <= SHARE_SCALE)
