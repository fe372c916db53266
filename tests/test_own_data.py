"""A user's own data: CSV / JSONL / Parquet files and a YAML spec become tasks that train, evaluate and predict on a
tiny model through the CLI and the API; splits follow the built-in rules; free-form answers are scored by
generation; the loss covers the target tokens only."""

from __future__ import annotations

import dataclasses
import json
import random
import re
import shutil

import pytest

import lamp.tasks.user
from lamp.cli import main
from lamp.data import collate_train, encode
from lamp.errors import ConfigError, DataError
from lamp.metrics import generation, normalize_answer
from lamp.model import IGNORE_INDEX
from lamp.progress import bars_disabled, progress
from lamp.tasks import TaskSpec, load_splits, spec_of, task_of
from lamp.tasks.files import user_rows
from lamp.train import TrainConfig, train

from .conftest import make_llama, make_t5, make_tokenizer

POSITIVE, NEGATIVE = "good great fun".split(), "bad terrible boring".split()
FILLER = "the a movie film was is very it".split()
TEMPLATE = "review {text} sentiment"


def reviews(n: int, seed: int = 0) -> list[dict]:
    """Rows ``{"text", "sentiment"}``: filler words and one polar word; sentiment "pos" / "neg"."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.randint(0, 1)
        words = [*rng.sample(FILLER, 3), rng.choice(POSITIVE if label else NEGATIVE)]
        rng.shuffle(words)
        rows.append({"text": " ".join(words), "sentiment": "pos" if label else "neg"})
    return rows


def questions(n: int, seed: int = 0) -> list[dict]:
    """Rows ``{"question", "answer"}``: "the movie was good" -> "positive" (a free-form target)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        word = rng.choice(POSITIVE + NEGATIVE)
        rows.append({"question": f"the movie was {word}", "answer": "positive" if word in POSITIVE else "negative"})
    return rows


def write_csv(path, rows: list[dict]):
    names = list(rows[0])
    path.write_text(",".join(names) + "\n" + "".join(",".join(row[k] for k in names) + "\n" for row in rows))
    return path


def sentiment_task_file(folder):
    """`folder`/sentiment.yaml over train.csv (30 reviews) and dev.csv (10); returns the folder."""
    folder.mkdir()
    write_csv(folder / "train.csv", reviews(30))
    write_csv(folder / "dev.csv", reviews(10, seed=3))
    (folder / "sentiment.yaml").write_text(
        "train_file: train.csv\nvalidation_file: dev.csv\ntemplate: 'review {text} sentiment'\n"
        "label_words: [negative, positive]\nlabel_values: [neg, pos]\nlabel_field: sentiment\n"
    )
    return folder


def write_jsonl(path, rows: list[dict]):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.delenv("LAMP_DATA_DIR", raising=False)


SHORT = ["--method", "pt", "--length", "4", "--lr", "0.3", "--max-steps", "6", "--eval-every", "3"]
SHORT += ["--batch-size", "8", "--warmup-steps", "0", "--seed", "0"]


def test_csv_classification_trains_evaluates_and_predicts_from_the_cli(llama_dir, tmp_path, capsys):
    data = write_csv(tmp_path / "reviews.csv", reviews(50))
    out = tmp_path / "run"
    flags = ["--train-file", str(data), "--template", TEMPLATE, "--label-words", "negative,positive"]
    flags += ["--label-values", "neg,pos", "--label-field", "sentiment"]
    assert main(["train", "--model", llama_dir, *flags, *SHORT, "--out", str(out)]) == 0
    # the tiny backbone's 256 positions hold the prompt, an input and its answer: a limit, said as one
    assert re.search(r"--max-length lowered to \d+ tokens so that the prompt's \d+ rows", capsys.readouterr().out)
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == "reviews", "named by the file when --task names no new task"
    assert results["split_sizes"] == {"train": 40, "validation": 5, "test": 5}, "one file: 80 / 10 / 10"
    assert set(results["test"]) == {"accuracy", "score"} and results["scorer"] == "rank"
    saved = json.loads((out / "adapter" / "adapter.json").read_text())
    assert saved["task"] == "reviews" and saved["task_spec"]["label_values"] == ["neg", "pos"]
    assert (saved["seed"], saved["max_length"]) == (0, 256)

    capsys.readouterr()
    # task, split seed (0, not the default 42) and max length: the adapter's own, so the test rows are the run's
    assert main(["eval", "--adapter", str(out / "adapter"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == pytest.approx(results["test"])

    rows = [{"task": "reviews", "id": i, **row} for i, row in enumerate(reviews(6, seed=9))]
    write_jsonl(tmp_path / "rows.jsonl", rows)
    assert main(["predict", "--adapter", str(out / "adapter"), "--input", str(tmp_path / "rows.jsonl")]) == 0
    captured = capsys.readouterr()
    predictions = [json.loads(line) for line in captured.out.splitlines()]
    assert [p["id"] for p in predictions] == list(range(6))
    assert all(p["prediction"] in ("negative", "positive") for p in predictions)
    assert "reviews: accuracy" in captured.err, "rows carrying their label field are scored"

    # TASK= renames a task of your own: the adapter's saved spec serves rows of that name, beside its own name
    renamed = [{**row, "task": "mine" if i % 2 else "reviews"} for i, row in enumerate(rows)]
    write_jsonl(tmp_path / "renamed.jsonl", renamed)
    adapters = ["--adapter", str(out / "adapter"), "--adapter", f"mine={out / 'adapter'}"]
    assert main(["predict", *adapters, "--input", str(tmp_path / "renamed.jsonl")]) == 0
    both = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [p["prediction"] for p in both] == [p["prediction"] for p in predictions], "the same adapter, renamed"
    assert [p["task"] for p in both] == [row["task"] for row in renamed]

    # the run's own record is a --config of the same settings (was: `unknown keys task_spec`, then `--task polarity
    # is a built-in task`): the data flags recorded beside the spec rebuild it
    from lamp.cli import build_parser
    from lamp.commands.train import config_from_args

    parse = build_parser().parse_args
    again = config_from_args(parse(["train", "--config", str(out / "train_config.json")]), TrainConfig)
    first = config_from_args(parse(["train", "--model", llama_dir, *flags, *SHORT, "--out", str(out)]), TrainConfig)
    assert again == first and again.task_spec().name == "reviews"


def test_jsonl_generation_trains_on_targets_only_and_scores_by_generation(llama_dir, tmp_path, capsys, monkeypatch):
    train_file = write_jsonl(tmp_path / "qa.jsonl", questions(40))
    test_file = write_jsonl(tmp_path / "qa-test.jsonl", questions(8, seed=1))
    spec = TaskSpec(
        name="qa",
        train_file=str(train_file),
        test_file=str(test_file),
        template="question {question} answer",
        target_field="answer",
        max_new_tokens=3,
    )
    task = spec.task()
    splits = load_splits(task)
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [36, 4, 8], "10% of train selects models"
    example = splits["train"][0]
    assert example.target in ("positive", "negative") and example.label == example.target

    tokenizer = make_tokenizer()
    encoded = encode([example], tokenizer, "causal", 64)[0]
    labels = collate_train([encoded], 0, "causal")["labels"][0].tolist()
    assert labels[: len(encoded.source)] == [IGNORE_INDEX] * len(encoded.source), "no loss on the input"
    assert labels[len(encoded.source) :] == encoded.target, "loss on the target and its EOS"

    config = TrainConfig(
        task="qa",
        model=llama_dir,
        train_file=str(train_file),
        test_file=str(test_file),
        template="question {question} answer",
        target_field="answer",
        max_new_tokens=3,
        method="pt",
        length=4,
        lr=0.3,
        max_steps=6,
        eval_every=3,
        batch_size=8,
        out=str(tmp_path / "run"),
    )
    reads = []
    monkeypatch.setattr(lamp.tasks.user, "user_rows", lambda data: reads.append(data) or user_rows(data))
    results = train(config)
    assert len(reads) == 1, "a run reads and parses its data files once"
    assert results["scorer"] == "generate" and results["task"] == "qa"
    assert set(results["test"]) == {"exact_match", "f1", "rouge_l", "score"}
    assert set(results["zero_shot"]) == set(results["test"])

    capsys.readouterr()
    assert main(["eval", "--adapter", str(tmp_path / "run" / "adapter"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == pytest.approx(results["test"])
    write_jsonl(tmp_path / "rows.jsonl", [{"task": "qa", **row} for row in questions(3, seed=2)])
    assert (
        main(["predict", "--adapter", str(tmp_path / "run" / "adapter"), "--input", str(tmp_path / "rows.jsonl")]) == 0
    )
    captured = capsys.readouterr()
    assert all("text" in json.loads(line) for line in captured.out.splitlines())
    assert "qa: exact_match" in captured.err


def test_yaml_spec_is_a_task_file_with_relative_paths_and_flags_on_top(llama_dir, tmp_path, capsys):
    folder = sentiment_task_file(tmp_path / "tasks")
    spec = spec_of(str(folder / "sentiment.yaml"))
    assert spec.name == "sentiment" and spec.train_file == str(folder / "train.csv")
    splits = load_splits(spec.task())
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [30, 5, 5], "validation halved, as RTE's"
    assert spec_of(str(folder / "sentiment.yaml"), {"label_field": "mood"}).label_field == "mood"

    out = tmp_path / "run"
    assert (
        main(["train", "--model", llama_dir, "--task", str(folder / "sentiment.yaml"), *SHORT, "--out", str(out)]) == 0
    )
    assert json.loads((out / "results.json").read_text())["task"] == "sentiment"
    capsys.readouterr()
    assert main(["eval", "--adapter", str(out / "adapter"), "--task", str(folder / "sentiment.yaml"), "--json"]) == 0
    assert "accuracy" in json.loads(capsys.readouterr().out)


def test_parquet_tsv_and_a_local_dataset_folder_load_like_csv(tmp_path):
    import pandas as pd

    rows = reviews(20)
    pd.DataFrame(rows).to_parquet(tmp_path / "r.parquet")
    pd.DataFrame(rows).to_csv(tmp_path / "r.tsv", sep="\t", index=False)
    folder = tmp_path / "hub-like"
    folder.mkdir()
    write_csv(folder / "train.csv", rows)
    write_csv(folder / "test.csv", reviews(6, seed=5))
    common = {"template": TEMPLATE, "label_words": "negative,positive", "label_values": "neg,pos"}
    common["label_field"] = "sentiment"
    texts = None
    for source in ({"train_file": str(tmp_path / "r.parquet")}, {"train_file": str(tmp_path / "r.tsv")}):
        splits = load_splits(spec_of("mine", {**common, **source}).task())
        assert texts is None or [e.source for e in splits["train"]] == texts
        texts = [e.source for e in splits["train"]]
    splits = load_splits(spec_of("mine", {**common, "dataset": str(folder)}).task())
    assert len(splits["test"]) == 6 and len(splits["train"]) + len(splits["validation"]) == 20


def test_labels_match_label_values_words_or_indices(tmp_path):
    base = dict(name="mine", template="{text}", label_words=("negative", "positive"), train_file="x.csv")
    task = TaskSpec(**base, label_values=("-1", "1")).task()
    assert [task.label_of(v) for v in (-1, 1, "-1", "1")] == [0, 1, 0, 1], "a value before an index"
    stars = TaskSpec(**base, label_values=("2", "5")).task()  # given values are the labels, never positions in them
    assert [stars.label_of(v) for v in ("2", 5)] == [0, 1]
    for other in ("1", 1, 0, "0", True):
        with pytest.raises(ValueError, match=r"is not one of the label values \['2', '5'\]"):
            stars.label_of(other)
    task = TaskSpec(**base).task()
    assert [task.label_of(v) for v in ("negative", "positive", 0, 1, "1")] == [0, 1, 0, 1, 1]
    # spaces around a label are dropped, as around the label words (was: `' positive'` refused by lamp predict)
    assert [task.label_of(v) for v in (" positive", "negative\n", " 1 ")] == [1, 0, 1]
    with pytest.raises(ValueError):
        task.label_of("maybe")


def test_a_free_form_target_must_be_text_or_a_number():
    task = TaskSpec(name="qa", template="Q: {question}\nA:", target_field="answer", train_file="x.jsonl").task()
    assert [task.label_of(v) for v in ("Paris", 12, 2.5)] == ["Paris", "12", "2.5"]  # a JSON number reads as written
    for value in (True, ["yes", "no"], {"a": 1}):  # was: trained on Python's rendering of it ('True', "['yes', 'no']")
        with pytest.raises(ValueError, match=f"^target field 'answer' holds {re.escape(repr(value))}, not text$"):
            task.label_of(value)


def test_file_rows_outside_the_label_values_or_with_a_non_text_answer_are_refused(tmp_path):
    (tmp_path / "stars.csv").write_text("text,stars\ngood film,5\nbad film,1\nfine,5\nawful,1\n")
    (tmp_path / "qa.jsonl").write_text('{"question": "a", "answer": ["yes", "no"]}\n{"question": "b", "answer": 4}\n')
    words = {"label_words": ("negative", "positive"), "label_field": "stars", "label_values": ("2", "5")}
    stars = TaskSpec(name="stars", train_file=str(tmp_path / "stars.csv"), template="R: {text}", **words)
    with pytest.raises(DataError) as refused:  # was: the 1-star rows read as index 1, positive
        load_splits(stars.task())
    assert str(refused.value) == (
        f"{tmp_path / 'stars.csv'}: label values '1' (first at {tmp_path / 'stars.csv'} row 2) are not the task's "
        "labels '2', '5': fix the rows, or give --label-values the file's values"
    )
    qa = TaskSpec(name="qa", train_file=str(tmp_path / "qa.jsonl"), template="Q: {question}", target_field="answer")
    with pytest.raises(DataError, match=r"qa.jsonl row 1: target field 'answer' holds \['yes', 'no'\], not text: fix"):
        load_splits(qa.task())


def test_spec_checks_name_the_key_and_the_fix():
    good = dict(name="mine", template="{text}", train_file="x.csv")
    cases = [
        ({**good, "label_words": "a,b", "target_field": "y"}, "pass exactly one"),
        ({**good}, "pass exactly one"),
        ({**good, "template": "no fields", "label_words": "a,b"}, "must name the row's fields in braces"),
        ({**good, "template": "{text", "label_words": "a,b"}, "is not a valid template"),
        ({**good, "label_words": "a"}, "at least two different"),
        ({**good, "label_words": "(a, b)"}, r"is a list in brackets"),
        ({**good, "label_words": '"a","b"'}, r"has quoted words: write them without quotes"),
        (
            {**good, "label_words": [False, True]},
            r"label_words lists False: YAML reads unquoted true and false as bool",
        ),
        ({**good, "label_words": [1.1, 1.2]}, r"label_words lists 1.1: YAML read that item as a number, .* quote each"),
        ({**good, "label_words": "a,b", "label_values": [10.0, 1000.0]}, r"label_values lists 10.0: YAML read that"),
        ({**good, "label_words": ["a", None]}, r"label_words lists None, which is not a word"),
        ({**good, "name": 1000.0}, r"task name must be non-empty text, got 1000.0 \(YAML read it as a number: quote"),
        ({**good, "label_field": None, "name": True}, r"task name must be .*got True \(YAML reads unquoted true and"),
        ({**good, "label_words": "a,"}, r"at least two different, non-empty words, got \['a', ''\]: e\.g\. negative"),
        ({**good, "label_words": "[a, b]"}, r"label_words '\[a, b\]' is a list in brackets: write the words comma-sep"),
        ({**good, "label_words": "a,b", "label_values": "x,y,z"}, "one value per label word"),
        ({**good, "dataset": "o/n", "label_words": "a,b"}, "not both"),
        ({**good, "target_field": "y", "max_new_tokens": 0}, "max_new_tokens must be a positive integer"),
    ]
    for values, message in cases:
        with pytest.raises(ConfigError, match=message):
            TaskSpec(**values)
    options = {"train_file": "rte.csv", "template": "{x}", "label_words": "a,b"}
    with pytest.raises(ConfigError, match=r"--task rte is a built-in task, which reads its own data: .*--task my-rte"):
        spec_of("rte", options)  # the user's files must not silently replace a named built-in task's data
    with pytest.raises(ConfigError, match="is a built-in task's"):
        spec_of("polarity", options, default="polarity")  # unset --task: named after the file, here a built-in name
    assert spec_of("polarity", {**options, "train_file": "mine.csv"}, default="polarity").name == "mine"
    assert spec_of("rte") is None and task_of("rte").name == "rte", "built-in tasks are untouched"


def test_t5_backbone_trains_a_user_generation_task(tmp_path):
    path = tmp_path / "t5"
    make_t5().save_pretrained(path)
    make_tokenizer(padding_side="right").save_pretrained(path)
    data = write_jsonl(tmp_path / "qa.jsonl", questions(30))
    config = TrainConfig(
        model=str(path),
        train_file=str(data),
        template="question {question} answer",
        target_field="answer",
        max_new_tokens=3,
        method="pt",
        length=4,
        max_steps=4,
        eval_every=2,
        batch_size=8,
        out=str(tmp_path / "run"),
    )
    results = train(config)
    assert results["format"] == "t5" and set(results["test"]) == {"exact_match", "f1", "rouge_l", "score"}


def test_generation_metrics_follow_squad_and_rouge_score():
    assert normalize_answer("The  Cat, sat!") == "cat sat"
    values = generation(["the cat sat", "a dog", None], ["Cat sat.", "dog barked", "x"])
    assert values["exact_match"] == pytest.approx(100 / 3)
    assert values["f1"] == pytest.approx(100 * (1 + 2 / 3 + 0) / 3)
    # rouge_score's LCS F-measure on lower-cased word tokens: "the cat sat" / "cat sat" has LCS 2, P 2/3, R 1,
    # F 0.8; "a dog" / "dog barked" LCS 1, F 0.5; a missing answer 0
    assert values["rouge_l"] == pytest.approx(100 * (0.8 + 0.5 + 0) / 3)


def test_progress_bars_follow_tqdm_disable(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert bars_disabled() and progress(total=3).disable
    monkeypatch.setenv("TQDM_DISABLE", "0")
    assert not bars_disabled()
    assert progress(total=3, enabled=False).disable


def test_chat_template_wraps_a_user_generation_task_and_travels_with_its_adapter(tmp_path, capsys):
    """--chat-template on a user task: each input is the user's message, the answer the assistant's turn; the
    adapter records it, so eval renders rows the same way."""
    from lamp.data import chat_wrapper

    path = tmp_path / "instruct"
    tokenizer = make_tokenizer()
    tokenizer.chat_template = (
        "{% for m in messages %}question {{ m['content'] }} {% endfor %}{% if add_generation_prompt %}answer{% endif %}"
    )
    make_llama().save_pretrained(path)
    tokenizer.save_pretrained(path)
    data = write_jsonl(tmp_path / "qa.jsonl", questions(30))
    spec = spec_of("qa", {"train_file": str(data), "template": "{question}", "target_field": "answer"})
    task = spec.task().in_chat(chat_wrapper(tokenizer, "causal"))
    example = load_splits(task)["train"][0]
    assert example.source.startswith("question the movie was ") and example.source.endswith("answer")
    assert example.lead == "", "the answer follows the opened assistant turn"

    flags = ["--train-file", str(data), "--template", "{question}", "--target-field", "answer", "--chat-template"]
    out = tmp_path / "run"
    assert main(["train", "--model", str(path), *flags, "--max-new-tokens", "2", *SHORT, "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert json.loads((out / "adapter" / "adapter.json").read_text())["chat_template"] is True
    capsys.readouterr()
    assert main(["eval", "--adapter", str(out / "adapter"), "--seed", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == pytest.approx(results["test"])


def test_lamp_data_shows_a_task_file(tmp_path, capsys):
    write_csv(tmp_path / "train.csv", reviews(20))
    (tmp_path / "mine.yaml").write_text(
        "train_file: train.csv\ntemplate: 'review {text} sentiment'\nlabel_words: [negative, positive]\n"
        "label_values: [neg, pos]\nlabel_field: sentiment\n"
    )
    assert main(["data", str(tmp_path / "mine.yaml"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"train": 16, "validation": 2, "test": 2}
    assert main(["data", str(tmp_path / "mine.yaml"), "--show", "1"]) == 0
    shown = capsys.readouterr().out
    assert "source: review " in shown and "sentiment\n" in shown


def test_a_compare_grid_runs_on_a_task_file(llama_dir, tmp_path):
    """`lamp compare` takes task YAML files beside built-in names: cells and report rows are named by the task, the
    cells train on the file, and the floors score it too."""
    from lamp.compare import compare, make_grid

    folder = sentiment_task_file(tmp_path / "tasks")
    grid = make_grid(
        dict(
            model=llama_dir, tasks=[str(folder / "sentiment.yaml")], methods={"pt": {"length": 2}}, lrs={"pt": [0.3]},
            seeds=[0], max_steps=2, train={"batch_size": 8, "eval_every": 2, "zero_shot": False},
            out=str(tmp_path / "grid"), floors=["none", "majority"],
        )
    )  # fmt: skip
    assert grid.tasks == ["sentiment"] and grid.task_files == {"sentiment": str(folder / "sentiment.yaml")}
    records, paths = compare(grid, log=lambda line: None)
    assert {(r.task, r.method) for r in records} == {
        ("sentiment", "pt"),
        ("sentiment", "none"),
        ("sentiment", "majority"),
    }
    cell = tmp_path / "grid" / "cells" / "sentiment-pt-lr0.3-s0"
    assert json.loads((cell / "results.json").read_text())["split_sizes"] == {"train": 30, "validation": 5, "test": 5}
    assert "| Method | Trainable params (effective) | sentiment | Avg |" in paths["markdown"].read_text()
    again, _ = compare(dataclasses.replace(grid), log=lambda line: None, report_only=True)
    assert len(again) == 3, "a checked recipe (task names and their files) checks again as the same grid"

    # the task file edited since: its cells (trained and floors) are another task's, refused, not read back as this one
    spec_file = folder / "sentiment.yaml"
    spec_file.write_text(spec_file.read_text().replace("sentiment'", "mood'"))
    with pytest.raises(ConfigError, match=r"sentiment-none-s0 was scored with other settings \(task_spec: template\)"):
        compare(dataclasses.replace(grid), log=lambda line: None, report_only=True)
    for floor in ("none", "majority"):
        shutil.rmtree(tmp_path / "grid" / "cells" / f"sentiment-{floor}-s0")
    with pytest.raises(
        ConfigError, match=r"sentiment-pt-lr0\.3-s0 was run with other settings \(task_spec: template\)"
    ):
        compare(dataclasses.replace(grid), log=lambda line: None, report_only=True)


def test_a_task_file_edited_since_the_run_is_refused_on_resume_and_the_same_spec_elsewhere_is_taken(
    llama_dir, tmp_path, capsys
):
    """A run records the spec its task file gave (results.json, train_config.json `task_spec`): --resume after the
    file was edited is refused in one line naming what changed, while another file that reads the same spec (the
    same template, words and data files) continues the run."""
    folder = sentiment_task_file(tmp_path / "tasks")
    spec_file, out = folder / "sentiment.yaml", tmp_path / "run"
    flags = ["--model", llama_dir, "--task", str(spec_file), *SHORT, "--max-steps", "3", "--out", str(out)]
    assert main(["train", *flags]) == 0
    recorded = json.loads((out / "train_config.json").read_text())["task_spec"]
    assert recorded["template"] == TEMPLATE and recorded["train_file"] == str(folder / "train.csv")
    assert json.loads((out / "results.json").read_text())["config"]["task_spec"] == recorded

    original = spec_file.read_text()
    spec_file.write_text(original.replace("label_words: [negative, positive]", "label_words: [bad, good]"))
    capsys.readouterr()
    assert main(["train", "--resume", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert 'label_words ["bad", "good"] (the run has ["negative", "positive"])' in err
    assert "restore the task file" in err and "Traceback" not in err

    spec_file.write_text(original.replace("sentiment'", "sentiment '"))  # a space shows, quoted
    assert main(["train", "--resume", "--out", str(out)]) == 2
    assert 'template "review {text} sentiment " (the run has review {text} sentiment)' in capsys.readouterr().err

    renamed = folder / "reviews.yaml"  # a task file's name is its own: another file, another task name
    spec_file.rename(renamed)
    renamed.write_text(original)
    assert main(["train", "--resume", "--out", str(out), "--task", str(renamed)]) == 2
    err = capsys.readouterr().err
    assert "name reviews (the run has sentiment)" in err and "add `name: sentiment`" in err, err
    renamed.rename(spec_file)

    elsewhere = tmp_path / "copy" / "sentiment.yaml"  # the same spec: its data paths name the same files
    elsewhere.parent.mkdir()
    elsewhere.write_text(
        original.replace("train.csv", str(folder / "train.csv")).replace("dev.csv", str(folder / "dev.csv"))
    )
    resumed = ["--model", llama_dir, "--task", str(elsewhere), *SHORT, "--max-steps", "3", "--out", str(out)]
    assert main(["train", *resumed, "--resume"]) == 0


def test_template_fields_are_plain_names_never_the_answer():
    """A format spec, a conversion or a position would break or quietly change the rendering; the answer field in
    the template would show the model its answer: each is refused naming the field. Literal braces still work."""
    good = dict(name="mine", train_file="x.csv", label_words="a,b")
    for template in ("{text:>5}", "{text!r}", "Q: {0}", "Q: {}", "{text.upper}"):
        with pytest.raises(ConfigError, match=r"has the field \{.*\}: write each field as a row field's name"):
            TaskSpec(**good, template=template)
    with pytest.raises(ConfigError, match=r"shows the answer field 'label' to the model: remove \{label\}"):
        TaskSpec(**good, template="{text} {label}")
    with pytest.raises(ConfigError, match=r"shows the answer field 'answer'"):
        TaskSpec(name="mine", train_file="x.csv", target_field="answer", template="{question} {answer}")
    with pytest.raises(ConfigError, match=r"--dataset ':cfg' names no dataset"):
        TaskSpec(name="mine", dataset=":cfg", label_words="a,b", template="{text}")
    task = TaskSpec(**good, template="{{literal}} {text}\nAnswer: {{x}}").task()
    assert task.text_fields() == ("text",)
    assert task.render({"text": " a  b "}) == ("{literal} a b\nAnswer: {x}", "\nAnswer: {x}")


def test_max_new_tokens_and_data_flags_need_their_task(tmp_path):
    with pytest.raises(ConfigError, match=r"^--max-new-tokens applies to your own data: pass --train-file FILE"):
        spec_of("polarity", {"max_new_tokens": 5}, default="polarity")
    options = {"train_file": "x.csv", "template": "{text}", "label_words": "a,b", "max_new_tokens": 5}
    with pytest.raises(ConfigError, match=r"^--max-new-tokens applies to free-form generation \(--target-field\)"):
        spec_of("polarity", options, default="polarity")
    options = {**options, "label_words": None, "target_field": "answer"}
    assert spec_of("polarity", options, default="polarity").max_new_tokens == 5


def test_label_options_on_a_generation_task_are_refused_not_ignored():
    """--label-field and --label-values are read by classification alone: on a --target-field task they were
    ignored (the field) or said "2 values for 0 label words" (the values)."""
    options = {"train_file": "x.jsonl", "template": "{question}", "target_field": "answer"}
    with pytest.raises(ConfigError, match=r"^--label-field applies to classification \(--label-words\): .*drop it$"):
        spec_of("mine", {**options, "label_field": "answer"})
    with pytest.raises(ConfigError, match=r"^--label-values applies to classification \(--label-words\): .*drop it$"):
        spec_of("mine", {**options, "label_values": "a,b"})
    with pytest.raises(ConfigError, match=r"^--label-values applies to classification"):  # the API too
        TaskSpec(name="mine", **options, label_values=("a", "b"))
    saved = TaskSpec(name="mine", **options).to_dict()  # an adapter's spec records the default label field
    assert task_of("mine", saved).target_field == "answer"


def test_split_files_that_are_one_file_are_refused(tmp_path):
    """A test (or validation) file that is the train file, by any path: the test score would be on training rows."""
    write_csv(tmp_path / "r.csv", [{"text": "good", "label": "positive"}, {"text": "bad", "label": "negative"}] * 5)
    (tmp_path / "link.csv").symlink_to(tmp_path / "r.csv")
    common = {"train_file": str(tmp_path / "r.csv"), "template": "{text}", "label_words": "negative,positive"}
    for options, message in [
        ({"test_file": str(tmp_path / "link.csv")}, r"--test-file .*link.csv is the same file as --train-file \("),
        ({"validation_file": f"{tmp_path}/./r.csv"}, r"--validation-file .*r.csv is the same file as --train-file"),
    ]:
        with pytest.raises(DataError, match=message + r".*; pass a held-out file$"):
            load_splits(spec_of("mine", {**common, **options}).task())


def test_json_rows_that_are_not_records_and_a_broken_parquet_file_say_so(tmp_path):
    common = {"template": "{text}", "label_words": "negative,positive"}
    for name, text, shown in [
        ("list.json", "[1, 2, 3]", "1"),
        ("nested.json", '[{"text": "a", "label": 0}, ["a", 0]]', r"\['a', 0\]"),
        ("lines.json", '{"text": "a", "label": 0}\n"b"\n', "'b'"),
        ("rows.jsonl", '{"text": "a", "label": 0}\n\n[1, 2]\n', r"\[1, 2\]"),
    ]:
        (tmp_path / name).write_text(text)
        row = 1 if name == "list.json" else 2
        with pytest.raises(DataError, match=rf"{name} row {row} is {shown}, not a record with fields: write one JSON"):
            load_splits(spec_of("mine", {"train_file": str(tmp_path / name), **common}).task())
    (tmp_path / "columns.json").write_text('{"text": ["a", "b"], "label": [0, 1]}')
    with pytest.raises(
        DataError, match=r"columns.json holds one object of columns \('text', 'label': lists\), not rows"
    ):
        load_splits(spec_of("mine", {"train_file": str(tmp_path / "columns.json"), **common}).task())
    for name, text, fix in [  # was: "has no field 'text', 'label' (its fields: text\tlabel)"
        ("tabs.csv", "text\tlabel\ngood\tpositive\n", "separated by tabs: name the file tabs.tsv"),
        ("commas.tsv", "text,label\ngood,positive\n", "separated by commas: name the file commas.csv"),
    ]:
        (tmp_path / name).write_text(text)
        with pytest.raises(DataError, match=rf"{name}: its header is {fix}$"):
            load_splits(spec_of("mine", {"train_file": str(tmp_path / name), **common}).task())
    (tmp_path / "t.parquet").write_bytes(b"PAR1 truncated")
    with pytest.raises(DataError, match=r"as Parquet \(.*\): it is not a whole Parquet file; write it again") as error:
        load_splits(spec_of("mine", {"train_file": str(tmp_path / "t.parquet"), **common}).task())
    assert "UTF-8" not in str(error.value)


def test_csv_cells_are_text_as_written_and_json_values_must_be_text(tmp_path):
    """pandas would read a CSV column of numbers as numbers: the cells are the text the file holds. A JSON value
    that is not text is refused, as lamp predict refuses it, rather than rendered with str()."""
    rows = [{"text": text, "label": label} for text, label in [("007", "0"), ("True", "1"), ("1.50", "1")] * 4]
    write_csv(tmp_path / "codes.csv", rows)
    task = spec_of("mine", {"train_file": str(tmp_path / "codes.csv"), "template": "{text}", "label_words": "a,b"})
    splits = load_splits(task.task())
    sources = {e.source for split in splits.values() for e in split}
    assert sources == {"007", "True", "1.50"}
    write_jsonl(tmp_path / "codes.jsonl", [{"text": 7, "label": "a"}])
    task = spec_of("mine", {"train_file": str(tmp_path / "codes.jsonl"), "template": "{text}", "label_words": "a,b"})
    with pytest.raises(DataError, match=r"codes.jsonl row 1: field 'text' must be text, got 7"):
        load_splits(task.task())


def test_train_config_takes_label_words_as_a_yaml_list_or_comma_text(tmp_path):
    common = dict(train_file=str(tmp_path / "x.csv"), template="{text}", out=str(tmp_path / "run"))
    listed = TrainConfig(**common, label_words=["negative", "positive"], label_values=[0, 1])
    assert (listed.label_words, listed.label_values) == ("negative,positive", "0,1")
    assert listed == TrainConfig(**common, label_words="negative,positive", label_values="0,1"), (
        "one run, two spellings"
    )
    for words, message in [
        ([], "--label-words is an empty list: give at least two words"),
        (["no", False], "--label-words lists False: YAML reads unquoted true and false as booleans; quote each word"),
        (["a", ["b"]], r"--label-words lists \['b'\], which is not a word"),
    ]:
        with pytest.raises(ConfigError, match=message):
            TrainConfig(**common, label_words=words)


def test_task_file_errors_name_the_file(tmp_path):
    spec = tmp_path / "reviews.yaml"
    spec.write_text("train_file: x.csv\ntemplate: '{text:>5}'\nlabel_words: [negative, positive]\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(spec))}: --template '{{text:>5}}' has the field"):
        spec_of(str(spec))
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(spec))} with the flags on top: label_words '\[a, b\]'"):
        spec_of(str(spec), {"template": "{text}", "label_words": "[a, b]"})  # the bad value may be a flag's
    spec.write_text("name: rte\ntrain_file: x.csv\ntemplate: '{text}'\nlabel_words: [a, b]\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(spec))}: task name 'rte' is a built-in task's"):
        spec_of(str(spec))
    spec.write_text("train_file: x.csv\ntemplate: '{text}'\nlabel_words: [false, true]\n")  # YAML's booleans
    with pytest.raises(ConfigError, match=r"label_words lists False: YAML reads unquoted true and false as booleans"):
        spec_of(str(spec))
    for words in ("[1.10, 1.2]", "[1e1, 1e3]"):  # were the words "1.1" and "1.2", "10.0" and "1000.0", silently
        spec.write_text(f"train_file: x.csv\ntemplate: '{{text}}'\nlabel_words: {words}\n")
        with pytest.raises(ConfigError, match=r"label_words lists 1.*: YAML read that item as a number"):
            spec_of(str(spec))
    # YAML 1.2: yes / no / on / off are words (YAML 1.1 read them as booleans), 010 is ten, quoted words stay
    spec.write_text("train_file: x.csv\ntemplate: '{text}'\nlabel_words: [no, yes]\nlabel_values: [010, '1.10']\n")
    assert (spec_of(str(spec)).label_words, spec_of(str(spec)).label_values) == (("no", "yes"), ("10", "1.10"))


def test_label_words_that_are_the_same_tokens_are_refused(llama_dir):
    """Both outside the vocabulary: each is <unk>, and rank classification would answer the first for every row."""
    from lamp.backbones import load_tokenizer
    from lamp.scoring import label_token_ids

    tokenizer = load_tokenizer(llama_dir)
    with pytest.raises(ConfigError, match=r"label words 'qwxz' and 'zzvq' are the same tokens to this tokenizer \("):
        label_token_ids(tokenizer, "causal", ("qwxz", "zzvq"))
    assert len(label_token_ids(tokenizer, "causal", ("good", "bad"))) == 2


def test_too_few_rows_of_your_own_say_so_in_your_terms(tmp_path):
    rows = tmp_path / "r.csv"
    rows.write_text("text,label\ngood,positive\nbad,negative\nfine,positive\nawful,negative\n")
    spec = spec_of("mine", {"train_file": str(rows), "template": "{text}", "label_words": "negative,positive"})
    with pytest.raises(
        DataError, match=r"split would be empty under the protocol \(given rows: train 4\); add rows, or"
    ):
        load_splits(spec.task())


def test_a_cell_that_refuses_its_input_is_named_when_the_grid_stops(llama_dir, tmp_path):
    """`init: task` on a task whose template is only fields (free-form answers) has no words to start from: the
    grid stops on that cell's refusal, which names the cell."""
    from lamp.compare import compare, make_grid

    write_jsonl(tmp_path / "qa.jsonl", questions(40))
    (tmp_path / "qa.yaml").write_text("train_file: qa.jsonl\ntemplate: '{question}'\ntarget_field: answer\n")
    grid = make_grid(
        dict(
            model=llama_dir, tasks=[str(tmp_path / "qa.yaml")], methods={"pt": {"length": 2, "init": "task"}},
            lrs={"pt": [0.3]}, seeds=[0], max_steps=2, train={"batch_size": 8, "eval_every": 2, "zero_shot": False},
            out=str(tmp_path / "grid"), floors=[],
        )
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"^cell qa-pt-lr0\.3-s0: init 'task' starts the prompt from task qa's own"):
        compare(grid, log=lambda line: None)
