"""The run report: one self-contained HTML page of figures (`seqmask report`).

Seven sections: the run, learning curves, lengths, reconstructions, errors per feature, the
latent space, and anomalies. Every number comes from the run's own code paths: the loss and
per-sequence errors from the same pass `evaluate` makes (detect.model_outputs, whose `error`
scores are evaluate's to the bit), the latent vectors from the same encoder `encode` uses,
the anomaly scores from the run's detector. Figures are PNGs drawn with matplotlib's Agg
backend (no display needed) and embedded as base64, so the page needs no network and no
other file. Scatter plots and the PCA use at most `MAX_POINTS` sequences (a seeded sample;
the page says so), so a report of 100 000 sequences stays small.

This module is the page: its sections in order, its style, and `report`. What the report
gathers is `_report_data`, the drawing primitives `_report_figures`, and the sections
themselves `_report_sections`; the names callers import are re-exported here.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path

from seqmask.analysis._report_data import ReportData, gather, read_categories
from seqmask.analysis._report_data import _chosen as _chosen  # re-exported for the tests
from seqmask.analysis._report_data import _predictions as _predictions
from seqmask.analysis._report_figures import COLOURS, MAX_FEATURES, MAX_FLAGGED, MAX_POINTS, Section
from seqmask.analysis._report_sections import (
    _anomaly_section,
    _curves_section,
    _feature_section,
    _latent_section,
    _lengths_section,
    _reconstructions_section,
    _run_section,
)
from seqmask.data.inputs import Data
from seqmask.run.loaded import LoadedRun

REPORT = "report.html"


SECTIONS: tuple[Callable[[ReportData], Section], ...] = (
    _run_section,
    _curves_section,
    _lengths_section,
    _reconstructions_section,
    _feature_section,
    _latent_section,
    _anomaly_section,
)
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 960px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; font-size: .92em; } th, td { text-align: left; padding: .25em .8em .25em 0;
       vertical-align: top; } th { color: #555; font-weight: 600; white-space: nowrap; }
figure { margin: 1em 0; } img { max-width: 100%; height: auto; }
figcaption { font-size: .9em; color: #444; margin-top: .3em; }
.tokens { font-family: ui-monospace, monospace; font-size: .85em; } mark { background: #fcc; }
.tokens td { padding-right: .6em; } .scroll { overflow-x: auto; }
nav a { margin-right: 1em; white-space: nowrap; }
@media print { body { max-width: none; margin: 0; } h2 { page-break-after: avoid; }
               figure { page-break-inside: avoid; } }
"""


def render(d: ReportData) -> str:
    sections = [build(d) for build in SECTIONS]
    nav = "".join(f'<a href="#{s.id}">{html.escape(s.title)}</a>' for s in sections)
    body = "".join(f'<section id="{s.id}"><h2>{html.escape(s.title)}</h2>{s.body}</section>' for s in sections)
    title = f"seqmask report: {d.run.run_dir}"
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1><nav>{nav}</nav>{body}</body></html>\n"
    )


def report(run: LoadedRun, data: Data = None, labels: str | Path | None = None) -> str:
    """The report of `run` on `data` (default: its validation data) as one HTML page."""
    return render(gather(run, data, labels))


__all__ = [
    "COLOURS",
    "MAX_FEATURES",
    "MAX_FLAGGED",
    "MAX_POINTS",
    "REPORT",
    "SECTIONS",
    "STYLE",
    "ReportData",
    "Section",
    "gather",
    "read_categories",
    "render",
    "report",
]
