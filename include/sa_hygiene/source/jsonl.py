"""JSON Lines at a local path or any fsspec URL: alerts files, stored evaluations, quarantines.
"""

from __future__ import annotations

import json
import logging

log = logging.getLogger(__name__)


def write_jsonl(url: str, records) -> None:
    import fsspec

    with fsspec.open(url, "w", encoding="utf-8", auto_mkdir=True) as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")


def read_jsonl(url: str) -> list[dict]:
    """The records of a JSON Lines file at a local path or any fsspec URL."""
    import fsspec

    with fsspec.open(url, "r", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
