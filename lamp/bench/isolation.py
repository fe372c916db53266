"""A fresh Python process per method (`python -m lamp.bench`): a CPU's peak RSS then belongs to that method
alone, never to memory an earlier method freed but the process kept."""

from __future__ import annotations

import dataclasses
import json
import re
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

EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b.*")
"""A traceback's last line, `TypeError: ...` (a C++ error's message may run on over more lines after it)."""


def worker_error(output: str) -> str:
    """The one line that says why a worker failed: its own `lamp bench: error:` line, else the exception line of its
    traceback, else its last line of output."""
    lines = [line for line in output.strip().splitlines() if line.strip()] or ["no output"]
    own = [line for line in lines if line.startswith("lamp bench: error: ")]
    if own:
        return own[-1].removeprefix("lamp bench: error: ")
    raised = [line for line in lines if EXCEPTION_LINE.match(line)]
    return " ".join((raised or lines)[-1].split())[:300]


def measure_in_subprocess(spec: MethodSpec, config: BenchConfig) -> dict[str, Any]:
    """One method's raw measurements (see `measure_method`), taken in a fresh Python process."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        payload = json.dumps({"setup": dataclasses.asdict(config), "method": spec.text})
        result = subprocess.run([sys.executable, "-m", "lamp.bench", payload, str(out)], capture_output=True, text=True)
        if result.returncode != 0 or not out.is_file():
            reason = worker_error(result.stderr or result.stdout)
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
