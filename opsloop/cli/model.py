"""`opsloop model serve` (a local llama.cpp model, OpenAI-compatible) and `opsloop model
weights` (assemble and check a packaged model's GGUF without serving it)."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from typing import Any

from opsloop.cli.render import Ui, UserError
from opsloop.settings import Settings

_PACKAGES = ("smollm2", "qwen-1.5b")  # opsloop.llm.local_weights.PACKAGES, without importing
_GGUF_TIMEOUT_SECONDS = 600.0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    model = sub.add_parser("model", help="a local model: serve a GGUF with llama.cpp")
    actions = model.add_subparsers(dest="model_command", required=True)
    serve = actions.add_parser("serve", parents=[common],
                               help="serve a GGUF on an OpenAI-compatible endpoint and print "
                                    "the OPSLOOP_LLM_* settings that use it")
    _weights_options(serve)
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080; 0: any free)")
    serve.add_argument("--threads", type=int, default=1,
                       help="CPU threads for the model (default 1)")
    serve.add_argument("--context", type=int, default=4096,
                       help="context size in tokens (default 4096)")
    serve.set_defaults(handler=serve_command)
    weights = actions.add_parser("weights", parents=[common],
                                 help="assemble and check a packaged model's GGUF; print its "
                                      "path")
    _weights_options(weights)
    weights.set_defaults(handler=weights_command)


def _weights_options(p: argparse.ArgumentParser) -> None:
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--gguf", type=Path, metavar="PATH", help="a GGUF file")
    which.add_argument("--package", choices=_PACKAGES,
                       help="a model from its registry packages (installed with "
                            "scripts/install-local-model.sh)")
    p.add_argument("--models-dir", type=Path, default=None, metavar="DIR",
                   help="where split packages are assembled (default ~/.cache/opsloop/models)")


def _resolve(args: argparse.Namespace) -> tuple[Path, str, float]:
    """(GGUF path, model alias, client timeout) for the arguments; UserError when unusable."""
    from opsloop.llm.local_weights import PACKAGES, WeightsError, gguf_for

    if args.gguf is not None:
        if not args.gguf.is_file():
            raise UserError(f"--gguf {args.gguf}: no such file")
        return args.gguf, args.gguf.stem.lower(), _GGUF_TIMEOUT_SECONDS
    package = PACKAGES[args.package]
    try:
        path = gguf_for(package.name, args.models_dir)
    except WeightsError as exc:
        raise UserError(f"--package {package.name}: {exc}") from exc
    return path, package.alias, package.timeout_seconds


def weights_command(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    path, _alias, _timeout = _resolve(args)
    ui.out.print(str(path), markup=False)
    return 0


def serve_command(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    from opsloop.llm.local_server import LocalModelError, LocalServer, ServeOptions

    path, alias, timeout = _resolve(args)
    options = ServeOptions(path, alias, host=args.host, port=args.port, threads=args.threads,
                           context=args.context)
    try:
        server = LocalServer(options)
    except LocalModelError as exc:
        raise UserError(str(exc)) from exc
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        ui.err.print(f"serving {path} as {alias!r} on {server.base_url} "
                     f"({args.threads} thread(s), {args.context}-token context); "
                     "Ctrl-C stops it. Point opsloop at it with:", markup=False)
        for name, value in server.settings(timeout).items():
            ui.out.print(f"export {name}={value}", markup=False)
        stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.close()
    return 0
