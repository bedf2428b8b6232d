import pytest

from critic.data.text import clean, tokenize


@pytest.mark.parametrize(
    ("review", "expected"),
    [
        ("I do not like it", ["i", "do", "not", "like", "it"]),
        ("No, never.", ["no", "never"]),
        ("I don't like it", ["i", "do", "n't", "like", "it"]),
        (
            "It wasn't good and I can't say I won't",
            ["it", "was", "n't", "good", "and", "i", "ca", "n't", "say", "i", "wo", "n't"],
        ),
        ("Don\u2019t", ["do", "n't"]),
    ],
)
def test_negations_survive_tokenising(review, expected):
    assert tokenize(review) == expected


def test_html_line_breaks_and_tags_are_stripped():
    assert tokenize("Good.<br /><br />Really <i>good</i>") == ["good", "really", "good"]
    assert "<" not in clean("a<br/>b<p class='x'>c</p>")


def test_html_entities_are_unescaped():
    assert tokenize("Tom &amp; Jerry wasn&#39;t bad") == ["tom", "jerry", "was", "n't", "bad"]


def test_exclamation_and_question_marks_are_tokens_and_other_punctuation_goes():
    assert tokenize("Wow!! Really? Yes... (sort of); fine.") == [
        "wow",
        "!",
        "!",
        "really",
        "?",
        "yes",
        "sort",
        "of",
        "fine",
    ]


def test_text_is_lowercased_and_clitics_split():
    assert tokenize("It's GREAT, they're fine") == ["it", "'s", "great", "they", "'re", "fine"]


def test_non_ascii_letters_stay_inside_words():
    assert tokenize("Café au lait, naïve") == ["café", "au", "lait", "naïve"]


def test_empty_and_punctuation_only_text_has_no_tokens():
    assert tokenize("") == []
    assert tokenize(" ... ,,, ") == []
