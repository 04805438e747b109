"""The result of one evaluation run, shared by every ``appliance eval`` task.

``EvalReport.to_json()`` gives exactly ``task, metric, score, n, misreads, ms_per_item,
baselines`` plus, when present, ``groups`` and ``notes``; ``format_table()`` prints the
per-group results as a plain text table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class GroupResult:
    """Results on one group (subset) of an evaluation set.

    ``baselines`` / ``baseline_misreads`` / ``baseline_ms`` are keyed by baseline name;
    ``reference`` holds published rates to compare with (e.g. zxing's own pass rates).
    """

    name: str
    n: int
    passed: int
    misreads: int
    ms_per_item: float
    baselines: dict[str, int] = field(default_factory=dict)
    baseline_misreads: dict[str, int] = field(default_factory=dict)
    baseline_ms: dict[str, float] = field(default_factory=dict)
    reference: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        return self.passed / self.n if self.n else 0.0

    def baseline_score(self, name: str) -> float:
        return self.baselines.get(name, 0) / self.n if self.n else 0.0

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["score"] = round(self.score, 4)
        data["ms_per_item"] = round(self.ms_per_item, 2)
        data["baseline_ms"] = {k: round(v, 2) for k, v in self.baseline_ms.items()}
        data["reference"] = {k: round(v, 4) for k, v in self.reference.items()}
        if not self.notes:
            del data["notes"]
        return data


@dataclass
class EvalReport:
    """One task's headline numbers, its baselines (scores 0..1), groups and notes."""

    task: str
    metric: str
    score: float
    n: int
    misreads: int
    ms_per_item: float
    baselines: dict[str, float] = field(default_factory=dict)
    groups: list[GroupResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"score must be within 0..1, got {self.score}")
        for name, value in self.baselines.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"baseline {name!r} score must be within 0..1, got {value}")

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "task": self.task,
            "metric": self.metric,
            "score": round(self.score, 4),
            "n": self.n,
            "misreads": self.misreads,
            "ms_per_item": round(self.ms_per_item, 2),
            "baselines": {k: round(v, 4) for k, v in self.baselines.items()},
        }
        if self.groups:
            data["groups"] = [g.to_json() for g in self.groups]
        if self.notes:
            data["notes"] = list(self.notes)
        return data

    def format_table(self) -> str:
        """Per-group pass counts, rates, misreads and ms per item, a summary, the notes."""
        names = _ordered({name for g in self.groups for name in g.baselines}, list(self.baselines))
        refs = sorted({name for g in self.groups for name in g.reference})
        rows = [["group", "n", "ours", "mis", "ms", *names, *refs]]
        rows.extend(_group_row(group, names, refs) for group in self.groups)
        lines = [f"{self.task}: {self.metric}"]
        if self.groups:
            lines.extend(_render(rows))
            lines.append("baseline cells: passed (rate) /misreads; reference columns: published rates")
            lines.append("")
        lines.extend(_render(self._summary_rows(names)))
        if self.notes:
            lines.append("notes:")
            lines.extend(f"- {note}" for note in self.notes)
        return "\n".join(lines)

    def _summary_rows(self, names: list[str]) -> list[list[str]]:
        rows = [["reader", "n", "score", "misreads", "ms/item"]]
        rows.append(["ours", str(self.n), f"{self.score:.4f}", str(self.misreads), f"{self.ms_per_item:.1f}"])
        for name in names:
            mis = sum(g.baseline_misreads.get(name, 0) for g in self.groups)
            total_ms = sum(g.baseline_ms.get(name, 0.0) * g.n for g in self.groups)
            rows.append(
                [
                    name,
                    str(self.n),
                    f"{self.baselines.get(name, 0.0):.4f}",
                    str(mis),
                    f"{total_ms / max(self.n, 1):.1f}",
                ]
            )
        for name in self.baselines:
            if name not in names:
                rows.append([name, str(self.n), f"{self.baselines[name]:.4f}", "", ""])
        return rows


def _ordered(found: set[str], preferred: list[str]) -> list[str]:
    return [n for n in preferred if n in found] + sorted(found - set(preferred))


def _render(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines: list[str] = []
    for index, row in enumerate(rows):
        cells = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def _group_row(group: GroupResult, names: list[str], refs: list[str]) -> list[str]:
    rate = f"{group.passed} ({100.0 * group.score:.0f}%)"
    row = [group.name, str(group.n), rate, str(group.misreads), f"{group.ms_per_item:.1f}"]
    for name in names:
        row.append(_cell(group.baselines.get(name, 0), group.n, group.baseline_misreads.get(name, 0)))
    for ref in refs:
        value = group.reference.get(ref)
        row.append("" if value is None else f"{100 * value:.0f}%")
    return row


def _cell(passed: int, n: int, misreads: int) -> str:
    rate = 100.0 * passed / n if n else 0.0
    return f"{passed} ({rate:.0f}%) /{misreads}"
