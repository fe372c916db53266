"""GLUE task specs (hub: `nyu-mll/glue`; local: the official TSV release, ``DATA_DIR/glue/<Task>/``).

Label words follow the hub's class order (so hub labels are indices into them) and T5 / DePT's targets; each
natural template's label words follow the same order. QQP, QNLI and MNLI are too large for the shared offline data;
their local specs follow the official release layout.
"""

from __future__ import annotations

from lamp import metrics
from lamp.tasks.base import Task, Template, fields
from lamp.tasks.sources import Hub, LocalFiles, Tsv, rename
from lamp.tasks.splits import as_given, halve_validation, hold_out_train

GLUE = "nyu-mll/glue"
TRAIN_DEV = (("train", "train.tsv"), ("validation", "dev.tsv"))
NO_YES = ("no", "yes")
SCORES = tuple(f"{i / 5:.1f}" for i in range(26))  # STS-B: "0.0", "0.2", ..., "5.0"

TASKS = (
    Task(
        name="cola",
        label_words=("unacceptable", "acceptable"),
        formatter=fields("sentence"),
        natural=Template("Sentence: {sentence}\nQuestion: Is this sentence grammatical?\nAnswer:", NO_YES),
        metric=metrics.matthews,
        hub=Hub(GLUE, "cola"),
        # the release has no header: source code, label, original judgement mark, sentence
        local=LocalFiles("glue/CoLA", TRAIN_DEV, Tsv(("source", "label", "mark", "sentence"))),
        protocol=halve_validation,
    ),
    Task(
        name="sst2",
        label_words=("negative", "positive"),
        formatter=fields("sentence"),
        natural=Template("Review: {sentence}\nSentiment:", ("negative", "positive")),
        metric=metrics.accuracy,
        hub=Hub(GLUE, "sst2"),
        local=LocalFiles("glue/SST-2", TRAIN_DEV, Tsv()),
        protocol=hold_out_train,
    ),
    Task(
        name="mrpc",
        label_words=("not_equivalent", "equivalent"),
        formatter=fields("sentence1", "sentence2"),
        natural=Template(
            "Sentence 1: {sentence1}\nSentence 2: {sentence2}\nQuestion: Do both sentences mean the same thing?"
            "\nAnswer:",
            NO_YES,
        ),
        metric=metrics.f1_accuracy,
        hub=Hub(GLUE, "mrpc"),
        local=LocalFiles(
            "glue/MRPC", TRAIN_DEV, Tsv(), rename(sentence1="#1 String", sentence2="#2 String", label="Quality")
        ),
        protocol=halve_validation,
    ),
    Task(
        name="qqp",
        label_words=("not_duplicate", "duplicate"),
        formatter=fields("question1", "question2"),
        natural=Template(
            "Question 1: {question1}\nQuestion 2: {question2}\nQuestion: Do both questions ask the same thing?"
            "\nAnswer:",
            NO_YES,
        ),
        metric=metrics.f1_accuracy,
        hub=Hub(GLUE, "qqp"),
        local=LocalFiles("glue/QQP", TRAIN_DEV, Tsv(), rename(label="is_duplicate")),
        protocol=hold_out_train,
    ),
    Task(
        name="stsb",
        label_words=SCORES,
        formatter=fields("sentence1", "sentence2"),
        natural=Template(
            "Sentence 1: {sentence1}\nSentence 2: {sentence2}\nQuestion: How similar are the two sentences, from "
            "0.0 to 5.0?\nAnswer:",
            SCORES,
        ),
        metric=metrics.pearson_spearman,
        hub=Hub(GLUE, "stsb"),
        local=LocalFiles("glue/STS-B", TRAIN_DEV, Tsv(), rename(label="score")),
        protocol=halve_validation,
        is_regression=True,
    ),
    Task(
        name="mnli",
        label_words=("entailment", "neutral", "contradiction"),
        formatter=fields("premise", "hypothesis"),
        natural=Template(  # CB's template (chosen on CB's validation set; MNLI is not at hand offline)
            '{premise}\nQuestion: Does this imply that "{hypothesis}"? Yes, no, or maybe?\nAnswer:',
            ("yes", "maybe", "no"),
        ),
        metric=metrics.accuracy,
        # mismatched selects models, matched is reported (ATTEMPT / DePT)
        hub=Hub(
            GLUE, "mnli", (("train", "train"), ("validation", "validation_mismatched"), ("test", "validation_matched"))
        ),
        local=LocalFiles(
            "glue/MNLI",
            (("train", "train.tsv"), ("validation", "dev_mismatched.tsv"), ("test", "dev_matched.tsv")),
            Tsv(),
            rename(premise="sentence1", hypothesis="sentence2", label="gold_label"),
        ),
        protocol=as_given,
    ),
    Task(
        name="qnli",
        label_words=("entailment", "not_entailment"),
        formatter=fields("question", "sentence"),
        natural=Template(
            '{sentence}\nQuestion: Does this sentence answer the question "{question}"?\nAnswer:', ("yes", "no")
        ),
        metric=metrics.accuracy,
        hub=Hub(GLUE, "qnli"),
        local=LocalFiles("glue/QNLI", TRAIN_DEV, Tsv()),
        protocol=hold_out_train,
    ),
    Task(
        name="rte",
        label_words=("entailment", "not_entailment"),
        formatter=fields("sentence1", "sentence2"),
        natural=Template("{sentence1}\nQuestion: {sentence2} True or False?\nAnswer:", ("True", "False")),
        metric=metrics.accuracy,
        hub=Hub(GLUE, "rte"),
        local=LocalFiles("glue/RTE", TRAIN_DEV, Tsv()),
        protocol=halve_validation,
    ),
)
