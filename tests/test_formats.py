"""Input formats: every task renders in the t5 and the natural format, its natural label words score through rank
classification, truncation keeps the answer cue, `auto` picks the format by model kind, and eval / predict render
rows the way the adapter was trained."""

from __future__ import annotations

import dataclasses
import json
import random

import pytest
import torch

import lamp
import lamp.tasks
from lamp.adapter import read_adapter_config
from lamp.backbones import load_tokenizer
from lamp.cli import main
from lamp.data import chat_wrapper, encode, pad_id, truncate
from lamp.errors import AdapterError, ConfigError, DataError
from lamp.methods import make_config
from lamp.predict import load_task_adapters, predict_rows, row_source
from lamp.scoring import label_token_ids, rank_scores
from lamp.tasks import FORMATS, TASKS, get_task, resolve_format
from lamp.tasks.base import Task
from lamp.train import TrainConfig, evaluate_adapter, saved_config, train

from .conftest import make_llama, make_t5
from .test_tasks import HUB_ROWS

# A chat template in the shape of an instruct model's (ChatML-like), over words a word-level tokenizer knows.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|system|> be brief <|end|>\n<|user|> {{ m['content'] }} <|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
NATURAL = {  # a few tasks rendered exactly: the templates are data, these pin them
    "sst2": "Review: a gem\nSentiment:",
    "rte": "S1.\nQuestion: S2. True or False?\nAnswer:",
    "copa": "It rained. What was the effect?\nA: Wet.\nB: Dry.\nAnswer:",
    "wsc": 'Mark told Pete many lies about himself .\nQuestion: In the passage above, does the pronoun "himself" refer '
    'to "Mark"?\nAnswer:',
}


def word_tokenizer(texts, padding_side: str = "left", chat_template: str | None = None):
    """A word-level tokenizer (whitespace-split) whose vocabulary is every word of `texts`: no word is unknown."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = sorted({word for text in texts for word in text.split()})
    vocab = {token: i for i, token in enumerate(["<pad>", "</s>", "<unk>", *words])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", padding_side=padding_side
    )
    tokenizer.chat_template = chat_template
    return tokenizer


# ----- rendering -----


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_task_renders_in_both_formats_with_the_same_label(name):
    row, t5_source, t5_target = HUB_ROWS[name]
    t5, natural = get_task(name, "t5"), get_task(name, "natural")
    assert t5 is TASKS[name] and get_task(name) is t5, "the t5 view is the spec itself"
    assert t5.example(row).source == t5_source and t5.example(row).target == t5_target  # unchanged
    mine = natural.example(row)
    assert mine.label == t5.example(row).label and mine.group == t5.example(row).group
    assert len(natural.label_words) == len(t5.label_words)
    assert mine.target == (t5_target if natural.is_regression else natural.label_words[mine.label])
    assert not mine.source.startswith(name + " ") and mine.source.endswith(mine.cue)
    assert mine.cue.endswith(("Answer:", "Sentiment:")), "the answer follows a cue"
    if name in NATURAL:
        assert mine.source == NATURAL[name]
    assert natural.in_format("t5") == t5 and natural.in_format("natural") is natural


def test_natural_views_read_the_release_label_names():
    """Releases name the t5 label words ("neutral"); a natural view maps them to the same index."""
    cb = get_task("cb", "natural")
    example = cb.example({"premise": "P.", "hypothesis": "H.", "label": "neutral"})
    assert (example.label, example.target) == (2, "maybe")
    assert cb.parse(" Maybe ") == 2 and cb.parse("neutral") is None


def test_bad_formats_are_one_line_errors():
    with pytest.raises(ConfigError, match="unknown input format 'chat'"):
        get_task("rte", "chat")
    with pytest.raises(ConfigError, match="unknown input format"):
        resolve_format("T5", "causal")
    bare = Task(name="bare", label_words=("a", "b"), formatter=str, metric=lambda *a: {})
    with pytest.raises(DataError, match="bare has no natural format: use --format t5"):
        bare.in_format("natural")


def test_format_auto_picks_t5_for_seq2seq_and_natural_for_causal():
    assert resolve_format("auto", "seq2seq") == "t5"
    assert resolve_format("auto", "causal") == "natural"
    assert [resolve_format(name, "causal") for name in FORMATS] == list(FORMATS)


# ----- scoring -----


@pytest.mark.parametrize("name", sorted(TASKS))
@pytest.mark.parametrize("chat", [False, True], ids=["plain", "chat"])
def test_natural_label_words_score_through_rank_classification(name, chat):
    """Each label word's rank score is the log-probability the backbone gives it right after the source: the
    first token's when the label words start differently (one position), else the whole sequence's."""
    task = get_task(name, "natural")
    texts = [task.example(HUB_ROWS[name][0]).source, *task.label_words, CHAT_TEMPLATE.replace("\n", " ")]
    tokenizer = word_tokenizer(texts, chat_template=CHAT_TEMPLATE)
    if chat:
        task = task.in_chat(chat_wrapper(tokenizer, "causal"))
    example = task.example(HUB_ROWS[name][0])
    assert (example.lead, task.lead) == (("", "") if chat else (" ", " "))
    if chat:
        assert example.source.startswith("<|system|>") and example.source.endswith("<|assistant|>\n")
    torch.manual_seed(0)
    backbone = make_llama(vocab_size=len(tokenizer))
    model = lamp.wrap(backbone, make_config("lora")).eval()  # LoRA's B starts at 0: the bare backbone
    source = encode([example], tokenizer, "causal", 256)[0].source
    labels = label_token_ids(tokenizer, "causal", task.label_words, task.lead)
    assert all(tokenizer.unk_token_id not in ids for ids in labels)
    scores = rank_scores(model, [source], labels, pad_id(tokenizer))[0]
    one_position = len({ids[0] for ids in labels}) == len(labels)
    expected = []
    for ids in labels:
        with torch.no_grad():
            logits = backbone(input_ids=torch.tensor([source + ids])).logits[0]
        logprobs = torch.log_softmax(logits.float(), -1)[len(source) - 1 :]
        per_token = [logprobs[i, token] for i, token in enumerate(ids)]
        expected.append(per_token[0] if one_position else sum(per_token))
    torch.testing.assert_close(scores, torch.stack(expected), atol=1e-4, rtol=0)
    assert one_position or name == "stsb", "rank classification reads one position for every classification task"


def test_chat_template_needs_a_causal_model_whose_tokenizer_has_one():
    tokenizer = word_tokenizer(["a"])
    with pytest.raises(ConfigError, match="no chat template"):
        chat_wrapper(tokenizer, "causal")
    with pytest.raises(ConfigError, match="seq2seq"):
        chat_wrapper(word_tokenizer(["a"], chat_template=CHAT_TEMPLATE), "seq2seq")


# ----- truncation -----


@pytest.mark.parametrize("kind", ["causal", "seq2seq"])
def test_truncation_keeps_the_start_and_the_answer_cue(kind):
    passage = " ".join(f"w{i}." for i in range(40))
    natural = get_task("rte", "natural").example({"sentence1": passage, "sentence2": "it is", "label": 0})
    t5 = get_task("rte").example({"sentence1": passage, "sentence2": "it is", "label": 0})
    tokenizer = word_tokenizer([natural.source, t5.source, "True"])
    full = tokenizer(natural.source, add_special_tokens=False)["input_ids"]
    cue = tokenizer(natural.cue, add_special_tokens=False)["input_ids"]
    assert full[-len(cue) :] == cue and len(cue) == 7  # Question: it is True or False? Answer:
    budget = 20 - 2 if kind == "causal" else 20  # causal: source and target (" True" EOS) share max_length
    (cut,) = encode([natural], tokenizer, kind, 20)
    assert cut.source == full[: budget - len(cue)] + cue
    (start_only,) = encode([t5], tokenizer, kind, 20)  # t5: no cue, the start is kept as before
    assert start_only.source == tokenizer(t5.source, add_special_tokens=False)["input_ids"][:budget]
    appended = 2 if kind == "causal" else 0
    (least,) = encode([natural], tokenizer, kind, len(cue) + 1 + appended)  # one token of the input and the cue
    assert least.source == full[:1] + cue
    for max_length in (1, len(cue) + appended):  # no token of the input would be left: refused, not cut to the cue
        budget = max_length - appended
        with pytest.raises(ConfigError) as refused:
            encode([natural], tokenizer, kind, max_length, appended, scoring=True)
        left = max(budget, 0)
        shared = " (a causal LM's --max-length also holds the answer's tokens: a label word, or --max-new-tokens)"
        assert str(refused.value) == (
            f"--max-length leaves {left} token{'s' if left != 1 else ''} for an input and the template's cue "
            f"{natural.cue!r} takes 7 tokens, so no token of the text would be seen: raise --max-length by at least "
            f"{8 - budget}{shared if kind == 'causal' else ''}"
        )
        assert len(encode([natural], tokenizer, kind, max_length + 8 - budget, appended, scoring=True)[0].source) == 8
        (training_row,) = encode([natural], tokenizer, kind, max_length)  # a gold answer's budget: cut, not refused
        assert training_row.source == cue[-max(budget, 1) :]
    if kind == "causal":  # no cue: the answer alone fills max_length
        with pytest.raises(
            ConfigError, match="^--max-length leaves 0 tokens for an input, so no token of the text would be seen"
        ):
            encode([t5], tokenizer, kind, 2, reserve=2, scoring=True)


def test_a_token_across_the_cue_boundary_counts_as_the_cue():
    tokenizer = word_tokenizer(["a b c dd"])
    ids = tokenizer("a b c dd", add_special_tokens=False)["input_ids"]
    assert truncate(tokenizer, "causal", "a b c dd", "d", ids, 2) == [ids[0], ids[3]]
    assert truncate(tokenizer, "causal", "a b c dd", "", ids, 2) == ids[:2]
    assert truncate(tokenizer, "causal", "a b c dd", "d", ids, 4) == ids  # fits: untouched


# ----- training, eval and predict -----

SENTENCES = ["the movie was good", "a bad film", "this was great fun", "it is boring", "very terrible", "good"]
SPLITS = ("train", "validation", "test")


@pytest.fixture
def views(monkeypatch):
    """`load_splits` renders a small polarity corpus through the task view it is asked for, and records the view."""
    rng = random.Random(0)
    rows = [{"sentence": rng.choice(SENTENCES), "label": rng.randint(0, 1)} for _ in range(24)]
    asked: list[Task] = []

    def load_splits(task, data_dir=None, seed=42, format=None):
        view = get_task(task) if isinstance(task, str) else task
        view = view.in_format(format) if format else view
        asked.append(view)
        return {split: [view.example(row) for row in rows[i * 8 : i * 8 + 8]] for i, split in enumerate(SPLITS)}

    monkeypatch.setattr(lamp.tasks, "load_splits", load_splits)
    return asked


def backbone_dir(tmp_path, arch: str, chat: bool = False) -> str:
    texts = [*SENTENCES, "Review: Sentiment: polarity sentence: negative positive", CHAT_TEMPLATE.replace("\n", " ")]
    tokenizer = word_tokenizer(texts, "left" if arch == "llama" else "right", CHAT_TEMPLATE if chat else None)
    model = make_llama(vocab_size=len(tokenizer)) if arch == "llama" else make_t5(vocab_size=len(tokenizer))
    path = tmp_path / arch
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def run(model: str, out, **overrides) -> dict:
    values = dict(task="polarity", model=model, method="pt", length=2, lr=0.3, batch_size=4, max_steps=2)
    values.update(eval_every=2, warmup_steps=0, zero_shot=False, out=str(out), seed=0)
    return train(TrainConfig(**{**values, **overrides}))


@pytest.mark.parametrize("arch, expected", [("llama", "natural"), ("t5", "t5")])
def test_format_auto_trains_evaluates_and_records_by_model_kind(views, tmp_path, arch, expected):
    results = run(backbone_dir(tmp_path, arch), tmp_path / "run")
    assert results["format"] == expected and results["config"]["format"] == "auto"
    assert [view.input_format for view in views] == [expected]
    assert views[0].example({"sentence": "good", "label": 1}).source == (
        "Review: good\nSentiment:" if expected == "natural" else "polarity sentence: good"
    )
    adapter = tmp_path / "run" / "adapter"
    assert read_adapter_config(adapter)["format"] == expected
    assert read_adapter_config(adapter)["chat_template"] is False
    evaluate_adapter(adapter, "polarity")
    assert views[-1].input_format == expected and views[-1].chat is None, "eval renders rows as the adapter trained"
    evaluate_adapter(adapter, "polarity", format="t5" if expected == "natural" else "natural")
    assert views[-1].input_format != expected, "an explicit format wins"


def test_eval_splits_with_the_seed_the_adapter_was_trained_with(views, tmp_path, monkeypatch):
    """An adapter records its split seed; `lamp eval` uses it on the adapter's own task (another seed's test split can
    hold the run's training rows), 42 on another task, and an explicit seed wins."""
    run(backbone_dir(tmp_path, "llama"), tmp_path / "run", seed=7, max_length=48)
    adapter = tmp_path / "run" / "adapter"
    assert (read_adapter_config(adapter)["seed"], read_adapter_config(adapter)["max_length"]) == (7, 48)
    seeds = []
    rendered = lamp.tasks.load_splits

    def recording(task, data_dir=None, seed=42, format=None):
        seeds.append(seed)
        return rendered(task, data_dir, seed, format)

    monkeypatch.setattr(lamp.tasks, "load_splits", recording)
    evaluate_adapter(adapter)
    evaluate_adapter(adapter, seed=3)
    evaluate_adapter(adapter, "sst2")
    assert seeds == [7, 3, 42]


def test_eval_renders_adapters_saved_before_formats_in_t5(views, tmp_path):
    run(backbone_dir(tmp_path, "llama"), tmp_path / "run")
    path = tmp_path / "run" / "adapter" / "adapter.json"
    saved = json.loads(path.read_text())
    del saved["format"], saved["chat_template"]
    path.write_text(json.dumps(saved))
    evaluate_adapter(tmp_path / "run" / "adapter", "polarity")
    assert views[-1].input_format == "t5"
    path.write_text(json.dumps({**saved, "format": "chat"}))
    with pytest.raises(AdapterError, match="'format' is 'chat', not one of t5, natural"):
        read_adapter_config(path.parent)


@pytest.mark.parametrize("arch, expected", [("llama", "natural"), ("t5", "t5")])
def test_an_adapter_saved_from_the_api_renders_rows_as_auto_picks_for_its_backbone(views, tmp_path, arch, expected):
    """`save_adapter` of a model no run trained records no format: eval and predict pick as `--format auto` would,
    not the t5 of adapters that `lamp train` saved before formats existed (those name their task)."""
    model = backbone_dir(tmp_path, arch)
    prompted = lamp.wrap(lamp.load_model(model), lamp.PromptTuningConfig(length=2))
    prompted.backbone_name = model
    adapter = prompted.save_adapter(tmp_path / "api")
    assert "format" not in read_adapter_config(adapter) and "task" not in read_adapter_config(adapter)
    evaluate_adapter(adapter, "polarity")
    assert views[-1].input_format == expected
    assert load_task_adapters([f"polarity={adapter}"])["polarity"].input_format == expected


def test_chat_template_trains_in_the_chat_and_predict_renders_rows_alike(views, tmp_path):
    model = backbone_dir(tmp_path, "llama", chat=True)
    results = run(model, tmp_path / "run", chat_template=True)
    assert results["format"] == "natural" and results["config"]["chat_template"] is True
    view = views[-1]
    assert view.chat is not None and view.lead == ""
    assert views[-1].example({"sentence": "good", "label": 1}).source == (
        "<|system|> be brief <|end|>\n<|user|> Review: good\nSentiment: <|end|>\n<|assistant|>\n"
    )
    adapters = load_task_adapters([str(tmp_path / "run" / "adapter")])
    assert (adapters["polarity"].input_format, adapters["polarity"].chat_template) == ("natural", True)
    tokenizer = load_tokenizer(model)
    prepared = {"polarity": get_task("polarity", "natural").in_chat(chat_wrapper(tokenizer, "causal"))}
    raw = {"task": "polarity", "sentence": "good"}
    given = {"task": "polarity", "source": "Review: good\nSentiment:"}
    assert row_source(raw, "row 1", prepared)[1] == row_source(given, "row 2", prepared)[1]
    example = view.example({**raw, "label": 1})
    assert row_source(raw, "row 1", prepared)[1:] == (example.source, example.cue)
    a, b = predict_rows(adapters, [raw, given], tokenizer)
    assert a["prediction"] == b["prediction"] and set(a["scores"]) == {"negative", "positive"}
    assert list(a["scores"].values()) == pytest.approx(list(b["scores"].values()), abs=1e-5)
    # The scores are those of the adapter on the chat-rendered source, the label word right after the template.
    source = tokenizer(example.source, add_special_tokens=False)["input_ids"]
    labels = label_token_ids(tokenizer, "causal", view.label_words, "")
    expected = rank_scores(adapters["polarity"], [source], labels, pad_id(tokenizer))[0].tolist()
    assert list(a["scores"].values()) == pytest.approx(expected, abs=1e-5)
    # On a backbone without a chat template, the adapter's own chat template is what asks for one: say so.
    plain = backbone_dir(tmp_path / "plain", "llama")
    said = (  # was: "--chat-template: …", a flag the user never passed
        r"^the adapter \(trained in its backbone's chat template\): the model's tokenizer has no chat template \(not "
        r"an instruct model\): pass the backbone it was trained on as --model"
    )
    with pytest.raises(ConfigError, match=said + "$"):
        predict_rows(load_task_adapters([str(tmp_path / "run" / "adapter")], plain), [raw], load_tokenizer(plain))
    with pytest.raises(ConfigError, match=said + ", or pass --no-chat-template$"):
        evaluate_adapter(tmp_path / "run" / "adapter", "polarity", model=plain)
    with pytest.raises(ConfigError, match="no chat template .*: drop it$"):
        evaluate_adapter(tmp_path / "run" / "adapter", "polarity", model=plain, chat_template=True)


def test_runs_saved_before_formats_resume_in_t5(tmp_path):
    run = {"task": "rte", "model": "smollm2-135m", "method": "lamp", "seed": 0}  # every run names these three
    (tmp_path / "train_config.json").write_text(json.dumps(run))
    assert saved_config(tmp_path) == {"format": "t5", **run}
    (tmp_path / "train_config.json").write_text(json.dumps({**run, "format": "natural"}))
    assert saved_config(tmp_path)["format"] == "natural"


# ----- command line -----


def cli_error(args: list[str], capsys) -> str:
    try:
        code = main(args)
    except SystemExit as exit_:  # argparse
        code = exit_.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and "Traceback" not in err, (code, err)
    return err.splitlines()[-1]


def test_cli_format_and_chat_template_errors_are_one_line(views, tmp_path, capsys):
    llama, t5 = backbone_dir(tmp_path, "llama"), backbone_dir(tmp_path, "t5", chat=True)
    out = ["--out", str(tmp_path / "run"), "--max-steps", "2", "--method", "pt", "--length", "2"]
    assert "argument --format: invalid choice: 'chat'" in cli_error(["train", "--format", "chat", *out], capsys)
    error = cli_error(["train", "--model", llama, "--chat-template", *out, "--overwrite"], capsys)
    assert "no chat template" in error and "drop it" in error
    error = cli_error(["train", "--model", t5, "--chat-template", *out, "--overwrite"], capsys)
    assert "seq2seq" in error
    error = cli_error(["eval", "--adapter", "x", "--task", "rte", "--format", "chat"], capsys)
    assert "invalid choice: 'chat'" in error


def test_lamp_data_shows_either_format(tmp_path, capsys):
    folder = tmp_path / "polarity"
    folder.mkdir()
    (folder / "polarity.csv").write_text("".join(f"{(-1) ** i},{SENTENCES[i % 6]}\n" for i in range(20)))
    assert main(["data", "polarity", "--data-dir", str(tmp_path), "--show", "1", "--format", "natural"]) == 0
    shown = capsys.readouterr().out
    assert "source: Review: " in shown and "Sentiment:" in shown
    assert main(["data", "polarity", "--data-dir", str(tmp_path), "--show", "1"]) == 0
    assert "source: polarity sentence: " in capsys.readouterr().out


@pytest.mark.parametrize(
    "task,input_format,words",
    [
        ("sst2", "natural", "Review: Sentiment: negative or positive"),
        ("rte", "natural", "Question: True or False? Answer: True or False"),
        (
            "mrpc",
            "natural",
            "Sentence 1: Sentence 2: Question: Do both sentences mean the same thing? Answer: no or yes",
        ),
        ("boolq", "natural", "Question: Answer: no or yes"),  # `{question}?` leaves no lone `?`
        ("copa", "natural", "What was the A: B: Answer: A or B"),
        ("sst2", "t5", "sst2 negative or positive"),
        ("rte", "t5", "rte entailment or not_entailment"),
    ],
)
def test_prompt_words_are_the_template_text_then_the_label_words(task, input_format, words):
    """`init: task`'s phrase: the view's fixed text (fields dropped) and its label words."""
    assert get_task(task).in_format(input_format).prompt_words() == words


def test_init_task_trains_from_the_task_words_and_records_them(llama_dir, tmp_path, monkeypatch):
    """lamp train fills `init: task` in with the task's words in the run's format; the adapter and results.json
    record the phrase (init `text`), so the prompt's start is known without the task."""
    rows = [lamp.tasks.Example(f"film {w}", ("negative", "positive")[i % 2], i % 2) for i, w in enumerate("abcdefgh")]
    monkeypatch.setattr(lamp.tasks, "load_splits", lambda *a, **k: {"train": rows, "validation": rows, "test": rows})
    config = TrainConfig(
        task="sst2", model=llama_dir, method="lamp", length=8, rank=2, pool=2, init="task", lr=0.01, batch_size=4,
        max_steps=2, eval_every=2, format="natural", zero_shot=False, out=str(tmp_path / "run"),
    )  # fmt: skip
    results = train(config)
    expected = {"init": "text", "init_text": "Review: Sentiment: negative or positive"}
    assert expected.items() <= results["prompt_config"].items()
    assert expected.items() <= read_adapter_config(tmp_path / "run" / "adapter")["prompt"].items()
    assert results["config"]["method_options"]["init"] == "task", "the run's settings keep what was asked"


def test_init_task_on_a_task_without_words_names_the_task_and_the_fix():
    """A free-form task whose template is only fields has no words of its own to start from."""
    from lamp.tasks.base import Template

    bare = dataclasses.replace(
        get_task("sst2").in_format("natural"), natural=Template("{sentence}", None), label_words=None
    )
    assert bare.prompt_words() == ""
    with pytest.raises(ConfigError, match="task sst2's own words, and it has none.*pass --init text with --init-text"):
        make_config("lamp", init="task").for_task(bare)
