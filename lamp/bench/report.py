"""Reporting: the rows as a plain-text table, JSON and bar charts (`bench.txt`, `bench.json`, `bench.png`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lamp.adapter import atomic_write

RANDOM_CAVEAT = ": valid for time and memory, not for quality"


def format_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table plus the setup and each row's caveat."""
    cpu = bool(rows) and rows[0]["step_cpu_ms"] is not None
    header = ["method", "trainable", "prompt pos", "step ms (q1-q3)", "tokens/s", "peak MB", "infer ms", "all-logits"]
    if cpu:
        header[4:4] = ["step cpu ms"]
        header += ["infer cpu", "all-logits cpu"]
    lines = [header]
    for r in rows:
        line = [
            r["method"],
            f"{r['trainable_params']:,}",
            str(r["n_virtual"]),
            f"{r['step_ms']:.1f} ({r['step_ms_q1']:.0f}-{r['step_ms_q3']:.0f})",
            f"{r['tokens_per_s']:,.0f}",
            f"{r['peak_mem_mb']:,.0f}",
            f"{r['infer_ms']:.1f}",
            f"{r['infer_all_ms']:.1f}",
        ]
        if cpu:
            line[4:4] = [f"{r['step_cpu_ms']:.1f}"]
            line += [f"{r['infer_cpu_ms']:.1f}", f"{r['infer_all_cpu_ms']:.1f}"]
        lines.append(line)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    ]
    text.insert(1, "  ".join("-" * w for w in widths))
    if rows:
        r = rows[0]
        loads = ", ".join(str(x) for row in rows for x in row["load_avg"])
        text += [
            "",
            f"model {r['model']} ({r['weights']} weights{RANDOM_CAVEAT if r['weights'] == 'random' else ''}), "
            f"{r['device']}, {r['dtype']}, autocast {r['autocast']}, "
            f"batch {r['batch_size']} x {r['seq_len']} tokens, {r['timed_steps']} timed steps per method, "
            f"compile {r['compile']}, {r['torch_threads']} threads",
            "step: forward + backward + AdamW step (median); infer: no-grad forward, logits at the scored position; "
            "all-logits: the same with logits at every position; tokens/s counts input tokens, not prompt positions"
            + ("; cpu: this process's CPU time (steadier than wall time on a shared CPU)" if cpu else ""),
            f"peak memory: {r['mem_kind']}",
            f"1-minute load average when each method started: {loads}",
        ]
        text += [f"{row['method']}: {row['note']}" for row in rows if row["note"]]
    return "\n".join(text)


def plot_bench(rows: list[dict[str, Any]], path: str | os.PathLike) -> None:
    """Bar charts of step time, peak memory and inference latency per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["method"] for r in rows]
    panels = [("step_ms", "train step (ms)"), ("peak_mem_mb", "peak memory (MB)"), ("infer_ms", "inference (ms)")]
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 0.5 * len(rows) + 1.8))
    for axis, (key, label) in zip(axes, panels, strict=True):
        axis.barh(names, [r[key] for r in rows], color="tab:blue")
        axis.set(xlabel=label)
        axis.invert_yaxis()
        axis.grid(axis="x", alpha=0.3)
    for axis in axes[1:]:
        axis.set_yticklabels([])
    r = rows[0]
    figure.suptitle(f"{r['model']} ({r['weights']} weights), {r['device']}, batch {r['batch_size']}x{r['seq_len']}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_outputs(rows: list[dict[str, Any]], out: str | os.PathLike) -> Path:
    """`bench.json` (the rows), `bench.txt` (the table) and `bench.png` in `out`."""
    folder = Path(out)  # each file written whole or not at all; a failed write is one line naming the path
    atomic_write(folder / "bench.json", lambda tmp: Path(tmp).write_text(json.dumps(rows, indent=2) + "\n"))
    atomic_write(folder / "bench.txt", lambda tmp: Path(tmp).write_text(format_table(rows) + "\n"))
    atomic_write(folder / "bench.png", lambda tmp: plot_bench(rows, Path(tmp)))
    return folder
