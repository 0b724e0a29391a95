"""Front matter is YAML a reader gets back exactly, whatever the values hold."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from opsloop.agents.markdown import front_matter
from opsloop.runbooks.markdown import split_front_matter

HOSTILE: dict[str, Any] = {
    "title": "---\nstatus: accepted\n---",  # would end the block if written bare
    "kind": "note: with a colon, # and a hash",
    "evidence": [f"INC-{n:04d} on checkout: 'quoted' \"twice\" \u2028 line sep"
                 for n in range(300)],
    "unicode": "température ✓ 🚨",
    "empty": "",
    "number_like": "0012",
    "bool_like": "yes",
    "nested": {"at": "2026-11-02T09:00:00Z", "list": [1, 2.5, None, True]},
}


@pytest.mark.parametrize("dumper", [yaml.SafeDumper, getattr(yaml, "CSafeDumper", None)])
def test_front_matter_reads_back_exactly_the_values_written(dumper: Any) -> None:
    if dumper is None:
        pytest.skip("PyYAML built without libyaml")
    text = front_matter(HOSTILE) + "body\n"
    meta, body = split_front_matter(text)
    assert meta == HOSTILE and body.strip() == "body"
    # Whichever emitter is used, the other reads it the same.
    dumped = yaml.dump(HOSTILE, Dumper=dumper, sort_keys=False, allow_unicode=True, width=1000)
    assert yaml.safe_load(dumped) == HOSTILE
