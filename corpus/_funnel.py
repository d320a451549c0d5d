"""Counting what every stage keeps and why it lets rows go."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Funnel:
    """Rows surviving each named stage, in order, and a count per rejection reason.

    Each stage is declared with its unit (records, conversations, turn-pairs) so a reader of
    `funnel.json` never compares conversations with pairs by mistake.
    """

    source: str
    stages: dict[str, int] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    rejected: Counter = field(default_factory=Counter)
    notes: dict[str, Any] = field(default_factory=dict)

    def declare(self, name: str, unit: str) -> None:
        self.stages.setdefault(name, 0)
        self.units[name] = unit

    def passed(self, name: str, n: int = 1) -> None:
        self.stages[name] += n

    def reject(self, reason: str, n: int = 1) -> None:
        self.rejected[reason] += n

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "stages": [
                {"name": name, "rows": rows, "unit": self.units[name]}
                for name, rows in self.stages.items()
            ],
            "rejected": dict(sorted(self.rejected.items())),
            **self.notes,
        }
