"""A fresh Python process per method (`python -m lamp.bench`): a CPU's peak RSS then belongs to that method
alone, never to memory an earlier method freed but the process kept."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from lamp.bench.config import BenchConfig, MethodSpec
from lamp.bench.measure import load_backbone, measure_method
from lamp.errors import LampError
from lamp.model import model_kind


def measure_in_subprocess(spec: MethodSpec, config: BenchConfig) -> dict[str, Any]:
    """One method's raw measurements (see `measure_method`), taken in a fresh Python process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        payload = json.dumps({"setup": dataclasses.asdict(config), "method": spec.text})
        result = subprocess.run([sys.executable, "-m", "lamp.bench", payload, str(out)], capture_output=True, text=True)
        if result.returncode != 0 or not out.is_file():
            lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
            reason = lines[-1].removeprefix("lamp bench: error: ")  # the worker's own one-line error
            raise LampError(f"benchmark of {spec.text!r} failed in its worker process: {reason}")
        return json.loads(out.read_text())


def worker(argv: list[str]) -> int:
    """The worker process: argv is the JSON payload (the resolved config and one method spec) and the result path."""
    payload = json.loads(argv[0])
    config = BenchConfig(**{**payload["setup"], "methods": [payload["method"]]})
    spec = config.specs[0]
    if config.threads:
        torch.set_num_threads(config.threads)
    backbone = load_backbone(config)
    raw = measure_method(backbone, model_kind(backbone), spec, config, isolated=True)
    Path(argv[1]).write_text(json.dumps(raw))
    return 0
