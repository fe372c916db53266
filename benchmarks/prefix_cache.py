"""Scoring time with and without the shared prompt's key/value cache, and whether any prediction changes.

A causal LM's prompt sits in front of every input and attends only to itself, so `PromptedModel` computes its
keys and values once per prompt at evaluation and feeds each batch only its inputs. This script scores the same
test examples both ways (rank classification, batch 32, fp32) with a perturbed, trained-looking prompt.

    python benchmarks/prefix_cache.py --task sst2 --method pt --examples 256
    python benchmarks/prefix_cache.py --task rte --method dept --examples 64

Run from the repository root with the package installed (`make install`).
"""

from __future__ import annotations

import argparse
import time

import torch

import lamp
from lamp.backbones import load_model, load_tokenizer
from lamp.compare import load_recipe, make_grid
from lamp.data import encode
from lamp.errors import ConfigError
from lamp.scoring import predict
from lamp.tasks import get_task, load_splits

RECIPE = "benchmarks/quality-t5-24steps.yaml"  # each method runs with this recipe's options (as measured)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="sst2")
    parser.add_argument("--method", default="pt", help=f"a method label of {RECIPE}: pt, lamp, dept or dpt")
    parser.add_argument("--examples", type=int, default=256)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--data-dir", default="../shared/data")
    args = parser.parse_args()

    torch.manual_seed(0)
    task = get_task(args.task)
    test = load_splits(args.task, args.data_dir, 0)["test"][: args.examples]
    tokenizer = load_tokenizer(args.model)
    try:
        (spec,) = make_grid(load_recipe(RECIPE), methods=[args.method]).methods
    except ConfigError as error:
        parser.error(str(error))
    model = lamp.wrap(load_model(args.model), lamp.make_config(spec.method, **spec.options), tokenizer).eval()
    with torch.no_grad():  # move the prompt off its initialisation, as training would
        for parameter in model.prompt_encoder.parameters():
            parameter.add_(torch.randn_like(parameter) * parameter.std() * 0.5)
    encoded = encode(test, tokenizer, model.kind, 256)

    predictions, seconds = {}, {}
    for reuse in (True, False):
        model.reuse_prompt_cache = reuse  # False: the prompt goes through the backbone with every batch
        started = time.perf_counter()
        predictions[reuse] = predict(model, encoded, task, tokenizer, "rank", 32)
        seconds[reuse] = time.perf_counter() - started
    changed = sum(a != b for a, b in zip(predictions[True], predictions[False], strict=True))
    print(
        f"{args.task} {args.method} ({model.n_virtual} prompt positions), {len(encoded)} examples: "
        f"{seconds[False]:.1f} s without the cache, {seconds[True]:.1f} s with it "
        f"({seconds[False] / seconds[True]:.2f}x); predictions changed: {changed}"
    )


if __name__ == "__main__":
    main()
