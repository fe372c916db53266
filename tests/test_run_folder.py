"""The run folder is safe under resume, signals, bad output paths, full disks, two processes and kills.

Most cases start from one uninterrupted run and one run stopped after step 5 (made once for the module); each test
works on a copy. CLI refusals must be exit 2 with exactly one stderr line, and leave every earlier file as it was.
"""

# ruff: noqa: F811  (pytest fixtures imported from other test modules are redefined as arguments)
from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import lamp
import lamp.bench
import lamp.run_folder
import lamp.tasks
import lamp.train
from lamp.adapter import atomic_write
from lamp.cli import main
from lamp.errors import ConfigError, TrainingError
from lamp.train import CHECKPOINT, LOCK, RUN_CONFIG, train

from .conftest import make_llama
from .test_train import config, synthetic_polarity, tiny_task  # noqa: F401  (fixture)

RUN = {"method": "lamp", "length": 8, "rank": 2, "pool": 2, "batch_size": 4, "max_steps": 8, "zero_shot": False}
SPLITS = {
    "train": synthetic_polarity(64, 0),
    "validation": synthetic_polarity(24, 1),
    "test": synthetic_polarity(24, 2),
}


@pytest.fixture(scope="module")
def runs(llama_dir, tmp_path_factory):
    """(whole, stopped): an uninterrupted 8-step run (validation at 4 and 8), and the same run stopped at the
    boundary after step 5."""
    root = tmp_path_factory.mktemp("runs")

    def stop_after_5(step, state):
        if step == 5:
            raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lamp.tasks, "load_splits", lambda name, data_dir=None, seed=42: SPLITS)
        train(config(llama_dir, root / "whole", **RUN))
        with pytest.raises(KeyboardInterrupt):
            train(config(llama_dir, root / "stopped", **RUN), callback=stop_after_5)
    return root / "whole", root / "stopped"


@pytest.fixture
def stopped(runs, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(runs[1], out)
    return out


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != LOCK
    }


def refused(args: list[str], capsys, after_loading: bool = False) -> str:
    """Run the CLI: it must refuse with exit 2 and exactly one stderr line, no traceback. Returns the line.

    `after_loading`: the refusal comes once the backbone has loaded, so transformers' progress bar comes first.
    """
    try:
        code = main(args)
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    if after_loading:
        err = err[err.index(f"lamp {args[0]}: error:") :]
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, (code, err)
    return err.strip()


def assert_same_run(out: Path, whole: Path) -> None:
    """Bit-identical final prompt, the same log (losses and validations) and the same results."""
    expected = torch.load(whole / CHECKPOINT, weights_only=False)["prompt"]
    got = torch.load(out / CHECKPOINT, weights_only=False)["prompt"]
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.equal(expected[name], got[name]), name
    assert (out / "log.jsonl").read_text() == (whole / "log.jsonl").read_text()
    mine, theirs = (json.loads((run / "results.json").read_text()) for run in (out, whole))
    for key in ("steps", "best_step", "validation", "test", "test_predictions"):
        assert mine[key] == theirs[key], key


# ---- 8. resume is checked against the run ------------------------------------------------------------------------
def test_resume_continues_with_the_saved_settings_and_clears_leftovers(runs, stopped, tiny_task, capsys):
    leftovers = [
        stopped / ".checkpoint.pt.k3x_9q2a.tmp",  # mkstemp's name, as an older atomic_write left it
        stopped / ".results.json.0a1b2c3d.tmp.json",
        stopped / "adapter" / ".adapter.safetensors.0a1b2c3d.tmp.safetensors",
        stopped / ".write-test-0",
    ]
    for path in leftovers:
        path.write_bytes(b"half")
    assert main(["train", "--resume", "--out", str(stopped)]) == 0  # no other flag: the run's own settings
    assert_same_run(stopped, runs[0])
    assert not any(path.exists() for path in leftovers)
    saved = json.loads((stopped / "results.json").read_text())["config"]
    whole = json.loads((runs[0] / "results.json").read_text())["config"]
    assert {**saved, "out": ""} == {**whole, "out": ""}, "the same settings; --resume is not one of them"


@pytest.mark.parametrize(
    "flags,named",
    [
        (["--length", "4"], "--length 4 (the run has 8)"),
        (["--rank", "4"], "--rank 4 (the run has 2)"),
        (["--method", "pt"], "--method pt (the run has lamp)"),
        (["--model", "elsewhere"], "--model elsewhere (the run has "),
        (["--lr", "0.1"], "--lr 0.1 (the run has 0.3)"),
        (["--task", "rte"], "--task rte (the run has polarity)"),
        (["--seed", "1"], "--seed 1 (the run has 0)"),
        (["--batch-size", "8"], "--batch-size 8 (the run has 4)"),
        (["--max-steps", "20"], "--max-steps 20 (the run has 8)"),
        (["--method.scale_lr", "true"], "--method.scale_lr True (the run has no value)"),
        (["--set", "pool=4"], "--pool 4 (the run has 2)"),
    ],
)
def test_resume_refuses_a_flag_that_contradicts_the_run(stopped, tiny_task, capsys, flags, named):
    before = digest(stopped)
    line = refused(["train", "--resume", "--out", str(stopped), *flags], capsys)
    drop = named.split()[0]  # a method option is named by its own flag (--pool), however it was given (--set)
    assert named in line and f"drop {drop} to continue it, or pass --overwrite" in line, line
    assert line.endswith("to start over (a key of a --config file counts as its flag)"), line
    assert digest(stopped) == before


def test_resume_through_the_api_names_each_contradicting_field(llama_dir, stopped, tiny_task):
    with pytest.raises(ConfigError, match=r"--lr 0.1 \(the run has 0.3\), --seed 4 \(the run has 0\); drop --lr"):
        train(config(llama_dir, stopped, **RUN, lr=0.1, seed=4, resume=True))


def test_resume_may_change_the_fields_that_are_safe_by_design(runs, stopped, tiny_task):
    assert main(["train", "--resume", "--out", str(stopped), "--eval-batch-size", "5", "--data-dir", "elsewhere"]) == 0
    for name, tensor in torch.load(runs[0] / CHECKPOINT, weights_only=False)["prompt"].items():
        assert torch.equal(torch.load(stopped / CHECKPOINT, weights_only=False)["prompt"][name], tensor), name
    saved = json.loads((stopped / RUN_CONFIG).read_text())
    assert saved["eval_batch_size"] == 5 and saved["data_dir"] == "elsewhere" and saved["lr"] == 0.3


def test_a_model_folder_is_recorded_absolute_and_any_path_to_it_is_the_same_setting(
    llama_dir, stopped, tmp_path, tiny_task, monkeypatch
):
    from lamp.compare.run import _same_settings

    monkeypatch.chdir(Path(llama_dir).parent)
    relative = os.path.join(".", Path(llama_dir).name)
    fresh = lamp.train.TrainConfig(model=relative, init_from=relative, data_dir=relative)
    assert fresh.model == fresh.init_from == fresh.data_dir == os.path.abspath(llama_dir), "resumable from anywhere"
    assert _same_settings({**dataclasses.asdict(fresh), "model": relative}, fresh) == [], "a compare cell's check"
    # A run saved before paths were recorded absolute holds the path as typed: a link to that folder continues it.
    saved = json.loads((stopped / RUN_CONFIG).read_text())
    (stopped / RUN_CONFIG).write_text(json.dumps({**saved, "model": Path(llama_dir).name}))
    link = tmp_path / "link-to-model"
    link.symlink_to(llama_dir)
    assert main(["train", "--resume", "--out", str(stopped), "--model", str(link)]) == 0


def test_resume_of_a_finished_run_without_its_checkpoint_is_refused(runs, tmp_path, tiny_task, capsys):
    out = tmp_path / "done"
    shutil.copytree(runs[0], out)
    (out / CHECKPOINT).unlink()  # as `lamp compare` leaves a finished cell
    before = digest(out)
    assert "nothing to resume: pass --overwrite" in refused(["train", "--resume", "--out", str(out)], capsys)
    assert digest(out) == before


# ---- 9. signals: whatever arrives, the checkpoint is a whole step -----------------------------------------------
def interrupt_twice(sig: int) -> None:
    """What a user does: press Ctrl-C (or send SIGTERM) twice; the second one stops the run at once."""
    os.kill(os.getpid(), sig)
    os.kill(os.getpid(), sig)


@pytest.mark.parametrize("where", ["validation", "optimizer_step"])
def test_a_second_signal_mid_step_keeps_the_last_whole_checkpoint(
    runs, llama_dir, tmp_path, tiny_task, monkeypatch, capsys, where
):
    out = tmp_path / "run"
    if where == "validation":  # the second validation (step 8) is interrupted once it has its scores
        evaluate, calls = lamp.train.Evaluator.__call__, []

        def interrupted(self, *args, **kwargs):
            metrics = evaluate(self, *args, **kwargs)
            calls.append(1)
            if len(calls) == 2:
                interrupt_twice(signal.SIGINT)
            return metrics

        monkeypatch.setattr(lamp.train.Evaluator, "__call__", interrupted)
    else:  # step 6, right after the optimizer updated the prompt (before the scheduler and the step count)
        step, calls = torch.optim.AdamW.step, []

        def interrupted(self, *args, **kwargs):
            result = step(self, *args, **kwargs)
            calls.append(1)
            if len(calls) == 6:
                interrupt_twice(signal.SIGTERM)
            return result

        monkeypatch.setattr(torch.optim.AdamW, "step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(config(llama_dir, out, **RUN))
    stopped_during = 8 if where == "validation" else 6
    assert f"stopped during step {stopped_during}; the last good checkpoint (step 4)" in capsys.readouterr().err
    assert torch.load(out / CHECKPOINT, weights_only=False)["state"]["step"] == 4
    monkeypatch.undo()
    monkeypatch.setattr(lamp.tasks, "load_splits", lambda name, data_dir=None, seed=42: SPLITS)
    train(config(llama_dir, out, **RUN, resume=True))
    assert_same_run(out, runs[0])


# ---- 10. a corrupt checkpoint ------------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["truncated", "random bytes"])
def test_a_corrupt_checkpoint_is_one_line_and_stays(stopped, tiny_task, capsys, damage):
    checkpoint = stopped / CHECKPOINT
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data[: len(data) // 2] if damage == "truncated" else os.urandom(len(data)))
    before = digest(stopped)
    line = refused(["train", "--resume", "--out", str(stopped)], capsys)
    assert f"checkpoint {checkpoint} cannot be read" in line and "pass --overwrite instead of --resume" in line
    assert digest(stopped) == before


def _edited_checkpoint(edit):
    def damage(out: Path) -> None:
        saved = torch.load(out / CHECKPOINT, weights_only=False)
        edit(saved)
        torch.save(saved, out / CHECKPOINT)

    return damage


def _nan_prompt(saved) -> None:
    next(iter(saved["prompt"].values())).view(-1)[0] = float("nan")


def _checkpoint_folder(out: Path) -> None:
    (out / CHECKPOINT).unlink()
    (out / CHECKPOINT).mkdir()
    (out / CHECKPOINT / "mine.txt").write_text("mine\n")


@pytest.mark.parametrize(
    "damage,named",
    [
        (
            _edited_checkpoint(lambda c: c["state"].pop("step")),
            "checkpoint {ckpt} cannot be used (its state has no step)",
        ),
        (_edited_checkpoint(lambda c: c.update(state="oops")), "checkpoint {ckpt} cannot be used (its state is a str"),
        (_edited_checkpoint(_nan_prompt), "checkpoint {ckpt} cannot be used (prompt tensor 'u' holds NaN or inf"),
        (lambda out: (out / RUN_CONFIG).write_text("{}"), "{run_config} does not hold a lamp run's settings (no task,"),
        (
            lambda out: (out / RUN_CONFIG).write_text("{oops"),
            "{run_config} does not hold a lamp run's settings (not JSON",
        ),
        (_checkpoint_folder, "{ckpt} is a folder, not the run's checkpoint.pt file: move it away or choose another"),
    ],
    ids=["no-step", "state-not-a-mapping", "nan-prompt", "run-config-empty", "run-config-not-json", "folder"],
)
def test_a_broken_checkpoint_or_run_config_is_one_line_naming_the_file(stopped, tiny_task, capsys, damage, named):
    damage(stopped)
    before = digest(stopped)
    line = refused(["train", "--resume", "--out", str(stopped)], capsys)
    assert named.format(ckpt=stopped / CHECKPOINT, run_config=stopped / RUN_CONFIG) in line, line
    assert "pass --overwrite instead of --resume" in line or "move it away" in line
    assert digest(stopped) == before


# ---- 13. output paths and disks ----------------------------------------------------------------------------------
def unwritable() -> Path:
    """A path no one may create, root included (sysfs refuses new entries)."""
    if not Path("/sys/kernel").is_dir():
        pytest.skip("no sysfs here")
    return Path("/sys/lamp-test/out")


@pytest.fixture
def adapter_dir(tmp_path) -> Path:
    return lamp.wrap(make_llama(), lamp.LampConfig(length=4, rank=2, pool=2)).save_adapter(tmp_path / "adapter")


def test_export_to_a_file_is_one_line(llama_dir, adapter_dir, tmp_path, capsys):
    blocker = tmp_path / "blocker.json"
    blocker.write_text("mine\n")
    line = refused(["export", "--adapter", str(adapter_dir), "--model", llama_dir, "--out", str(blocker)], capsys)
    assert line == f"lamp export: error: export output {blocker} is a file: choose a folder for --out"
    assert blocker.read_text() == "mine\n"


def test_unwritable_output_is_one_line_for_each_command(llama_dir, adapter_dir, tiny_task, monkeypatch, capsys):
    out = unwritable()
    line = refused(["export", "--adapter", str(adapter_dir), "--model", llama_dir, "--out", str(out)], capsys)
    assert (
        line.startswith(f"lamp export: error: cannot write to output folder {out} (") and "choose another --out" in line
    )
    line = refused(["train", "--model", llama_dir, "--out", str(out)], capsys)
    assert (
        line.startswith(f"lamp train: error: cannot write to output folder {out} (") and "choose another --out" in line
    )
    line = refused(["compare", "--model", llama_dir, "--methods", "pt", "--max-steps", "1", "--out", str(out)], capsys)
    assert line.startswith(f"lamp compare: error: cannot write to output folder {out} (")
    # bench checks its folder before measuring, not after the whole benchmark ran
    monkeypatch.setattr(lamp.bench, "run_bench", lambda **kwargs: pytest.fail("measured before checking --out"))
    line = refused(["bench", "--model", "random:tiny-llama", "--methods", "none", "--out", str(out)], capsys)
    assert (
        line.startswith(f"lamp bench: error: cannot write to output folder {out} (") and "choose another --out" in line
    )


def test_overwrite_deletes_only_a_runs_own_files(runs, llama_dir, tmp_path, tiny_task, capsys):
    docs = tmp_path / "mydocs"  # no run: a user's folder
    (docs / "thesis").mkdir(parents=True)
    (docs / "thesis" / "chapter1.tex").write_text("x\n")
    (docs / "notes.txt").write_text("mine\n")
    listing = sorted(str(p.relative_to(docs)) for p in docs.rglob("*"))
    for extra in ([], ["--overwrite"], ["--resume"]):
        line = refused(["train", "--model", llama_dir, "--out", str(docs), *extra], capsys)
        assert line == (
            f"lamp train: error: {docs} holds files that are not a lamp run: choose another --out; lamp never "
            "deletes them"
        )
    assert sorted(str(p.relative_to(docs)) for p in docs.rglob("*")) == listing, "not even a lock file is left"
    # A run with the user's files beside it (and in its adapter folder): --overwrite replaces the run's files only.
    out = tmp_path / "run"
    shutil.copytree(runs[0], out)
    mine = {out / "notes.txt": "mine\n", out / "thesis" / "chapter1.tex": "x\n", out / "adapter" / "README": "mine\n"}
    for path, text in mine.items():
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    old = digest(out)
    args = ["train", "--overwrite", "--out", str(out), "--model", llama_dir, "--method", "pt", "--length", "4"]
    assert main([*args, "--max-steps", "2", "--eval-every", "2", "--no-zero-shot"]) == 0
    assert all(path.read_text() == text for path, text in mine.items())
    new = digest(out)
    assert (
        new["results.json"] != old["results.json"]
        and new["adapter/adapter.safetensors"] != old["adapter/adapter.safetensors"]
    )


def test_a_failed_export_leaves_the_earlier_one_whole(llama_dir, adapter_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "peft"
    assert main(["export", "--adapter", str(adapter_dir), "--model", llama_dir, "--out", str(out)]) == 0
    before = digest(out)
    # Another prompt, of another length: every file of its export but the README differs from the earlier one.
    lamp.wrap(make_llama(), lamp.LampConfig(length=8, rank=2, pool=2)).save_adapter(tmp_path / "other")
    copy, calls = shutil.copyfile, []

    def disk_fills(source, target):  # the last file finds the disk full halfway
        calls.append(source)
        if len(calls) == len(before):
            Path(target).write_bytes(b"half")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return copy(source, target)

    monkeypatch.setattr(shutil, "copyfile", disk_fills)
    args = ["export", "--adapter", str(tmp_path / "other"), "--model", llama_dir, "--out", str(out)]
    line = refused(args, capsys, after_loading=True)
    assert "the disk is full; free some space or choose another output path" in line
    assert digest(out) == before, "no file of the earlier export changed, not even the ones written before the failure"
    assert sorted(p.name for p in out.iterdir()) == sorted(before), "no half-written file is left"
    monkeypatch.undo()
    assert main(args) == 0 and digest(out) != before  # the same export, on a disk with room, replaces the files


class FullDisk:
    """A file on a disk that fills after `room` bytes: writes past it fail with ENOSPC."""

    def __init__(self, file, room: int) -> None:
        self.file, self.room = file, room

    def write(self, data) -> int:
        if self.file.tell() + len(data) > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.file.write(data)

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()


def test_a_disk_that_fills_mid_run_is_one_line_and_the_run_resumes(
    runs, llama_dir, tmp_path, tiny_task, monkeypatch, capsys
):
    opened = []

    def fills_at_the_second_checkpoint(path, mode="r", *args, **kwargs):
        opened.append(path)
        file = open(path, mode, *args, **kwargs)
        return FullDisk(file, room=100) if len(opened) == 2 else file

    monkeypatch.setattr(lamp.run_folder, "open", fills_at_the_second_checkpoint, raising=False)  # torch_save's open
    out = tmp_path / "run"
    args = ["train", "--model", llama_dir, "--method", "lamp", "--length", "8", "--rank", "2", "--pool", "2"]
    args += ["--lr", "0.3", "--batch-size", "4", "--max-steps", "8", "--eval-every", "4", "--warmup-steps", "0"]
    args += ["--seed", "0", "--no-zero-shot", "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    line = err[err.index("lamp train: error:") :].strip()  # after the progress bar
    assert "\n" not in line and "Traceback" not in err
    assert line == (
        f"lamp train: error: cannot write {out / CHECKPOINT}: the disk is full; free some space or choose another "
        f"output path; the last good checkpoint (step 4) and the adapter of the best validation step are kept in "
        f"{out}: resume there with --resume once it can be written"
    )
    assert torch.load(out / CHECKPOINT, weights_only=False)["state"]["step"] == 4
    assert not [p for p in out.rglob(".*") if p.name != LOCK], "no half-written file is left"
    monkeypatch.undo()
    monkeypatch.setattr(lamp.tasks, "load_splits", lambda name, data_dir=None, seed=42: SPLITS)
    assert main(["train", "--resume", "--out", str(out)]) == 0
    assert_same_run(out, runs[0])


def safetensors_error(path):
    from safetensors import SafetensorError

    raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")


def half_then_full(path):
    Path(path).write_bytes(b"half")
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize(
    "write,problem",
    [
        (half_then_full, "the disk is full; free some space or choose another output path"),
        (safetensors_error, "the disk is full; free some space or choose another output path"),
        ("torch", "the disk is full; free some space or choose another output path"),
        ("read-only", "the file system is read-only; choose an output path on a writable disk"),
    ],
    ids=["OSError", "safetensors", "torch.save", "read-only"],
)
def test_a_failed_write_is_one_line_and_keeps_the_earlier_file(tmp_path, monkeypatch, write, problem):
    target = tmp_path / "checkpoint.pt"
    target.write_bytes(b"earlier")
    if write == "torch":
        monkeypatch.setattr(lamp.run_folder, "open", lambda p, m="r": FullDisk(open(p, m), room=100), raising=False)

        def write(path):
            lamp.run_folder.torch_save({"prompt": torch.zeros(1000)}, path)

    elif write == "read-only":

        def replace(source, target):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))

        monkeypatch.setattr(os, "replace", replace)

        def write(path):
            Path(path).write_bytes(b"new")

    with pytest.raises(ConfigError) as info:
        atomic_write(target, write)
    assert str(info.value) == f"cannot write {target}: {problem}"
    assert target.read_bytes() == b"earlier"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_overwrite_keeps_the_old_run_until_the_new_one_starts(runs, llama_dir, tmp_path, tiny_task, capsys):
    out = tmp_path / "run"
    shutil.copytree(runs[0], out)
    before = digest(out)
    line = refused(["train", "--overwrite", "--out", str(out), "--model", str(tmp_path / "no-model")], capsys)
    assert "cannot load model" in line
    args = ["train", "--overwrite", "--out", str(out), "--model", llama_dir, "--init-from", "nope"]
    line = refused(args, capsys, after_loading=True)
    assert "no adapter at nope" in line
    assert digest(out) == before


def test_a_runs_record_as_config_never_resumes_or_overwrites_a_run(runs, tmp_path, tiny_task, capsys):
    """README: `lamp train --config RUN/train_config.json` reruns a run's settings. Was: the record of an --overwrite
    run held `"overwrite": true`, so a rerun from it replaced whatever run its --out held, without being asked; a
    --resume run's record made the rerun refuse a fresh folder ("holds no run to resume")."""
    record = json.loads((runs[0] / RUN_CONFIG).read_text())
    assert not {"resume", "overwrite"} & set(record), "what a command did to its folder is not a setting of the run"
    victim = tmp_path / "victim"
    shutil.copytree(runs[0], victim)
    before = digest(victim)
    config = tmp_path / "record.json"
    for action in ("overwrite", "resume"):  # an older record's action, or one written by hand: refused, not obeyed
        config.write_text(json.dumps({**record, action: True, "max_steps": 3}))
        line = refused(["train", "--config", str(config), "--out", str(victim)], capsys)
        assert line == (
            f"lamp train: error: {config}: {action}: true is not read from a --config file (what a command does to "
            f"its --out folder is given on the command line): pass --{action} and drop the key"
        )
    config.write_text(json.dumps({**record, "overwrite": False, "max_steps": 3}))  # false asks for nothing: read
    line = refused(["train", "--config", str(config), "--out", str(victim)], capsys)
    assert line == (
        f"lamp train: error: {victim} already holds a run: pass --resume to continue it, --overwrite to replace it"
    )
    assert digest(victim) == before


# ---- 14. two processes on one folder -----------------------------------------------------------------------------
@contextlib.contextmanager
def held_by_another_process(folder: Path):
    """Another process that holds `folder`'s lock until the block ends (then it is killed, as a crash would)."""
    folder.mkdir(parents=True, exist_ok=True)
    code = "import sys; from filelock import FileLock; lock = FileLock(sys.argv[1]); lock.acquire(); print('locked'); "
    code += "sys.stdout.flush(); sys.stdin.read()"
    holder = subprocess.Popen([sys.executable, "-c", code, str(folder / LOCK)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_a_second_process_on_one_run_folder_is_refused(llama_dir, stopped, tmp_path, tiny_task, capsys):
    before = digest(stopped)
    with held_by_another_process(stopped):
        for extra in (["--resume"], ["--overwrite"]):
            line = refused(["train", "--out", str(stopped), "--model", llama_dir, *extra], capsys)
            assert line == (
                f"lamp train: error: {stopped} is in use by another lamp process: wait for it to end, or choose "
                "another --out"
            )
        assert digest(stopped) == before
    fresh = tmp_path / "fresh"
    with held_by_another_process(fresh):
        assert "is in use by another lamp process" in refused(["train", "--out", str(fresh)], capsys)
    # The holder was killed: its lock went with it, so nothing stale blocks the folder.
    train(config(llama_dir, fresh, max_steps=2, eval_every=2, zero_shot=False))
    assert (fresh / "results.json").is_file()


def test_a_second_compare_on_one_grid_folder_is_refused(llama_dir, tmp_path, tiny_task, capsys):
    grid = tmp_path / "grid"
    args = ["compare", "--model", llama_dir, "--methods", "pt", "--max-steps", "2", "--out", str(grid)]
    with held_by_another_process(grid):
        line = refused(args, capsys)
        assert line == (
            f"lamp compare: error: {grid} is in use by another lamp process: wait for it to end, or choose another "
            "--out"
        )
        # A report only reads the cells, so it may run beside the grid (here there is nothing to report yet).
        assert "no finished cells" in refused([*args, "--report-only"], capsys)
    assert not (grid / "cells").exists()


# ---- 15. leftovers, modes and what a stop says is kept -----------------------------------------------------------
def test_written_files_get_the_mode_of_a_plain_open(llama_dir, tmp_path, tiny_task):
    umask = os.umask(0o027)
    try:
        train(config(llama_dir, tmp_path / "run", max_steps=2, eval_every=2, zero_shot=False))
        lamp.export_peft(lamp.load_adapter(make_llama(), tmp_path / "run" / "adapter"), tmp_path / "peft")
    finally:
        os.umask(umask)
    modes = {str(p.relative_to(tmp_path)): oct(p.stat().st_mode & 0o777) for p in tmp_path.rglob("*") if p.is_file()}
    modes.pop(f"run/{LOCK}")
    assert {"run/checkpoint.pt", "run/results.json", "run/adapter/adapter.safetensors", "run/training.png",
            f"run/{RUN_CONFIG}", "peft/adapter_model.safetensors"} <= modes.keys()  # fmt: skip
    assert set(modes.values()) == {oct(0o640)}, sorted(modes.items())


def test_a_nan_before_the_first_checkpoint_says_nothing_is_saved(llama_dir, tmp_path, tiny_task, monkeypatch):
    forward = lamp.PromptedModel.forward

    def poisoned(self, *args, **kwargs):
        out = forward(self, *args, **kwargs)
        if self.training:
            out["loss"] = out.loss * float("nan")
        return out

    monkeypatch.setattr(lamp.PromptedModel, "forward", poisoned)
    out = tmp_path / "run"
    with pytest.raises(TrainingError) as info:
        train(config(llama_dir, out, max_steps=12, eval_every=4, zero_shot=False))
    assert str(info.value) == (
        f"loss became nan at step 1: lower --lr or check the data, and start over with --overwrite; nothing is "
        f"saved in {out} yet (the first checkpoint comes at step 4)"
    )
    assert not (out / CHECKPOINT).exists() and not (out / "adapter").exists()


def test_an_error_in_the_loop_starts_its_own_line_after_the_progress_bar(
    llama_dir, tmp_path, tiny_task, monkeypatch, capsys
):
    forward = lamp.PromptedModel.forward

    def poisoned(self, *args, **kwargs):
        out = forward(self, *args, **kwargs)
        if self.training:
            out["loss"] = out.loss * float("nan")
        return out

    monkeypatch.setattr(lamp.PromptedModel, "forward", poisoned)
    args = ["train", "--model", llama_dir, "--method", "pt", "--length", "4", "--max-steps", "8", "--eval-every", "4"]
    assert main([*args, "--no-zero-shot", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "it/s" in err, "the progress bar was drawn"
    errors = [line for line in err.replace("\r", "\n").splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith("lamp train: error: loss became nan at step 1"), errors


def test_an_interrupt_anywhere_is_one_line_and_exit_130(
    llama_dir, adapter_dir, tmp_path, tiny_task, monkeypatch, capsys
):
    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    out = tmp_path / "run"
    args = ["train", "--model", llama_dir, "--method", "pt", "--length", "4", "--max-steps", "4", "--out", str(out)]
    with monkeypatch.context() as patch:  # Ctrl-C during zero-shot scoring, before the training loop
        patch.setattr(lamp.train.Evaluator, "__call__", interrupted)
        assert main(args) == 130
    lines = [line for line in capsys.readouterr().err.replace("\r", "\n").splitlines() if line.startswith("lamp ")]
    assert lines == [f"lamp train: interrupted; resume with --resume --out {out}"]

    step, calls = torch.optim.AdamW.step, []

    def stop_at_step_2(self, *args, **kwargs):  # in the loop: the loop's own line, and no second one
        result = step(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return result

    with monkeypatch.context() as patch:
        patch.setattr(torch.optim.AdamW, "step", stop_at_step_2)
        assert main(["train", "--resume", "--out", str(out)]) == 130
    lines = [line for line in capsys.readouterr().err.replace("\r", "\n").splitlines() if line.startswith("lamp ")]
    assert lines == [f"lamp train: stopped at step 2, checkpoint saved; resume with --resume --out {out}"]

    monkeypatch.setattr(lamp.train.Evaluator, "__call__", interrupted)  # other commands: one generic line
    assert main(["eval", "--adapter", str(adapter_dir), "--model", llama_dir, "--task", "polarity"]) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "lamp eval: interrupted"


def test_a_run_refused_after_the_lock_leaves_no_folder_behind(tmp_path, capsys):
    # train and compare lock --out before the model loads; a bad --model must not leave an empty folder (or its
    # parents) holding only the lock file. A folder that existed, or that got any file, stays.
    out = tmp_path / "new" / "run"
    assert "cannot load model" in refused(["train", "--model", str(tmp_path / "no-model"), "--out", str(out)], capsys)
    assert not (tmp_path / "new").exists()
    lock = lamp.run_folder.lock_folder(out)
    (out / "user.txt").write_text("kept")
    lock.release()
    assert (out / "user.txt").read_text() == "kept"
    existing = tmp_path / "existing"
    existing.mkdir()
    lamp.run_folder.lock_folder(existing).release()
    assert existing.is_dir()
