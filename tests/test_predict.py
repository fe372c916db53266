"""Many tasks on one backbone: rows of different tasks in one batch get their own prompts, and every prediction and
score equals that of its adapter run alone."""

from __future__ import annotations

import json

import pytest
import torch

import lamp
import lamp.evaluation
import lamp.tasks
from lamp import metrics
from lamp.adapter import save_adapter
from lamp.cli import main
from lamp.data import Encoded, encode, pad_id
from lamp.errors import AdapterError, DataError
from lamp.evaluation import evaluate_adapter
from lamp.predict import load_task_adapters, predict_rows, score_rows, stack_prompts
from lamp.scoring import answer_tokens, label_token_ids, predict, rank_scores
from lamp.tasks.base import Example, Task, fields
from lamp.tasks.user import TaskSpec

from .conftest import make_llama, make_t5, make_tokenizer

SENTENCES = [
    "the movie was good",
    "this film is very bad and boring",
    "i review it",
    "a great fun film",
    "that was not terrible",
    "it is",
]
# Label words that share their first token ("very"), so rank classification scores whole label sequences.
TOY = Task(
    name="toy", label_words=("very good", "very bad", "very boring"), formatter=fields("text"), metric=metrics.accuracy
)


@pytest.fixture(autouse=True)
def toy_task(monkeypatch):
    monkeypatch.setitem(lamp.tasks.TASKS, "toy", TOY)


def adapters_on(backbone, seed: int = 0) -> dict[str, lamp.PromptedModel]:
    """Three tasks with prompts of different lengths (4, 2 and 3 rows), moved off their init."""
    torch.manual_seed(seed)
    configs = {
        "polarity": lamp.LampConfig(length=8, rank=2, pool=2),
        "rte": lamp.PromptTuningConfig(length=2),
        "toy": lamp.PromptTuningConfig(length=3),
    }
    adapters = {}
    for task, config in configs.items():
        model = lamp.wrap(backbone, config)
        with torch.no_grad():
            for p in model.prompt_encoder.parameters():
                p.add_(torch.randn_like(p) * 0.5)
        adapters[task] = model.eval()
    return adapters


def mixed_rows() -> list[dict]:
    rows = []
    for i, sentence in enumerate(SENTENCES):
        rows.append({"task": "polarity", "sentence": sentence, "id": f"p{i}"})
        rows.append({"task": "rte", "sentence1": sentence, "sentence2": SENTENCES[-1 - i], "id": f"r{i}"})
        rows.append({"task": "toy", "source": f"toy text: {sentence}", "id": f"t{i}"})
    return rows


def alone(adapters, rows, tokenizer, **options) -> list[dict]:
    """Each task's rows through its adapter alone, one row per batch, put back in the input order."""
    out: list[dict | None] = [None] * len(rows)
    for task, model in adapters.items():
        indices = [i for i, row in enumerate(rows) if row["task"] == task]
        results = predict_rows({task: model}, [rows[i] for i in indices], tokenizer, batch_size=1, **options)
        for i, result in zip(indices, results, strict=True):
            out[i] = result
    return out


def assert_same(mixed: list[dict], single: list[dict]) -> None:
    for m, s in zip(mixed, single, strict=True):
        assert (m["id"], m["task"], m["prediction"]) == (s["id"], s["task"], s["prediction"])
        if "scores" in s:
            assert m["scores"].keys() == s["scores"].keys()
            torch.testing.assert_close(
                torch.tensor(list(m["scores"].values())), torch.tensor(list(s["scores"].values())), atol=1e-4, rtol=0
            )
        else:
            assert m["text"] == s["text"]


@pytest.mark.parametrize(("batch_size", "by_length"), [(18, True), (4, True), (4, False)])
def test_mixed_rank_batches_equal_single_task_runs(llama, tokenizer, batch_size, by_length):
    adapters = adapters_on(llama)
    rows = mixed_rows()
    mixed = predict_rows(adapters, rows, tokenizer, batch_size=batch_size, by_length=by_length)
    assert [r["id"] for r in mixed] == [row["id"] for row in rows]
    assert all("scores" in r for r in mixed)  # causal LM + label words: rank classification
    assert len(mixed[2]["scores"]) == 3 and len(mixed[0]["scores"]) == 2
    assert_same(mixed, alone(adapters, rows, tokenizer))
    assert len({r["prediction"] for r in mixed if r["task"] == "polarity"}) == 2, "untrained prompts still disagree"


def test_mixed_predictions_equal_the_one_task_scorer(llama, tokenizer):
    """The established one-task path (`lamp.scoring.predict`, what `lamp eval` runs) gives the same labels."""
    adapters = adapters_on(llama)
    rows = mixed_rows()
    mixed = predict_rows(adapters, rows, tokenizer, batch_size=18)
    for task, model in adapters.items():
        spec = lamp.tasks.get_task(task)
        mine = [(row, r) for row, r in zip(rows, mixed, strict=True) if row["task"] == task]
        texts = [row.get("source") or f"{task} {spec.formatter(row)}" for row, _ in mine]
        encoded = [Encoded(tokenizer(t, add_special_tokens=False)["input_ids"], []) for t in texts]
        expected = predict(model, encoded, spec, tokenizer, "rank", batch_size=5)
        assert [r["value"] for _, r in mine] == expected


@pytest.mark.parametrize("arch", ["t5", "llama"])
def test_mixed_generation_equals_single_task_runs(arch):
    # A tiny random T5 mostly decodes padding; this one (vocabulary = the tokenizer's) decodes words.
    backbone = make_t5(vocab_size=40, seed=1) if arch == "t5" else make_llama()
    tokenizer = make_tokenizer("right" if arch == "t5" else "left")
    adapters = adapters_on(backbone, seed=1)
    rows = mixed_rows()
    mixed = predict_rows(adapters, rows, tokenizer, batch_size=18, scorer="generate")
    assert all("text" in r for r in mixed)
    assert_same(mixed, alone(adapters, rows, tokenizer, scorer="generate"))
    assert len({r["text"] for r in mixed}) > 1


def test_rank_scores_take_per_row_prompts_and_labels(llama, tokenizer):
    adapters = adapters_on(llama)
    pad = pad_id(tokenizer)
    sources = [tokenizer(s, add_special_tokens=False)["input_ids"] for s in SENTENCES[:2]]
    labels = [
        label_token_ids(tokenizer, "causal", TOY.label_words),
        label_token_ids(tokenizer, "causal", ("bad", "good")),
    ]
    prompt, mask = stack_prompts([adapters["toy"].prompt(), adapters["rte"].prompt()])
    assert mask.tolist() == [[1, 1, 1], [0, 1, 1]]
    scores = rank_scores(adapters["toy"], sources, labels, pad, prompt, mask)
    assert scores.shape == (2, 3) and scores[1, 2] == -torch.inf
    first = rank_scores(adapters["toy"], sources[:1], labels[0], pad)
    second = rank_scores(adapters["rte"], sources[1:], labels[1], pad)
    torch.testing.assert_close(scores[0], first[0], atol=1e-4, rtol=0)
    torch.testing.assert_close(scores[1, :2], second[0], atol=1e-4, rtol=0)


def test_raw_rows_and_source_rows_agree(llama, tokenizer):
    adapters = adapters_on(llama)
    raw = {"task": "rte", "sentence1": "the movie was good", "sentence2": "it is"}
    formatted = {"task": "rte", "source": "rte sentence1: the movie was good sentence2: it is"}
    a, b = predict_rows(adapters, [raw, formatted], tokenizer)
    assert a == b


def test_bad_rows_and_adapters_are_refused(llama, tokenizer, tmp_path):
    adapters = adapters_on(llama)
    with pytest.raises(DataError, match="row 2 names task 'cola', which no adapter serves"):
        predict_rows(adapters, [{"task": "rte", "source": "x"}, {"task": "cola", "source": "x"}], tokenizer)
    # a task without an adapter is named as such, not by the field its row lacks
    with pytest.raises(DataError, match="row 1 names task 'cola', which no adapter serves: known tasks"):
        predict_rows(adapters, [{"task": "cola"}], tokenizer)
    with pytest.raises(DataError, match="row 1 .rte. lacks field 'sentence2'"):
        predict_rows(adapters, [{"task": "rte", "sentence1": "x"}], tokenizer)
    model = lamp.wrap(llama, lamp.PromptTuningConfig(length=2))
    model.save_adapter(tmp_path / "nameless")
    with pytest.raises(AdapterError, match="names no task .* pass it as TASK="):
        load_task_adapters([tmp_path / "nameless"], backbone=llama)
    with pytest.raises(AdapterError, match=r"two adapters for task 'rte' \(.*nameless and .*nameless\): a row names"):
        load_task_adapters([f"rte={tmp_path / 'nameless'}", f"rte={tmp_path / 'nameless'}"], backbone=llama)
    from .test_export import HookConfig

    hooked = lamp.wrap(llama, HookConfig())
    with pytest.raises(AdapterError, match="also changes the input embeddings, so .* cannot share a batch"):
        predict_rows({"rte": hooked}, [{"task": "rte", "source": "x"}], tokenizer)


def test_a_row_gives_a_source_or_the_fields_never_both_nor_an_empty_one():
    """Both forms in one row dropped one of them silently; an empty user field was scored though training refuses
    it. A user template's own {source} field is a raw row's field, rendered by the template."""
    from lamp.predict import row_source
    from lamp.tasks import TaskSpec

    reviews = TaskSpec(name="reviews", train_file="r.csv", template="review {text}", label_words=("a", "b")).task()
    echo = TaskSpec(name="echo", train_file="e.jsonl", template="say {source} now", target_field="target").task()
    views = {"rte": lamp.tasks.get_task("rte"), "reviews": reviews, "echo": echo}
    both = {"task": "rte", "source": "rte sentence1: a sentence2: b", "sentence1": "a", "sentence2": "b"}
    with pytest.raises(DataError, match=r"^row 1 \(rte\) has both 'source' \(ready text\) and the task's field "):
        row_source(both, "row 1", views)
    with pytest.raises(DataError, match=r"^row 1 \(rte\): 'source' is empty: fill it or drop the row$"):
        row_source({"task": "rte", "source": " "}, "row 1", views)
    with pytest.raises(DataError, match=r"^row 1 \(reviews\): field 'text' is empty: fill it or drop the row$"):
        row_source({"task": "reviews", "text": ""}, "row 1", views)
    assert row_source({"task": "echo", "source": "hi"}, "row 1", views)[1] == "say hi now"
    assert row_source({"task": "rte", "sentence1": "", "sentence2": "b"}, "row 1", views), "official rows may hold one"


def test_adapters_load_onto_one_backbone(llama, tokenizer, tmp_path):
    adapters = adapters_on(llama)
    for task, model in adapters.items():
        # toy names no task (toy=PATH names it) and has only the t5 format, which an adapter naming no task records
        save_adapter(model, tmp_path / task, extra={"task": task} if task != "toy" else {"format": "t5"})
    loaded = load_task_adapters([tmp_path / "polarity", tmp_path / "rte", f"toy={tmp_path / 'toy'}"], backbone=llama)
    assert list(loaded) == ["polarity", "rte", "toy"]
    assert all(m.backbone is llama for m in loaded.values())
    rows = mixed_rows()
    assert_same(predict_rows(loaded, rows, tokenizer), predict_rows(adapters, rows, tokenizer))


def test_cli_predict(tmp_path, capsys):
    model_dir = tmp_path / "tiny-llama"
    make_llama().save_pretrained(model_dir)
    make_tokenizer().save_pretrained(model_dir)
    adapters = adapters_on(make_llama())
    specs = []
    for task, model in adapters.items():
        model.backbone_name = str(model_dir)
        save_adapter(model, tmp_path / task, extra={"task": task})
        specs += ["--adapter", str(tmp_path / task)]
    rows = [{**row, "label": i % 2} for i, row in enumerate(mixed_rows()) if row["task"] != "toy"]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    command = ["predict", *specs, "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path / "out.jsonl")]
    assert main([*command, "--batch-size", "5"]) == 0
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["id"] for r in out] == [row["id"] for row in rows]
    assert_same(out, predict_rows(adapters, rows, make_tokenizer()))
    err = capsys.readouterr().err
    assert "12 rows, 3 tasks" in err and "polarity: accuracy" in err and "rte: accuracy" in err
    (tmp_path / "bad.jsonl").write_text('{"task": "rte"\n')
    assert main(["predict", *specs, "--input", str(tmp_path / "bad.jsonl")]) == 2
    assert "line 1 is not JSON" in capsys.readouterr().err


@pytest.mark.parametrize("scorer", ["rank", "generate"])
def test_one_task_predictions_keep_the_input_order(llama, tokenizer, scorer):
    """`predict` batches rows of similar length together; each prediction still lands at its own row's index.
    Generation is checked on a free-form task, whose predictions are the generated texts themselves (a random
    model's text names no polarity label, so every label prediction would be None and any order would pass)."""
    model = adapters_on(llama)["polarity"]
    if scorer == "rank":
        spec = lamp.tasks.get_task("polarity")
    else:
        spec = TaskSpec(name="qa", train_file="qa.jsonl", template="{text}", target_field="answer").task()
    encoded = [Encoded(tokenizer(s, add_special_tokens=False)["input_ids"], []) for s in SENTENCES * 2]
    one_by_one = [predict(model, [e], spec, tokenizer, scorer, batch_size=1)[0] for e in encoded]
    assert predict(model, encoded, spec, tokenizer, scorer, batch_size=4) == one_by_one
    assert len(set(one_by_one)) > 1, "the rows must predict differently, or the order is not tested"


@pytest.mark.parametrize("input_format", ["t5", "natural"])
@pytest.mark.parametrize("arch", ["llama", "t5"])
def test_a_row_longer_than_max_length_scores_the_same_in_eval_and_predict(arch, input_format, tmp_path, monkeypatch):
    """`lamp eval` (`evaluate_adapter`) and `lamp predict` (`predict_rows`) cut a too-long row by one rule
    (`lamp.data.encode_sources` to `source_budget`), so it gets the same scores and prediction through both, also
    when predict serves other tasks beside it whose label words are longer (before, predict cut every row by the
    longest task's answer)."""
    model_dir = tmp_path / "model"
    backbone = make_llama() if arch == "llama" else make_t5()
    tokenizer = make_tokenizer("left" if arch == "llama" else "right")
    backbone.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    for task, model in adapters_on(backbone).items():
        model.backbone_name = str(model_dir)
        extra = {"task": task, "format": "t5" if task == "toy" else input_format, "max_length": 16}
        save_adapter(model, tmp_path / task, extra=extra)
    rows = [
        {"task": "polarity", "sentence": " ".join(SENTENCES[i:] + SENTENCES[:i]), "label": i % 2, "id": i}
        for i in range(len(SENTENCES))
    ]
    monkeypatch.setattr(
        lamp.tasks, "load_splits", lambda task, data_dir=None, seed=42: {"test": [task.example(r) for r in rows]}
    )
    seen = {}
    score = lamp.evaluation.Evaluator.__call__

    def recorded(self, model, examples, encoded):
        seen.update(model=model, encoded=encoded, metrics=score(self, model, examples, encoded))
        seen["predictions"] = self.last_predictions
        return seen["metrics"]

    monkeypatch.setattr(lamp.evaluation.Evaluator, "__call__", recorded)
    metrics = evaluate_adapter(tmp_path / "polarity", model=str(model_dir))  # the recorded max_length, 16

    served = load_task_adapters([tmp_path / task for task in ("polarity", "rte", "toy")], backbone=str(model_dir))
    results = predict_rows(served, rows, tokenizer)  # each adapter's recorded max_length, as eval
    assert predict_rows(served, rows, tokenizer, max_length=16) == results, "an explicit limit gives the same cut"
    sources = [e.source for e in seen["encoded"]]
    task = lamp.tasks.get_task("polarity", input_format)
    budget = 16 - (answer_tokens(tokenizer, served["polarity"].kind, task, "rank") if arch == "llama" else 0)
    assert max(len(s) for s in sources) == budget, "the rows really are cut"
    assert [r["value"] for r in results] == seen["predictions"]
    assert score_rows(rows, results) == {"polarity": metrics}
    if arch == "llama":  # rank classification: the label words' log-probabilities too
        labels = label_token_ids(tokenizer, "causal", task.label_words, task.lead)
        scores = rank_scores(seen["model"], sources, labels, pad_id(tokenizer))
        predicted = torch.tensor([list(r["scores"].values()) for r in results])
        torch.testing.assert_close(predicted, scores, atol=1e-4, rtol=0)
    else:  # generation: the same texts
        assert all("text" in r for r in results)


def test_a_scored_row_is_cut_the_same_whatever_its_answer(tokenizer):
    """Scoring leaves room for what the scorer appends only, so a free-form answer longer than the generation budget
    does not cut the row's input more (training still leaves room for the answer it learns)."""
    source = " ".join(SENTENCES)
    short, long = Example(source, "yes", "yes"), Example(source, " ".join(["very good"] * 4), "very good")
    scored = encode([short, long], tokenizer, "causal", 16, reserve=4, scoring=True)
    trained = encode([short, long], tokenizer, "causal", 16, reserve=4)
    assert scored[0].source == scored[1].source == trained[0].source and len(scored[0].source) == 16 - 4
    assert len(trained[1].source) == 16 - len(trained[1].target)


def test_a_task_is_scored_on_its_labelled_rows_and_says_how_many():
    """Rows without a label leave the score, not the task: it is scored on the rows that have one (before, a single
    unlabelled row left the whole task unscored, silently)."""
    from lamp.predict import labelled_rows

    rows = [{"task": "polarity", "sentence": "x", "label": 1}, {"task": "polarity", "sentence": "y"}]
    rows += [{"task": "polarity", "sentence": "z", "label": 0}, {"task": "rte", "sentence1": "a", "sentence2": "b"}]
    results = [{"value": 1}, {"value": 0}, {"value": 1}, {"value": 0}]
    assert score_rows(rows, results) == {"polarity": {"accuracy": 50.0, "score": 50.0}}, "rte has no labelled row"
    assert labelled_rows(rows) == {"polarity": (2, 3), "rte": (0, 1)}


def test_cli_predict_refuses_rows_past_the_json_parser_and_a_folder_output_up_front(tmp_path, capsys, monkeypatch):
    model = adapters_on(make_llama())["polarity"]
    save_adapter(model, tmp_path / "polarity", extra={"task": "polarity"})
    spec = ["predict", "--adapter", str(tmp_path / "polarity")]
    for name, text, words in (
        ("deep", '{"task": "polarity", "sentence": "x", "z": ' + "[" * 100_000 + "\n", "it nests too deeply"),
        ("long", '{"task": "polarity", "sentence": "x", "id": ' + "9" * 5000 + "}\n", "a number has thousands"),
    ):
        (tmp_path / f"{name}.jsonl").write_text(text)
        assert main([*spec, "--input", str(tmp_path / f"{name}.jsonl")]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and f"line 1 is JSON lamp cannot read ({words}" in err, err
    # an --output that is a folder is refused before any backbone loads, not after every prediction
    (tmp_path / "in.jsonl").write_text('{"task": "polarity", "sentence": "a fine film"}\n')
    monkeypatch.setattr("lamp.predict.load_model", lambda name: pytest.fail("loaded a backbone first"))
    assert main([*spec, "--input", str(tmp_path / "in.jsonl"), "--output", str(tmp_path)]) == 2
    assert "is a folder: name a file for the predictions" in capsys.readouterr().err
