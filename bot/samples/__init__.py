"""Bundled demo images: public-domain / CC0 photos and banners imgbot renders itself.

``sample_paths()`` lists them; ``samples()`` adds what the offline engine is expected to
find in each (used by the tests and ``bench/quality.py``). Sources and licences are in
``LICENSES.md`` beside this file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

__all__ = ["Sample", "sample_paths", "samples"]


@dataclass(frozen=True)
class Sample:
    path: Path
    kind: str  # "photo" or "banner"
    neutral: bool  # nothing in it should be flagged by moderation
    expect: dict[str, Any] = field(default_factory=dict)


def samples() -> list[Sample]:
    manifest = json.loads((HERE / "samples.json").read_text(encoding="utf-8"))
    return [
        Sample(HERE / item["file"], item["kind"], bool(item.get("neutral", True)), item.get("expect", {}))
        for item in manifest["samples"]
    ]


def sample_paths() -> list[Path]:
    """Every bundled sample image, photos first."""
    return [s.path for s in samples()]
