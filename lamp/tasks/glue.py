"""GLUE task specs (hub: `nyu-mll/glue`; local: the official TSV release, ``DATA_DIR/glue/<Task>/``).

Label words follow the hub's class order (so hub labels are indices into them) and T5 / DePT's targets. QQP, QNLI
and MNLI are too large for the shared offline data; their local specs follow the official release layout.
"""

from __future__ import annotations

from lamp import metrics
from lamp.tasks.base import Task, fields
from lamp.tasks.sources import Hub, LocalFiles, Tsv, rename
from lamp.tasks.splits import as_given, halve_validation, hold_out_train

GLUE = "nyu-mll/glue"
TRAIN_DEV = (("train", "train.tsv"), ("validation", "dev.tsv"))

TASKS = (
    Task(
        name="cola",
        label_words=("unacceptable", "acceptable"),
        formatter=fields("sentence"),
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
        metric=metrics.accuracy,
        hub=Hub(GLUE, "sst2"),
        local=LocalFiles("glue/SST-2", TRAIN_DEV, Tsv()),
        protocol=hold_out_train,
    ),
    Task(
        name="mrpc",
        label_words=("not_equivalent", "equivalent"),
        formatter=fields("sentence1", "sentence2"),
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
        metric=metrics.f1_accuracy,
        hub=Hub(GLUE, "qqp"),
        local=LocalFiles("glue/QQP", TRAIN_DEV, Tsv(), rename(label="is_duplicate")),
        protocol=hold_out_train,
    ),
    Task(
        name="stsb",
        label_words=tuple(f"{i / 5:.1f}" for i in range(26)),  # "0.0", "0.2", ..., "5.0"
        formatter=fields("sentence1", "sentence2"),
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
        metric=metrics.accuracy,
        hub=Hub(GLUE, "qnli"),
        local=LocalFiles("glue/QNLI", TRAIN_DEV, Tsv()),
        protocol=hold_out_train,
    ),
    Task(
        name="rte",
        label_words=("entailment", "not_entailment"),
        formatter=fields("sentence1", "sentence2"),
        metric=metrics.accuracy,
        hub=Hub(GLUE, "rte"),
        local=LocalFiles("glue/RTE", TRAIN_DEV, Tsv()),
        protocol=halve_validation,
    ),
)
