"""The report's drawing and HTML primitives: a matplotlib figure (Agg backend, no display),
its PNG embedded as base64 with a caption, key-value tables, the seeded sample of sequences
a scatter plot draws, and the `Section` every part of the page is.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_POINTS = 5000  # sequences drawn in a scatter plot or projected by the PCA
MAX_FEATURES = 6  # features drawn per reconstruction
MAX_FLAGGED = 4  # flagged sequences drawn with their worst interval
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    body: str  # HTML


def _figure(width: float = 8.0, height: float = 3.0) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    return fig


def _png(fig: Any, caption: str) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    text = html.escape(caption)
    return f'<figure><img alt="{text}" src="data:image/png;base64,{data}"><figcaption>{text}</figcaption></figure>'


def _table(rows: list[tuple[str, str]]) -> str:
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def _sample(n: int, limit: int = MAX_POINTS, seed: int = 0) -> np.ndarray:
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


def _sampled_note(n: int) -> str:
    return f" ({MAX_POINTS:,} of the {n:,} sequences, a seeded random sample.)" if n > MAX_POINTS else ""
