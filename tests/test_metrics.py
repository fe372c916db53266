"""Metric values against hand-computed cases, invalid predictions included (they count as wrong, never raise)."""

from __future__ import annotations

import math

import pytest

from lamp import metrics
from lamp.tasks import Example, get_task


def approx(value: float) -> object:
    return pytest.approx(value, abs=1e-9)


def test_accuracy_counts_none_as_wrong():
    assert metrics.accuracy([0, 1, None, 1], [0, 1, 1, 0]) == {"accuracy": approx(50.0)}
    assert metrics.accuracy([], []) == {"accuracy": 0.0}


def test_matthews_by_hand():
    # TP 1, FP 1, TN 2, FN 0: (1*2 - 1*0) / sqrt(2 * 1 * 3 * 2)
    expected = 100 * 2 / math.sqrt(12)
    assert metrics.matthews([1, 1, 0, 0], [1, 0, 0, 0]) == {"matthews_correlation": approx(expected)}
    # the invalid prediction on a gold 0 is scored as the wrong answer, 1: the same confusion matrix
    assert metrics.matthews([1, None, 0, 0], [1, 0, 0, 0]) == {"matthews_correlation": approx(expected)}
    assert metrics.matthews([0, 1], [0, 1]) == {"matthews_correlation": approx(100.0)}
    assert metrics.matthews([0, 0, 0], [0, 1, 0]) == {"matthews_correlation": approx(0.0)}  # undefined -> 0


def test_f1_accuracy_by_hand():
    # None on gold 0 -> predicted 1: TP 1, FP 2, FN 1 -> P 1/3, R 1/2, F1 0.4; one of four right
    assert metrics.f1_accuracy([1, 0, 1, None], [1, 1, 0, 0]) == {"f1": approx(40.0), "accuracy": approx(25.0)}
    assert metrics.f1_accuracy([0, 0], [0, 0]) == {"f1": approx(0.0), "accuracy": approx(100.0)}


def test_macro_f1_accuracy_by_hand():
    # class 0: P 1, R 1/2 -> 2/3; class 1: 1; class 2: a false positive and a miss -> 0
    result = metrics.macro_f1_accuracy([0, 1, None, 2], [0, 1, 2, 0])
    assert result == {"macro_f1": approx(100 * 5 / 9), "accuracy": approx(50.0)}
    # an invalid prediction is a miss for its gold class and a false positive for no class
    assert metrics.macro_f1_accuracy([None, 1], [0, 1]) == {"macro_f1": approx(50.0), "accuracy": approx(50.0)}


def test_pearson_spearman_by_hand():
    assert metrics.pearson_spearman([1.0, 2.0, 3.0], [1, 2, 3]) == {"pearson": approx(100.0), "spearman": approx(100.0)}
    # None -> -1.0: x = [1, 2, -1, 4], y = [1, 2, 3, 4]: cov 3, var 13 and 5 -> r = 3 / sqrt(65);
    # ranks [2, 3, 1, 4] vs [1, 2, 3, 4]: sum d^2 = 6 -> rho = 1 - 6 * 6 / (4 * 15) = 0.4
    result = metrics.pearson_spearman([1.0, 2.0, None, 4.0], [1, 2, 3, 4])
    assert result == {"pearson": approx(100 * 3 / math.sqrt(65)), "spearman": approx(40.0)}
    assert metrics.pearson_spearman([2.0, 2.0, 2.0], [1, 2, 3]) == {"pearson": 0.0, "spearman": 0.0}
    assert metrics.pearson_spearman([None, None], [1, 2]) == {"pearson": 0.0, "spearman": 0.0}


def test_multirc_f1_em_by_hand():
    labels, groups = [1, 0, 1, 1], ["a", "a", "b", "b"]
    # TP 2, FN 1 -> F1 0.8; question a all right, b not
    assert metrics.multirc_f1_em([1, 0, 1, 0], labels, groups) == {"f1": approx(80.0), "exact_match": approx(50.0)}
    # None on a gold 0 -> 1: TP 3, FP 1 -> F1 6/7; question a now wrong, b right
    result = metrics.multirc_f1_em([1, None, 1, 1], labels, groups)
    assert result == {"f1": approx(100 * 6 / 7), "exact_match": approx(50.0)}
    # without groups every answer is its own question
    assert metrics.multirc_f1_em([1, 0, 1, 0], labels)["exact_match"] == approx(75.0)


def test_lengths_must_match():
    with pytest.raises(ValueError):
        metrics.accuracy([1], [1, 0])


def test_task_metrics_score_is_mean_and_invalid_is_wrong():
    rte = get_task("rte")
    examples = [Example("s", "entailment", 0), Example("s", "not_entailment", 1)] * 2
    # 7 is out of range and 1.5 is not an index: both count as wrong, like None
    assert rte.compute_metrics([0, 7, None, 1.5], examples) == {"accuracy": approx(25.0), "score": approx(25.0)}
    mrpc = get_task("mrpc")
    result = mrpc.compute_metrics([1, 0, 1, None], [Example("s", "t", y) for y in (1, 1, 0, 0)])
    assert result == {"f1": approx(40.0), "accuracy": approx(25.0), "score": approx(32.5)}


def test_stsb_task_metrics_with_unparseable_text():
    stsb = get_task("stsb")
    examples = [Example("s", "1.0", 1.0), Example("s", "2.0", 2.0), Example("s", "3.0", 3.0), Example("s", "4.0", 4.0)]
    predictions = [stsb.parse(text) for text in ("1.0", "2", "three", "4.0")]
    assert predictions == [1.0, 2.0, None, 4.0]
    result = stsb.compute_metrics(predictions, examples)
    pearson, spearman = 100 * 3 / math.sqrt(65), 40.0
    assert result == {
        "pearson": approx(pearson),
        "spearman": approx(spearman),
        "score": approx((pearson + spearman) / 2),
    }


def test_multirc_task_metrics_use_groups():
    multirc = get_task("multirc")
    examples = [Example("s", "t", y, group=g) for y, g in zip([1, 0, 1, 1], ["0-0", "0-0", "0-1", "0-1"], strict=True)]
    result = multirc.compute_metrics([1, 0, 1, 0], examples)
    assert result == {"f1": approx(80.0), "exact_match": approx(50.0), "score": approx(65.0)}
