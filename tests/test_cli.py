"""Every subcommand's help renders, and `lamp train`'s flags carry TrainConfig's field docs."""

from __future__ import annotations

import dataclasses

import pytest

from lamp.cli import COMMANDS, main
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


@pytest.mark.parametrize(
    ("text", "expected"),
    [("scale_lr=false", False), ("scale_lr=True", True), ("rank=8", 8), ("lr=3e-4", 3e-4), ("init=vocab", "vocab")],
)
def test_set_values_take_their_python_types(text, expected):
    from lamp.commands.train import _option

    key, value = _option(text)
    assert (key, value) == (text.split("=")[0], expected) and type(value) is type(expected)
