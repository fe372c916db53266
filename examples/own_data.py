"""Bring your own data: LAMP on SmolLM2-135M, a small instruction-style JSONL task this script writes itself.

The task is free-form generation: ``{"question": "What is 7 plus 5?", "answer": "12"}`` for 200 deterministic pairs
of numbers from 0 to 19. The data file is split by lamp's protocol for a lone train file (80 / 10 / 10), the prompt
is trained on the answer tokens only, and the test split is scored by generation (exact match, token F1, ROUGE-L)
before training (the bare backbone, no prompt) and after. Offline, CPU, a few minutes:

    OMP_NUM_THREADS=1 python examples/own_data.py [--steps 80] [--out runs/own-data]

The same run from the command line (after the script has written the data file):

    lamp train --train-file runs/own-data/sums.jsonl --template "Question: {question}\\nAnswer:" \\
        --target-field answer --max-new-tokens 6 --max-steps 80 --batch-size 8 --eval-every 20 --out runs/own-data/run
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from lamp.train import TrainConfig, train


def write_task(path: Path, n: int = 200, seed: int = 0) -> Path:
    """`n` distinct "What is a plus b?" questions (a, b in 0..19) and their answers, one JSON object per line."""
    pairs = [(a, b) for a in range(20) for b in range(20)]
    random.Random(seed).shuffle(pairs)
    rows = [{"question": f"What is {a} plus {b}?", "answer": str(a + b)} for a, b in pairs[:n]]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=80, help="optimizer steps (default: 80)")
    parser.add_argument("--out", default="runs/own-data", help="folder for the data file and the run")
    args = parser.parse_args()

    data = write_task(Path(args.out) / "sums.jsonl")
    config = TrainConfig(
        model="smollm2-135m",
        train_file=str(data),
        template="Question: {question}\nAnswer:",
        target_field="answer",
        max_new_tokens=6,
        max_steps=args.steps,
        batch_size=8,
        eval_every=20,
        out=str(Path(args.out) / "run"),
        overwrite=True,
    )
    results = train(config)
    before, after = results["zero_shot"], results["test"]
    print(f"\nsplits {results['split_sizes']}; test metrics (0-100), before -> after {results['steps']} steps:")
    for name in ("exact_match", "f1", "rouge_l"):
        print(f"  {name:12s} {before[name]:6.2f} -> {after[name]:6.2f}")


if __name__ == "__main__":
    main()
