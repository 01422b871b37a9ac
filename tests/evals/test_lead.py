"""Lead-N: sentence splitting of news and generated text, exact ROUGE of lead-3, the flag."""

import pytest

from llm.config import load_config
from llm.errors import ConfigError
from llm.evals.lead import lead, lead_eval, lead_rouge, parse_baseline, split_sentences


@pytest.mark.parametrize(
    "text, sentences",
    [
        (
            "Mr. Smith went to Washington. He met J. K. Rowling there! Was it fun? Yes.",
            ["Mr. Smith went to Washington.", "He met J. K. Rowling there!", "Was it fun?", "Yes."],
        ),
        ('He said "stop." Then he left.', ['He said "stop."', "Then he left."]),
        (
            "U.S. officials met on Monday. 3 people died.",
            ["U.S. officials met on Monday.", "3 people died."],
        ),
        # Tokenized text (tiny_summaries): a detached mark ends a sentence before lowercase.
        (
            "the mayor spoke . it rained . the end .",
            ["the mayor spoke .", "it rained .", "the end ."],
        ),
        ("no mark at the end", ["no mark at the end"]),
        ("", []),
    ],
)
def test_split_sentences(text, sentences):
    assert split_sentences(text) == sentences


def test_lead_takes_the_first_n_sentences():
    text = "One. Two! Three? Four."
    assert lead(text, 3) == "One. Two! Three?"
    assert lead(text, 9) == text
    with pytest.raises(ConfigError, match="n must be >= 1"):
        lead(text, 0)


def test_lead3_rouge_of_a_hand_made_example():
    source = "The cat sat. It was warm! Dogs barked? Birds sang."
    # Lead-3 has 8 tokens, the reference 6: 3 unigrams ('the cat sat') and 2 bigrams in
    # common; F = 2PR / (P + R) with P = 3/8, R = 3/6 and P = 2/7, R = 2/5.
    scores = lead_rouge([source], ["the cat sat on the mat"], 3)
    assert scores == pytest.approx(
        {"lead3_rouge1": 300 / 7, "lead3_rouge2": 100 / 3, "lead3_rougeL": 300 / 7}
    )


@pytest.mark.parametrize("value, n", [("", 0), ("lead3", 3), ("LEAD1", 1), ("lead12", 12)])
def test_parse_baseline(value, n):
    assert parse_baseline(value) == n


@pytest.mark.parametrize("value", ["lead", "lead0", "lead-3", "oracle", "3"])
def test_parse_baseline_refuses_other_values(value):
    with pytest.raises(ConfigError, match="use 'lead3'"):
        parse_baseline(value)


def test_lead_eval_refuses_translation_runs():
    config = load_config("experiments/aiayn.py:tiny")
    with pytest.raises(ConfigError, match="summarization baseline.*tiny_numbers"):
        lead_eval(config.data, "validation", 3)
