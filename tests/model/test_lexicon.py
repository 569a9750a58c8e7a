"""The lexicon features' rules (the reference the serving kernel reproduces) and the negation counterfactuals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from model.lexicon import FEATURES, NEGATION, VALENCE, LexiconFeatures, negation_counterfactuals


@pytest.fixture(scope="module")
def lexicon() -> LexiconFeatures:
    return LexiconFeatures().fit([])


def test_the_vader_lexicon_is_read_from_the_package(lexicon: LexiconFeatures) -> None:
    assert len(lexicon.entries_) > 7000 and lexicon.entries_["good"][0] == VALENCE
    assert lexicon.entries_["good"][1] > 0 > lexicon.entries_["bad"][1]
    assert lexicon.entries_["not"] == (NEGATION, 0.0)
    assert ":)" in lexicon.chunks_ and lexicon.chunks_[":)"] > 0


def test_plain_sentiment_words_are_summed_by_sign(lexicon: LexiconFeatures) -> None:
    good, bad = lexicon.entries_["good"][1], -lexicon.entries_["bad"][1]
    assert lexicon.score("good and bad") == pytest.approx((good, bad, 0.0, 0.0))
    assert lexicon.score("my flight is at 5pm") == (0.0, 0.0, 0.0, 0.0)


@pytest.mark.parametrize("text", ["not bad", "isn't bad", "don\u2019t think bad", "never was it bad", "no bad"])
def test_a_negation_within_the_window_moves_the_valence_to_the_negated_sums(
    lexicon: LexiconFeatures, text: str
) -> None:
    positive, negative, negated_positive, negated_negative = lexicon.score(text)
    assert positive == negative == negated_positive == 0.0 and negated_negative > 0


@pytest.mark.parametrize("text", ["not, bad", "not. bad", "not one two three bad", "cannot"])
def test_a_negation_stops_at_the_clause_end_and_the_window(lexicon: LexiconFeatures, text: str) -> None:
    assert lexicon.score(text)[2:] == (0.0, 0.0)


def test_no_negates_a_sentiment_word_after_it_and_is_negative_alone(lexicon: LexiconFeatures) -> None:
    no = lexicon.entries_["no"][1]
    assert no < 0
    assert lexicon.score("no complaints") == (0.0, 0.0, 0.0, -lexicon.entries_["complaints"][1])
    assert lexicon.score("no response") == (0.0, -no, 0.0, 0.0)
    assert lexicon.score("no, good")[0] > 0 and lexicon.score("no, good")[1] == -no


def test_contractions_negate_and_a_stray_t_does_not(lexicon: LexiconFeatures) -> None:
    kinds = [t.kind for t in lexicon.tokens("won't can't it't")]
    assert kinds == [NEGATION, NEGATION, NEGATION]  # "won" is not scored as a win
    assert [t.kind for t in lexicon.tokens("https://t.co/x good")][-1] == VALENCE
    assert lexicon.score("https://t.co/x good")[0] > 0  # the t of t.co negates nothing


def test_boosters_push_away_from_zero_with_distance_decay(lexicon: LexiconFeatures) -> None:
    good = lexicon.entries_["good"][1]
    very = lexicon.entries_["very"][1]
    assert lexicon.score("very good")[0] == pytest.approx(good + very)
    assert lexicon.score("very much so good")[0] == pytest.approx(good + very * 0.9 + lexicon.entries_["so"][1])
    assert lexicon.score("very bad")[1] == pytest.approx(-lexicon.entries_["bad"][1] + very)
    assert lexicon.score("barely good")[0] < good


def test_but_halves_what_comes_before_and_weighs_what_follows(lexicon: LexiconFeatures) -> None:
    good, bad = lexicon.entries_["good"][1], -lexicon.entries_["bad"][1]
    assert lexicon.score("good but bad")[:2] == pytest.approx((0.5 * good, 1.5 * bad))


def test_exclamation_marks_add_to_the_larger_side_up_to_four(lexicon: LexiconFeatures) -> None:
    good = lexicon.entries_["good"][1]
    assert lexicon.score("good!")[0] == pytest.approx(good + 0.292)
    assert lexicon.score("good!!!!!!!")[0] == pytest.approx(good + 4 * 0.292)
    assert lexicon.score("the meeting!!!") == (0.0, 0.0, 0.0, 0.0)


def test_emoticons_are_whole_chunks(lexicon: LexiconFeatures) -> None:
    assert lexicon.score(":)")[0] == pytest.approx(lexicon.chunks_[":)"])
    assert lexicon.score("x:)")[0] == 0.0


def test_transform_gives_scaled_log1p_and_the_no_sentiment_indicator() -> None:
    lexicon = LexiconFeatures(scale=2.0).fit([])
    rows = lexicon.transform(["good", "the meeting is at noon"]).toarray()
    assert rows.shape == (2, len(FEATURES))
    assert rows[0] == pytest.approx([2 * math.log1p(lexicon.entries_["good"][1]), 0, 0, 0, 0])
    assert np.array_equal(rows[1], [0, 0, 0, 0, 2.0])
    assert list(lexicon.get_feature_names_out()) == [f"lexicon:{n}" for n in FEATURES]


def test_counterfactuals_negate_the_one_word_a_label_rests_on(lexicon: LexiconFeatures) -> None:
    texts = ["The crew was great", "The food was awful", "great and awful", "The food was awful", "not great",
             "My flight is at 5pm", "The crew was great"]
    labels = ["positive", "negative", "positive", "positive", "negative", "neutral", "neutral"]
    made = negation_counterfactuals(texts, labels, lexicon)
    assert made == [(0, "the crew was not great", "negative"), (1, "the food was not awful", "neutral")]
