"""benchmarks/warm-start.sh on a tiny model and a tiny SST-2 release: PT-25 for WARM steps, then LAMP from its prompt
(each PT row written `pool` times), and a rerun keeps both finished stages."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sst2_folder(root: Path) -> str:
    """An SST-2 release (GLUE TSV) big enough for its protocol (1,000 train rows are held out as validation)."""
    rng = random.Random(0)
    words = "the a movie film was is good bad great terrible boring fun not very it and of to this that".split()
    folder = root / "glue" / "SST-2"
    folder.mkdir(parents=True)
    for name, n in (("train.tsv", 1030), ("dev.tsv", 16)):
        rows = [f"{' '.join(rng.sample(words, 5))}\t{rng.randint(0, 1)}" for _ in range(n)]
        (folder / name).write_text("\n".join(["sentence\tlabel", *rows]) + "\n")
    return str(root)


def test_warm_start_script_starts_lamp_where_pt_ended(llama_dir, tmp_path):
    out = tmp_path / "out"
    lamp_bin = Path(sys.executable).parent / "lamp"
    env = {
        **os.environ,
        "LAMP": str(lamp_bin),
        "MODEL": llama_dir,
        "DATA": sst2_folder(tmp_path / "data"),
        "OUT": str(out),
        "WARM": "2",
        "STEPS": "3",
        "EXTRA": "--batch-size 2 --max-eval-examples 8 --mixed-precision no",
        "TQDM_DISABLE": "1",
    }
    script = ROOT / "benchmarks" / "warm-start.sh"
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    pt = json.loads((out / "pt25-2" / "results.json").read_text())
    warm = json.loads((out / "lamp-from-pt25-2" / "results.json").read_text())
    assert (pt["method"], pt["steps"], pt["n_virtual"]) == ("pt", 2, 25)
    assert (warm["method"], warm["steps"], warm["n_virtual"]) == ("lamp", 1, 25)
    # LAMP starts from PT-25's 25 rows, each written pool=4 times: length 100, and the model sees 25 rows as PT did
    assert (warm["prompt_config"]["length"], warm["prompt_config"]["rank"]) == (100, 8)
    assert (
        Path(json.loads((out / "lamp-from-pt25-2" / "train_config.json").read_text())["init_from"]).parent
        == (out / "pt25-2").resolve()
    )
    again = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, timeout=900)
    assert again.returncode == 0 and again.stdout.count("finished earlier") == 2, again.stdout + again.stderr
