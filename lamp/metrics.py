"""Task metrics on a 0-100 scale, following ATTEMPT / DePT, computed with scikit-learn and scipy; free-form answers
with SQuAD's exact match and token F1 and with `rouge-score`'s ROUGE-L.

Every function has one signature, ``metric(predictions, labels, groups=None) -> {name: value}``, so task specs can
name any of them. Predictions may hold ``None`` for generated text that did not parse: an invalid prediction always
counts as wrong and never raises.
- binary metrics (Matthews, F1, MultiRC) score it as the other label (``1 - gold``): in a two-class task that is
  the only wrong answer;
- multi-class macro F1 scores it as a class of its own: a miss for the gold class, a false positive for no class;
- correlations score it as ``-1.0``, outside STS-B's 0-5 range (ATTEMPT's convention).
"""

from __future__ import annotations

import math
import re
import string
import warnings
from collections.abc import Sequence

import numpy as np

Prediction = int | float | None
Label = int | float

INVALID_REGRESSION = -1.0  # stands in for an unparseable number in correlations


def _check(predictions: Sequence[Prediction], labels: Sequence[Label]) -> None:
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")


def _binary(predictions: Sequence[Prediction], labels: Sequence[Label]) -> list[int]:
    """Binary predictions with each invalid one replaced by the wrong answer."""
    return [p if p in (0, 1) else 1 - int(gold) for p, gold in zip(predictions, labels, strict=True)]


def _finite(value: float) -> float:
    """Undefined statistics (constant inputs, empty sets) score 0 instead of NaN."""
    return value if math.isfinite(value) else 0.0


def accuracy(
    predictions: Sequence[Prediction], labels: Sequence[Label], groups: Sequence[str | None] | None = None
) -> dict[str, float]:
    """Percentage of exact matches; `groups` is accepted for the shared signature and ignored."""
    _check(predictions, labels)
    if not labels:
        return {"accuracy": 0.0}
    correct = sum(p is not None and p == gold for p, gold in zip(predictions, labels, strict=True))
    return {"accuracy": 100.0 * correct / len(labels)}


def matthews(
    predictions: Sequence[Prediction], labels: Sequence[Label], groups: Sequence[str | None] | None = None
) -> dict[str, float]:
    """Matthews correlation (CoLA) of binary labels."""
    from sklearn.metrics import matthews_corrcoef

    _check(predictions, labels)
    if not labels:
        return {"matthews_correlation": 0.0}
    with warnings.catch_warnings():  # one class only: sklearn warns and returns 0, which is what we want
        warnings.simplefilter("ignore", UserWarning)
        value = matthews_corrcoef([int(gold) for gold in labels], _binary(predictions, labels))
    return {"matthews_correlation": 100.0 * _finite(float(value))}


def pearson_spearman(
    predictions: Sequence[Prediction], labels: Sequence[Label], groups: Sequence[str | None] | None = None
) -> dict[str, float]:
    """Pearson and Spearman correlation (STS-B); unparseable predictions count as -1.0."""
    from scipy.stats import pearsonr, spearmanr

    _check(predictions, labels)
    values = [INVALID_REGRESSION if p is None else float(p) for p in predictions]
    gold = [float(x) for x in labels]
    if len(gold) < 2 or np.ptp(values) == 0 or np.ptp(gold) == 0:  # correlation undefined
        return {"pearson": 0.0, "spearman": 0.0}
    return {
        "pearson": 100.0 * _finite(float(pearsonr(values, gold)[0])),
        "spearman": 100.0 * _finite(float(spearmanr(values, gold)[0])),
    }


def f1_accuracy(
    predictions: Sequence[Prediction], labels: Sequence[Label], groups: Sequence[str | None] | None = None
) -> dict[str, float]:
    """F1 of the positive class (label 1) and accuracy (MRPC, QQP)."""
    from sklearn.metrics import f1_score

    _check(predictions, labels)
    if not labels:
        return {"f1": 0.0, "accuracy": 0.0}
    f1 = f1_score([int(gold) for gold in labels], _binary(predictions, labels), zero_division=0)
    return {"f1": 100.0 * float(f1), **accuracy(predictions, labels)}


def macro_f1_accuracy(
    predictions: Sequence[Prediction], labels: Sequence[Label], groups: Sequence[str | None] | None = None
) -> dict[str, float]:
    """Macro F1 over the classes seen in gold or valid predictions, and accuracy (CB)."""
    from sklearn.metrics import f1_score

    _check(predictions, labels)
    if not labels:
        return {"macro_f1": 0.0, "accuracy": 0.0}
    filled = [-1 if p is None else int(p) for p in predictions]
    classes = sorted({int(gold) for gold in labels} | {p for p in filled if p != -1})
    f1 = f1_score([int(gold) for gold in labels], filled, labels=classes, average="macro", zero_division=0)
    return {"macro_f1": 100.0 * float(f1), **accuracy(predictions, labels)}


def multirc_f1_em(
    predictions: Sequence[Prediction], labels: Sequence[Label], groups: Sequence[str | None] | None = None
) -> dict[str, float]:
    """MultiRC: F1 over all answers, and exact match per question (all of a question's answers right).

    `groups` holds each answer's question id; without it every answer is its own question.
    """
    from sklearn.metrics import f1_score

    _check(predictions, labels)
    if not labels:
        return {"f1": 0.0, "exact_match": 0.0}
    filled = _binary(predictions, labels)
    gold = [int(x) for x in labels]
    f1 = f1_score(gold, filled, zero_division=0)
    keys = list(groups) if groups is not None else list(range(len(gold)))
    if len(keys) != len(gold):
        raise ValueError(f"{len(keys)} groups for {len(gold)} labels")
    question_right: dict[object, bool] = {}
    for key, p, g in zip(keys, filled, gold, strict=True):
        question_right[key] = question_right.get(key, True) and p == g
    exact = sum(question_right.values()) / len(question_right)
    return {"f1": 100.0 * float(f1), "exact_match": 100.0 * exact}


def normalize_answer(text: str) -> str:
    """SQuAD's answer normalisation: lower case, drop punctuation and the articles a / an / the, collapse
    whitespace. Source: the official SQuAD v1.1 evaluation script (`normalize_answer` in evaluate-v1.1.py,
    https://rajpurkar.github.io/SQuAD-explorer/), as Hugging Face `evaluate`'s "squad" metric uses it."""

    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def token_f1(prediction: str, gold: str) -> float:
    """SQuAD's token F1 (0-1) of the normalised answers' bag of tokens (same source as `normalize_answer`)."""
    from collections import Counter

    predicted, wanted = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not predicted or not wanted:  # SQuAD v2's rule for empty answers: 1 if both are empty, else 0
        return float(predicted == wanted)
    common = sum((Counter(predicted) & Counter(wanted)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(wanted)
    return 2 * precision * recall / (precision + recall)


def generation(
    predictions: Sequence[str | None], labels: Sequence[str], groups: Sequence[str | None] | None = None
) -> dict[str, float]:
    """Free-form answers: exact match and token F1 after SQuAD's normalisation (`normalize_answer`), and ROUGE-L
    F-measure from Google's `rouge-score` package (its own tokenizer, no stemming); means over examples, 0-100. A
    missing prediction (None) is the empty answer."""
    from rouge_score import rouge_scorer

    _check(predictions, labels)
    if not labels:
        return {"exact_match": 0.0, "f1": 0.0, "rouge_l": 0.0}
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    pairs = [(p or "", str(gold)) for p, gold in zip(predictions, labels, strict=True)]
    exact = sum(normalize_answer(p) == normalize_answer(g) for p, g in pairs)
    f1 = sum(token_f1(p, g) for p, g in pairs)
    rouge = sum(scorer.score(g, p)["rougeL"].fmeasure for p, g in pairs)
    n = len(pairs)
    return {"exact_match": 100.0 * exact / n, "f1": 100.0 * f1 / n, "rouge_l": 100.0 * rouge / n}
