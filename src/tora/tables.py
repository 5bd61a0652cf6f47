"""Plain-text tables for command output (no dependencies, so any command can print one)."""

from __future__ import annotations

from collections.abc import Sequence


def aligned_table(head: Sequence[str], rows: Sequence[Sequence[str]], left: int = 0) -> str:
    """Plain-text table, columns padded to their widest cell and joined by two spaces: the
    first ``left`` columns left-aligned (labels), the rest right-aligned (numbers)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(head), *(line(r) for r in rows)])
