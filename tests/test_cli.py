"""Every subcommand's help renders, and `lamp train`'s flags carry TrainConfig's field docs."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import lamp
from lamp.cli import COMMANDS, main
from lamp.methods import METHODS
from lamp.train import TrainConfig


@pytest.mark.parametrize("command", COMMANDS)
def test_help_renders(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert f"usage: lamp {command}" in capsys.readouterr().out


def test_train_help_documents_every_field(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for field in dataclasses.fields(TrainConfig):
        flag = "--set" if field.name == "method_options" else "--" + field.name.replace("_", "-")
        assert flag in text, flag
    assert "10% of max_steps" in text and "Peak learning rate" in text
    for shorthand in ("--length", "--rank", "--pool", "--init", "--init-text"):  # kept for README and recipes
        assert f"{shorthand} " in text and f"Shorthand for --method.{shorthand[2:].replace('-', '_')}" in text
    for method, entry in METHODS.items():  # every option of every method has its nested flag
        for field in dataclasses.fields(entry.config):
            assert f"--method.{field.name} VALUE" in text, (method, field.name)


@pytest.mark.parametrize(
    ("flags", "options"),
    [
        ([], {}),
        (["--length", "8", "--rank", "2", "--pool", "2"], {"length": 8, "rank": 2, "pool": 2}),
        (["--method.rank", "4", "--set", "pool=2", "--method.length", "8"], {"rank": 4, "pool": 2, "length": 8}),
        (["--method", "lora", "--method.target-modules", "['q_proj']"], {"target_modules": ["q_proj"]}),
        (["--method", "lora", "--method.target_modules", "all-linear"], {"target_modules": "all-linear"}),
        (["--set", "rank=2", "--set", "rank=2", "--set", "pool=2"], {"rank": 2, "pool": 2}),  # repeated, the same
        (["--method.init", "text", "--method.init_text", "1 2", "--method.scale_lr", "true"], None),
    ],
)
def test_method_options_come_from_nested_flags_set_and_shorthands(flags, options):
    from lamp.cli import build_parser
    from lamp.commands.train import config_from_args

    config = config_from_args(build_parser().parse_args(["train", *flags]), TrainConfig)
    expected = {"init": "text", "init_text": "1 2", "scale_lr": True} if options is None else options
    assert config.method_options == expected
    assert config.method_config() == lamp.make_config(config.method, **expected)


def test_a_yaml_file_gives_method_options_and_flags_win_option_by_option(tmp_path):
    from lamp.cli import build_parser
    from lamp.commands.train import config_from_args

    path = tmp_path / "run.yaml"
    path.write_text("method: lamp\nlength: 20\nmethod_options: {pool: 4, rank: 2}\n")
    args = build_parser().parse_args(["train", "--config", str(path), "--method.rank", "5"])
    assert config_from_args(args, TrainConfig).method_options == {"length": 20, "pool": 4, "rank": 5}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--rank", "4", "--set", "rank=5"], "--rank 4 and method option rank=5 disagree: pass one"),
        (["--method", "pt", "--rank", "4"], "method 'pt' has no option rank: its options are init, init_text, length"),
        (["--method.rank", "0"], "rank must be a positive integer, got 0"),
        (["--set", "rank=2", "--set", "rank=3"], "--set rank=2 and --set rank=3 disagree: pass one"),
        (["--method", "nope"], "unknown method 'nope' (did you mean 'none'?): choose one of lamp, pt"),
    ],
)
def test_bad_method_options_are_one_line(flags, message, capsys, tmp_path):
    assert main(["train", *flags, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "run").exists(), "refused before the output folder is made"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("scale_lr=false", False), ("scale_lr=True", True), ("rank=8", 8), ("lr=3e-4", 3e-4), ("init=vocab", "vocab")],
)
def test_set_values_take_their_python_types(text, expected):
    from lamp.cli_options import key_value

    key, value = key_value(text)
    assert (key, value) == (text.split("=")[0], expected) and type(value) is type(expected)


@pytest.mark.parametrize(
    "argv, header",
    [(["train", "--bogus", "1"], "lamp train"), (["compare", "--method.rank", "8"], "lamp compare"), (["--x"], "lamp")],
)
def test_an_unknown_flag_is_named_by_its_command(argv, header, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"{header}: error: unrecognized arguments: ") and f"(see {header} --help)" in err


@pytest.mark.parametrize(
    "error,line",
    [
        (
            RuntimeError(
                "[enforce fail] DefaultCPUAllocator: can't allocate memory: you tried to allocate 230400000000 "
                "bytes. Error code 12 (Cannot allocate memory)"
            ),
            "out of memory (tried to allocate 230.4 GB): make the batch, the inputs or the prompt smaller",
        ),
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB."), "(tried to allocate 20.00 GiB)"),
        (MemoryError(), "lamp eval: error: out of memory: make the batch"),
    ],
)
def test_an_allocation_that_fails_is_one_line_with_exit_2(error, line, monkeypatch, capsys):
    def fail(args):
        raise error

    monkeypatch.setattr("lamp.commands.eval.run", fail)
    assert main(["eval", "--adapter", "x"]) == 2
    err = capsys.readouterr().err
    assert line in err and err.count("\n") == 1 and "Traceback" not in err


def test_other_runtime_errors_are_not_taken_for_memory(monkeypatch):
    def fail(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr("lamp.commands.eval.run", fail)
    with pytest.raises(RuntimeError, match="a bug"):
        main(["eval", "--adapter", "x"])


def test_a_warning_is_one_line_without_pythons_file_and_source_line(monkeypatch, capsys):
    """Was: `lamp eval` with an adapter from another architecture printed `lamp/evaluation.py:114: UserWarning: ...`
    and the source line under it before its one-line error. (Python prints a warning through formatwarning, which
    pytest's own warning capture bypasses, so the command calls it as Python would.)"""
    import sys
    import warnings

    import lamp.commands.data

    message = "adapter x was trained on a llama model, this backbone is gpt2"

    def warning_command(args):
        sys.stderr.write(warnings.formatwarning(message, UserWarning, "lamp/evaluation.py", 114, "load_adapter(...)"))
        return 0

    monkeypatch.setattr(lamp.commands.data, "run", warning_command)
    assert main(["data", "rte"]) == 0
    assert capsys.readouterr().err == f"lamp data: warning: {message}\n"
    assert "lamp data" not in warnings.formatwarning("w", UserWarning, "f.py", 1)  # restored after the command
