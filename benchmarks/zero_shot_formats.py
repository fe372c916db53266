"""Zero-shot SST-2 test accuracy of SmolLM2-135M-Instruct with no prompt, under three input formats.

Rank classification on the first token of " negative" / " positive", test = the 872 official dev sentences.
    python benchmarks/zero_shot_formats.py      # from the repository root; reads ../shared/data
"""

import time

import lamp
from lamp.backbones import load_model, load_tokenizer
from lamp.data import pad_id
from lamp.methods import make_config
from lamp.scoring import label_token_ids, rank_scores
from lamp.tasks import get_task, load_splits

tok = load_tokenizer("smollm2-135m")
model = lamp.wrap(load_model("smollm2-135m"), make_config("lora")).eval()  # LoRA starts at B = 0: the bare model
task = get_task("sst2")
test = load_splits("sst2", "../shared/data", 0)["test"]
labels = label_token_ids(tok, "causal", task.label_words)
formats = {
    "t5 (as shipped)": lambda e: e.source,
    "t5 + answer cue": lambda e: e.source + "\nAnswer (negative or positive):",
    "Review/Sentiment": lambda e: "Review: " + e.source.split("sentence: ", 1)[1] + "\nSentiment:",
}
for name, fmt in formats.items():
    t = time.time()
    correct = 0
    rows = [tok(fmt(e), add_special_tokens=False)["input_ids"] for e in test]
    for i in range(0, len(rows), 32):
        best = rank_scores(model, rows[i : i + 32], labels, pad_id(tok)).argmax(-1).tolist()
        correct += sum(task.label_value(b) == e.label for b, e in zip(best, test[i : i + 32], strict=True))
    print(f"{name}: {100 * correct / len(test):.1f}% ({time.time() - t:.0f} s)")
