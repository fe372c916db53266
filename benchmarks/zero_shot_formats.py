"""Zero-shot validation scores of SmolLM2-135M-Instruct with no prompt, per task and input format.

Formats: t5 (T5 / DePT's text-to-text input), natural (the task's template and label words), natural + the model's
chat template with the label word after a space (as lamp trains it) and without one (`--candidates` also scores
the alternative templates below, which is how each task's template was chosen: on validation only). Rank
classification over each format's label words (`lamp.scoring.rank_scores`); the model is wrapped with LoRA, whose
B starts at 0, so it computes the bare model.
    python benchmarks/zero_shot_formats.py --data-dir ../shared/data      # from the repository root
"""

import argparse
import dataclasses
import time

import lamp
from lamp.backbones import load_model, load_tokenizer
from lamp.data import chat_wrapper, encode, pad_id
from lamp.methods import make_config
from lamp.scoring import label_token_ids, rank_scores
from lamp.tasks import Template, get_task, load_splits

# Alternatives to each task's natural template, scored with --candidates.
CANDIDATES = {
    "sst2": Template("{sentence}\nQuestion: Is this review positive or negative?\nAnswer:", ("negative", "positive")),
    "polarity": Template(
        "{sentence}\nQuestion: Is this review positive or negative?\nAnswer:", ("negative", "positive")
    ),
    "rte": Template('{sentence1}\nQuestion: Does this imply that "{sentence2}"? Yes or no?\nAnswer:', ("yes", "no")),
    "cb": Template("{premise}\nQuestion: {hypothesis} True, False, or Neither?\nAnswer:", ("True", "False", "Neither")),
    "mrpc": Template(
        "Sentence 1: {sentence1}\nSentence 2: {sentence2}\nQuestion: Are these two sentences paraphrases of each "
        "other?\nAnswer:",
        ("no", "yes"),
    ),
    "cola": Template("Sentence: {sentence}\nQuestion: Does this sentence make sense?\nAnswer:", ("no", "yes")),
}


def score(model, tokenizer, task, examples, lead: str, batch_size: int = 16) -> float:
    """The task's validation score, rank classification over its label words after `lead`."""
    labels = label_token_ids(tokenizer, "causal", task.label_words, lead)
    encoded = encode(examples, tokenizer, "causal", 256)
    predictions = []
    for i in range(0, len(encoded), batch_size):
        sources = [e.source for e in encoded[i : i + batch_size]]
        best = rank_scores(model, sources, labels, pad_id(tokenizer)).argmax(-1).tolist()
        predictions += [task.label_value(b) for b in best]
    return task.compute_metrics(predictions, examples)["score"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--tasks", nargs="+", default=["sst2", "rte", "mrpc", "cb", "cola", "polarity"])
    parser.add_argument("--rows", type=int, default=300, help="validation rows per task (at most)")
    parser.add_argument("--seed", type=int, default=42, help="split seed")
    parser.add_argument("--candidates", action="store_true", help="also score the alternative templates")
    args = parser.parse_args()

    tokenizer = load_tokenizer("smollm2-135m")
    model = lamp.wrap(load_model("smollm2-135m"), make_config("lora")).eval()  # LoRA starts at B = 0: the bare model
    wrapper = chat_wrapper(tokenizer, "causal")
    print(
        "| task | rows | t5 | natural | natural + chat | natural + chat, no space |"
        + (" candidate |" * args.candidates)
    )
    print("|---|---:|---:|---:|---:|---:|" + ("---:|" * args.candidates))
    for name in args.tasks:
        started = time.time()
        natural = get_task(name, "natural")
        views = [(get_task(name), " "), (natural, " "), (natural.in_chat(wrapper), " "), (natural.in_chat(wrapper), "")]
        if args.candidates and name in CANDIDATES:
            views.append((dataclasses.replace(get_task(name), natural=CANDIDATES[name]).in_format("natural"), " "))
        scores = []
        for view, lead in views:
            rows = load_splits(view, args.data_dir, args.seed)["validation"][: args.rows]
            scores.append(score(model, tokenizer, view, rows, lead))
        cells = " | ".join(f"{s:.1f}" for s in scores)
        print(f"| {name} | {len(rows)} | {cells} |  <!-- {time.time() - started:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
