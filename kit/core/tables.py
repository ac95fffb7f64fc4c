"""Markdown tables of result rows, for the notebooks' and READMEs' measured tables."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
                   digits: int = 3) -> str:
    """Return ``rows`` as a Markdown table over ``columns`` (None: the first row's keys); floats rounded to
    ``digits``, NaN and missing cells as a dash."""
    if not rows:
        raise ValueError("rows is empty: nothing to tabulate")
    cols = list(columns or rows[0].keys())

    def cell(v: Any) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "-"
        if isinstance(v, bool):
            return "yes" if v else ""
        return f"{v:.{digits}f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines)
