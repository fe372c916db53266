"""The offline backbone's one-time conversion: processes that ask at once convert it once (a file lock)."""

from __future__ import annotations

import threading
import time

import lamp.backbones as backbones


def test_concurrent_first_use_converts_smollm2_once(tmp_path, monkeypatch):
    # `lamp compare --workers N` on a fresh cache: N processes ask for the model at once. Without the lock each
    # converted it, and one's clean-up of the half-written folder could remove another's.
    monkeypatch.setenv("LAMP_CACHE", str(tmp_path))
    conversions = []

    def convert(target):
        conversions.append(target)
        time.sleep(0.3)  # long enough for the other callers to arrive while it converts
        target.mkdir(parents=True)
        (target / "config.json").write_text("{}")
        (target / "tokenizer_config.json").write_text("{}")

    monkeypatch.setattr(backbones, "_convert_smollm2", convert)
    found = []
    threads = [threading.Thread(target=lambda: found.append(backbones.smollm2_dir())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(conversions) == 1 and found == [tmp_path / "models" / backbones.SMOLLM2] * 4
    assert backbones.smollm2_dir() == found[0] and len(conversions) == 1, "a converted model is read, not redone"
