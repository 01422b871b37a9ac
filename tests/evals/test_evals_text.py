"""BLEU and ROUGE wrappers agree with direct sacrebleu and rouge-score calls."""

import pytest
import sacrebleu
from rouge_score import rouge_scorer

from llm.evals import corpus_bleu, rouge

HYPS = ["The cat sat on the mat.", "A dog barked loudly at night.", "It is raining today"]
REFS = ["The cat sat on the mat.", "The dog barked loudly all night.", "It rains today."]
REFS2 = ["A cat was sitting on the mat.", "A dog barked at night.", "Today it is raining."]


def test_bleu_equals_sacrebleu():
    result = corpus_bleu(HYPS, REFS)
    direct = sacrebleu.corpus_bleu(HYPS, [REFS])
    assert result.score == pytest.approx(direct.score, abs=1e-9)
    assert 0 < result.score < 100
    assert result.signature.startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    assert corpus_bleu(REFS, REFS).score == pytest.approx(100.0)


def test_bleu_multiple_references_and_options():
    result = corpus_bleu(HYPS, [REFS, REFS2], lowercase=True, tokenize="intl")
    direct = sacrebleu.corpus_bleu(HYPS, [REFS, REFS2], lowercase=True, tokenize="intl")
    assert result.score == pytest.approx(direct.score, abs=1e-9)
    assert (
        "nrefs:2" in result.signature
        and "case:lc" in result.signature
        and "tok:intl" in result.signature
    )


def test_bleu_rejects_misaligned_references():
    with pytest.raises(ValueError, match="reference stream 0 has 2 lines"):
        corpus_bleu(HYPS, REFS[:2])
    with pytest.raises(ValueError, match="empty corpus"):
        corpus_bleu([], [])


@pytest.mark.parametrize("use_stemmer", [True, False])
def test_rouge_equals_mean_rouge_score_fmeasure(use_stemmer):
    types = ["rouge1", "rouge2", "rougeL"]
    got = rouge(HYPS, REFS, use_stemmer=use_stemmer)
    scorer = rouge_scorer.RougeScorer(types, use_stemmer=use_stemmer)
    per_example = [scorer.score(ref, hyp) for hyp, ref in zip(HYPS, REFS, strict=True)]
    for name in types:
        expected = 100 * sum(s[name].fmeasure for s in per_example) / len(HYPS)
        assert got[name] == pytest.approx(expected, abs=1e-9)
    assert set(got) == set(types)


def test_rouge_stemming_matters_and_is_exact_on_identity():
    # "raining" and "rains" share the stem "rain" only with stemming.
    with_stem = rouge(["it rains"], ["it raining"], rouge_types=["rouge1"], use_stemmer=True)
    without = rouge(["it rains"], ["it raining"], rouge_types=["rouge1"], use_stemmer=False)
    assert with_stem["rouge1"] == pytest.approx(100.0)
    assert without["rouge1"] == pytest.approx(50.0)
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        rouge(["a", "b"], ["a"])
