"""Experiment trackers for `lamp train --report-to`, through Hugging Face Accelerate's tracking API.

lamp names the trackers and checks their packages; Accelerate does the rest: `Accelerator(log_with=...,
project_dir=...)`, `accelerator.init_trackers(PROJECT, config=...)`, `accelerator.log(values, step=...)` and each
tracker's `finish()` (accelerate/tracking.py). Trackers that write local files (TensorBoard, Aim) write them under
`OUT/runs/`; the others go where their own settings say (WANDB_*, MLFLOW_TRACKING_URI, ...).
"""

from __future__ import annotations

import json
from typing import Any

from lamp.errors import ConfigError

TRACKERS = {
    "tensorboard": "tensorboard",
    "wandb": "wandb",
    "mlflow": "mlflow",
    "comet_ml": "comet-ml",
    "aim": "aim",
    "clearml": "clearml",
    "dvclive": "dvclive",
}
"""Accelerate's trackers (`accelerate.utils.LoggerType`) that --report-to offers, each with the pip package it needs."""
CHOICES = ("none", *TRACKERS, "all")
TRACKING_DIR = "runs"
"""Accelerate's logging folder inside the run folder: TensorBoard writes OUT/runs/lamp/, Aim its repository."""
PROJECT = "lamp"
"""The project name given to `init_trackers` (TensorBoard's subfolder, the W&B project, the MLflow experiment...)."""


def parse_report_to(value: str) -> list[str]:
    """The trackers `value` names (none; all: every installed one; or a comma list), [] for none. An unknown name,
    or a tracker whose package is not installed, is a one-line ConfigError naming the choices or the pip package."""
    names = [name.strip() for name in value.split(",")]
    alone = {"none", "all"}
    if any(name not in CHOICES for name in names) or (len(names) > 1 and alone & set(names)):
        raise ConfigError(
            f"unknown --report-to {value!r}: choose none, all, or one or more (comma-separated) of "
            + ", ".join(TRACKERS)
        )
    if names == ["none"]:
        return []
    from accelerate.tracking import get_available_trackers

    installed = {str(tracker) for tracker in get_available_trackers()}
    if names == ["all"] and not installed & set(TRACKERS):
        raise ConfigError("--report-to all found no tracker installed: pip install tensorboard (or another tracker)")
    missing = [name for name in names if name in TRACKERS and name not in installed]
    if missing:
        packages = " ".join(TRACKERS[name] for name in missing)
        raise ConfigError(f"--report-to {','.join(missing)} needs its package: pip install {packages}")
    return names


def hparams(config: dict[str, Any]) -> dict[str, Any]:
    """A run's settings as trackers take them: scalars, with mappings and lists as JSON text (TensorBoard's
    `add_hparams` accepts only numbers, text, booleans and None)."""
    return {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in config.items()}


def scalars(prefix: str, metrics: dict[str, Any]) -> dict[str, float]:
    """`metrics`' numbers named `prefix/name`, as `accelerator.log` takes them."""
    return {f"{prefix}/{k}": v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
