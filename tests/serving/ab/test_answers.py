"""Answer ids: checked by hashing again, bound to the variant, the label and how the variant
was chosen; ids of the older form still check."""

import base64
import hashlib

from critic.serving.ab.answers import AnswerIds, allocation

KEY = b"k" * 32


def test_an_id_checks_for_its_variant_and_label_only_and_says_how_the_variant_was_chosen():
    ids = AnswerIds(KEY)
    issued = ids.issue("challenger", "positive", 0.05)
    assert ids.check(issued, "challenger", "positive")
    assert not ids.check(issued, "champion", "positive")
    assert not ids.check(issued, "challenger", "negative")
    assert not AnswerIds(b"o" * 32).check(issued, "challenger", "positive")
    assert allocation(issued) == (0.05, False)
    pinned = ids.issue("challenger", "positive", 0.5, pinned=True)
    assert ids.check(pinned, "challenger", "positive") and allocation(pinned) == (None, True)


def test_the_share_cannot_be_changed_without_the_key():
    ids = AnswerIds(KEY)
    nonce, chosen, mac = ids.issue("a", "positive", 0.05).split(".")
    assert chosen == "500"
    for forged in ("10000", "t", "0", "abc", ""):
        assert not ids.check(f"{nonce}.{forged}.{mac}", "a", "positive")


def test_without_a_known_share_the_id_says_nothing_of_how_the_variant_was_chosen():
    ids = AnswerIds(KEY)
    unknown = ids.issue("a", "positive")  # in front of SageMaker, before its weights are read
    assert ids.check(unknown, "a", "positive") and allocation(unknown) == (None, False)
    assert len(unknown.split(".")) == 2


def test_an_id_of_the_older_form_still_checks_and_has_no_allocation():
    # nonce.mac, the mac over nonce, variant and label: what critic issued before.
    nonce = "AAAAAAAAAAAA"
    digest = hashlib.blake2b(f"{nonce}\na\npositive".encode(), key=KEY, digest_size=12).digest()
    old = f"{nonce}.{base64.urlsafe_b64encode(digest).decode().rstrip('=')}"
    assert AnswerIds(KEY).check(old, "a", "positive")
    assert allocation(old) == (None, False)
    assert not AnswerIds(KEY).check(old + ".x", "a", "positive")
