"""Multiple-choice and yes/no answer parsing (sinktop_eval.benchmarks.answers)."""
import pytest

from sinktop_eval.benchmarks.answers import (
    answer_letter,
    choice_correct,
    normalize_yes_no,
    parse_choice,
    parse_yes_no,
    strip_option_prefix,
    yes_no_correct,
)

OPTIONS = ["a cat", "a dog", "a bird", "a fish"]


@pytest.mark.parametrize("reply, expected", [
    ("I think B", "B"),
    ("(b) a dog", "B"),
    ("Answer: C.", "C"),
    ("The best answer is D", "D"),
    ("B", "B"),
    ("b.", "B"),
    ("a dog", "B"),                      # option text only
    ("It is a dog.", "B"),               # option text inside a sentence
    ("The dog", "B"),                    # article-insensitive
    ("B) a dog", "B"),
    ("Best option:(C) a bird", "C"),
    ("**D**", "D"),
    ("[A]", "A"),
    ("Option A", "A"),
    ("The answer is b.", "B"),
    ("I would say (C).", "C"),
    ("C, because the bird flies", "C"),
    ("i think b", "B"),
    ("A", "A"),
    ("a", "A"),                          # the whole reply is one letter
    ("A is correct.", "A"),              # "A" followed by a verb is the letter
])
def test_reply_forms(reply, expected):
    assert parse_choice(reply, OPTIONS) == expected


@pytest.mark.parametrize("reply", [
    "A man walks",                       # article, and no option says so
    "A man walks across the room.",
    "a horse",                           # names no option
    "I don't know",
    "Nothing here matches.",
    "",
    "   ",
    "B or C",                            # two different options
    "Between A and B, hard to say",
    "It is a cat or a dog",              # two option texts
])
def test_replies_naming_no_single_option_give_none(reply):
    assert parse_choice(reply, OPTIONS) is None
    assert choice_correct(reply, "B", OPTIONS) is False  # counted wrong, never an error


def test_article_a_is_not_taken_for_option_a_but_option_text_still_counts():
    options = ["a dog runs", "a man walks", "a cat sleeps"]
    assert parse_choice("A man walks", options) == "B"     # its text, not the article
    assert parse_choice("A man walks.", ["a dog", "a cat"]) is None
    assert parse_choice("Answer: A man walks", ["a dog", "a cat"]) is None
    assert parse_choice("The answer is A", ["a dog", "a cat"]) == "A"
    assert parse_choice("(A) a dog", ["a dog", "a cat"]) == "A"


def test_pronoun_i_is_not_option_i():
    options = [f"option {i}" for i in range(10)]  # letters A..J include I
    assert parse_choice("I think J", options) == "J"
    assert parse_choice("I", options) == "I"


def test_longest_option_wins_when_one_contains_another():
    options = ["a dog", "a dog running", "a cat"]
    assert parse_choice("I see a dog running in the park", options) == "B"
    assert parse_choice("a dog", options) == "A"


def test_letters_outside_the_options_are_ignored():
    assert parse_choice("E", OPTIONS) is None
    assert parse_choice("E", None, letters="ABCDE") == "E"
    assert parse_choice("The answer is (B)", None, letters="AB") == "B"


def test_non_string_and_mapping_inputs():
    assert parse_choice(None, OPTIONS) is None
    assert parse_choice("B", {"A": "yes", "B": "no"}) == "B"
    assert parse_choice("no", {"A": "yes", "B": "no"}) == "B"


def test_video_mme_style_prefixed_options():
    options = ["A. 3.", "B. 5.", "C. 8.", "D. 9."]
    assert strip_option_prefix("C. 8.") == "8."
    assert parse_choice("8", options) == "C"
    assert parse_choice("The best answer is C.", options) == "C"


def test_answer_letter_accepts_labels_and_texts():
    assert answer_letter("B", OPTIONS) == "B"
    assert answer_letter("(c)", OPTIONS) == "C"
    assert answer_letter("a fish", OPTIONS) == "D"
    assert answer_letter("a horse", OPTIONS) is None
    assert choice_correct("I think B", "a dog", OPTIONS)


@pytest.mark.parametrize("reply, word", [
    ("Yes.", "yes"), ("No, it does not.", "no"), ("YES", "yes"), ("**No**. The car", "no"),
    ("  yes!", "yes"), ("'Yes'", "yes"), ("Maybe", "maybe"), ("", ""), ("No.\nThe ball", "no"),
])
def test_normalize_yes_no_is_the_first_word(reply, word):
    assert normalize_yes_no(reply) == word


def test_yes_no_scoring():
    assert parse_yes_no("Yes, a tyre falls off.") == "yes"
    assert parse_yes_no("Nope") is None
    assert parse_yes_no("The answer is yes") is None  # first word only, as EventHallusion's eval
    assert yes_no_correct("No.", "No.")
    assert yes_no_correct("yes, it does", "Yes.")
    assert not yes_no_correct("Yes", "No.")
    assert not yes_no_correct("", "Yes.")
    assert not yes_no_correct("Yes", "")


# issue 11, item 9: negation, self-correction, an option whose text is a letter, "yes—definitely"
@pytest.mark.parametrize("reply, expected", [
    ("The answer is not A.", None),      # ruled out, nothing chosen: no answer
    ("Not A.", None),
    ("Option A is wrong; B", "B"),       # self-correction
    ("B, not A", "B"),
    ("Not A, but B", "B"),
    ("A is not correct, B is.", "B"),
    ("The answer isn't (C), it is D", "D"),
    ("The answer is A, not B.", "A"),
    ("It is not a dog.", None),          # a negated option text names nothing
    ("not a dog but a cat", "A"),
])
def test_negated_options_are_not_chosen(reply, expected):
    assert parse_choice(reply, OPTIONS) == expected


def test_an_option_whose_text_is_the_letter_a_can_be_matched():
    options = ["E", "A", "I"]  # letters A, B, C; option B reads "A"
    assert parse_choice("The letter shown is A.", options) == "B"
    assert parse_choice("The letter shown is E.", options) == "A"
    assert parse_choice("A", options) == "A"  # a bare letter is the letter (explicit forms come first)


@pytest.mark.parametrize("reply, word", [("yes—definitely", "yes"), ("No—never.", "no"), ("Yes,it is", "yes"),
                                         ("yesterday", "yesterday")])
def test_yes_no_is_the_first_run_of_letters(reply, word):
    assert normalize_yes_no(reply) == word
