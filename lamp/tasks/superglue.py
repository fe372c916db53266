"""SuperGLUE task specs (hub: `aps/super_glue`; local: the official JSONL release, ``DATA_DIR/superglue/<Task>/``).

Label words follow the hub's class order and T5 / DePT's targets; each natural template's label words follow the
same order. The shared offline data lacks COPA and WiC and BoolQ's train split: those load from the hub (or from a
data folder with the full release).
"""

from __future__ import annotations

from typing import Any

from lamp import metrics
from lamp.tasks.base import Row, Task, Template, clean, fields
from lamp.tasks.sources import Hub, LocalFiles, read_jsonl
from lamp.tasks.splits import halve_validation

SUPER_GLUE = "aps/super_glue"
TRAIN_VAL = (("train", "train.jsonl"), ("validation", "val.jsonl"))
YES_NO = ("False", "True")
NO_YES = ("no", "yes")  # natural label words of the YES_NO tasks


def multirc_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """A release paragraph (nested questions and answers) -> one hub row per answer."""
    paragraph = record["passage"]
    return [
        {
            "paragraph": paragraph["text"],
            "question": question["question"],
            "answer": answer["text"],
            "idx": {"paragraph": record["idx"], "question": question["idx"], "answer": answer["idx"]},
            "label": answer["label"],
        }
        for question in paragraph["questions"]
        for answer in question["answers"]
    ]


def multirc_question(row: Row) -> str:
    """A MultiRC answer's question id: exact match is per question, and splits keep a question's answers together."""
    return f"{row['idx']['paragraph']}-{row['idx']['question']}"


def wsc_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """A release record (spans nested under ``target``) -> the hub's flat `wsc.fixed` row."""
    return [{**{key: value for key, value in record.items() if key != "target"}, **record["target"]}]


def wsc_text(row: Row) -> str:
    """T5's WSC input: the noun phrase (span 1) marked ``* ... *`` and the pronoun (span 2) ``# ... #``, found by
    word index in the whitespace-split text."""
    words = str(row["text"]).split()
    spans = [(int(row[f"span{k}_index"]), len(str(row[f"span{k}_text"]).split()), mark) for k, mark in ("1*", "2#")]
    for start, length, mark in sorted(spans, reverse=True):  # later span first keeps earlier indices valid
        if not 0 <= start < len(words):
            raise ValueError(f"span index {start} outside the text's {len(words)} words")
        words[start : start + length] = [mark, *words[start : start + length], mark]
    return f"text: {clean(' '.join(words))}"


TASKS = (
    Task(
        name="boolq",
        label_words=YES_NO,
        formatter=fields("question", "passage"),
        natural=Template("{passage}\nQuestion: {question}?\nAnswer:", NO_YES),
        metric=metrics.accuracy,
        hub=Hub(SUPER_GLUE, "boolq"),
        local=LocalFiles("superglue/BoolQ", TRAIN_VAL, read_jsonl),  # the shared data has no train.jsonl
        protocol=halve_validation,
    ),
    Task(
        name="cb",
        label_words=("entailment", "contradiction", "neutral"),
        formatter=fields("premise", "hypothesis"),
        natural=Template(
            '{premise}\nQuestion: Does this imply that "{hypothesis}"? Yes, no, or maybe?\nAnswer:',
            ("yes", "no", "maybe"),
        ),
        metric=metrics.macro_f1_accuracy,
        hub=Hub(SUPER_GLUE, "cb"),
        local=LocalFiles("superglue/CB", TRAIN_VAL, read_jsonl),
        protocol=halve_validation,
    ),
    Task(
        name="copa",
        label_words=("choice1", "choice2"),
        formatter=fields("premise", "question", "choice1", "choice2"),  # question: "cause" or "effect"
        # " A" / " B" start with different tokens, so rank classification reads one position
        natural=Template("{premise} What was the {question}?\nA: {choice1}\nB: {choice2}\nAnswer:", ("A", "B")),
        metric=metrics.accuracy,
        hub=Hub(SUPER_GLUE, "copa"),
        local=LocalFiles("superglue/COPA", TRAIN_VAL, read_jsonl),
        protocol=halve_validation,
    ),
    Task(
        name="multirc",
        label_words=YES_NO,
        formatter=fields("question", "answer", "paragraph"),
        natural=Template(
            "{paragraph}\nQuestion: {question}\nCandidate answer: {answer}\nIs the candidate answer correct?\nAnswer:",
            NO_YES,
        ),
        metric=metrics.multirc_f1_em,
        hub=Hub(SUPER_GLUE, "multirc"),
        local=LocalFiles("superglue/MultiRC", TRAIN_VAL, read_jsonl, multirc_rows),
        protocol=halve_validation,  # halves by question: a question's answers never straddle splits
        group=multirc_question,
    ),
    Task(
        name="wic",
        label_words=YES_NO,
        formatter=fields("sentence1", "sentence2", "word"),
        natural=Template(
            'Sentence 1: {sentence1}\nSentence 2: {sentence2}\nQuestion: Is the word "{word}" used in the same '
            "sense in both sentences?\nAnswer:",
            NO_YES,
        ),
        metric=metrics.accuracy,
        hub=Hub(SUPER_GLUE, "wic"),
        local=LocalFiles("superglue/WiC", TRAIN_VAL, read_jsonl),
        protocol=halve_validation,
    ),
    Task(
        name="wsc",
        label_words=YES_NO,
        formatter=wsc_text,
        natural=Template(
            '{text}\nQuestion: In the passage above, does the pronoun "{span2_text}" refer to "{span1_text}"?\nAnswer:',
            NO_YES,
        ),
        metric=metrics.accuracy,
        hub=Hub(SUPER_GLUE, "wsc.fixed"),
        local=LocalFiles("superglue/WSC", TRAIN_VAL, read_jsonl, wsc_rows),
        protocol=halve_validation,
    ),
    Task(
        name="superglue-rte",
        label_words=("entailment", "not_entailment"),
        formatter=fields("premise", "hypothesis"),
        natural=Template("{premise}\nQuestion: {hypothesis} True or False?\nAnswer:", ("True", "False")),
        metric=metrics.accuracy,
        hub=Hub(SUPER_GLUE, "rte"),
        local=LocalFiles("superglue/RTE", TRAIN_VAL, read_jsonl),
        protocol=halve_validation,
    ),
)
