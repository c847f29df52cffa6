"""What a report says about how its images look: colour counts, low-quality images, near-duplicate groups."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from bot.core.records import ImageRecord, ReportData

#: A report counts a colour for an image when it covers at least this share (as ``color:NAME`` does).
COLOUR_SHARE = 10.0


@dataclass(frozen=True)
class Looks:
    """Colour counts, low-quality images and near-duplicate groups over a report's analysed images."""

    colours: list[tuple[str, int]]
    low_quality: list[ImageRecord]
    groups: list[list[int]]

    @classmethod
    def of(cls, data: ReportData) -> Looks:
        counts: Counter[str] = Counter()
        for image in data.analysed:
            if image.properties is not None:
                counts.update({c.simplified_color for c in image.properties.dominant_colors
                               if c.pixel_percent >= COLOUR_SHARE})
        return cls(colours=counts.most_common(), low_quality=[i for i in data.analysed if i.quality_flags],
                   groups=[list(group) for group in data.duplicate_groups])

    def to_json(self) -> dict[str, Any]:
        return {
            "colors": [{"name": name, "images": count} for name, count in self.colours],
            "low_quality": [{"image_id": image.id, "flags": list(image.quality_flags)} for image in self.low_quality],
            "duplicate_groups": self.groups,
        }
