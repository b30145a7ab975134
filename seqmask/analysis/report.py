"""The run report: one self-contained HTML page of figures (`seqmask report`).

Seven sections: the run, learning curves, lengths, reconstructions, errors per feature, the
latent space, and anomalies. Every number comes from the run's own code paths: the loss and
per-sequence errors from the same pass `evaluate` makes (detect.model_outputs, whose `error`
scores are evaluate's to the bit), the latent vectors from the same encoder `encode` uses,
the anomaly scores from the run's detector. Figures are PNGs drawn with matplotlib's Agg
backend (no display needed) and embedded as base64, so the page needs no network and no
other file. Scatter plots and the PCA use at most `MAX_POINTS` sequences (a seeded sample;
the page says so), so a report of 100 000 sequences stays small.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seqmask.analysis.detect import Detection, Outputs, detect_outputs, load_detector, model_outputs
from seqmask.data import Normalizer, Sequences, length_mask_np
from seqmask.data.batching import padded_batch
from seqmask.data.inputs import Data
from seqmask.data.labels import read_rows
from seqmask.data.vocab import Vocabulary
from seqmask.errors import DataError, RunError
from seqmask.model.losses import step_weights, targets_and_mask
from seqmask.model.scoring import error_of
from seqmask.run.directory import METRICS
from seqmask.run.loaded import LoadedRun, run_data
from seqmask.run.splits import apply_transform, raw_splits

REPORT = "report.html"
MAX_POINTS = 5000  # sequences drawn in a scatter plot or projected by the PCA
MAX_FEATURES = 6  # features drawn per reconstruction
MAX_FLAGGED = 4  # flagged sequences drawn with their worst interval
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    body: str  # HTML


# --------------------------------------------------------------------------- figures


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


# --------------------------------------------------------------------------- what is reported


@dataclass(frozen=True)
class ReportData:
    run: LoadedRun
    source: str  # which data, in words
    outputs: Outputs  # the model's pass over it (evaluate's numbers)
    train_lengths: np.ndarray
    metrics: dict[str, Any] | None
    history: list[dict[str, str]]
    categories: np.ndarray | None  # --labels: one label per sequence
    detection: Detection | None
    detector_note: str
    score: str  # the detector's score ("" without one)

    @property
    def seqs(self) -> Sequences:
        return self.outputs.seqs

    @property
    def errors(self) -> np.ndarray:
        return self.outputs.scores.per_sequence


def gather(run: LoadedRun, data: Data = None, labels: str | Path | None = None) -> ReportData:
    """Everything the report draws, computed once."""
    train, validation = raw_splits(run.cfg, run.run_dir)
    if data is not None:
        seqs = run_data(run, data)
        source = seqs.source  # the file, or "the list of sequences" for in-memory data (inputs.py)
    elif len(validation):  # the splits just read, not read again
        seqs, source = apply_transform(run.transform, validation), "the run's validation data"
    else:  # nothing held out: the training data is all there is to look at
        seqs, source = apply_transform(run.transform, train), "the training data (the run has no validation data)"
    outputs = model_outputs(run, seqs)
    metrics = run.run_dir.read_json(METRICS) if run.run_dir.file(METRICS).is_file() else None
    history = run.run_dir.read_history()
    categories = read_categories(labels, seqs) if labels is not None else None
    detection, note = None, ""
    try:
        detector = load_detector(run.run_dir, run.checkpoint)
    except RunError as e:
        detector, note = None, str(e)
    if detector is not None:
        detection = detect_outputs(detector, outputs)
    elif not note:
        command = f"seqmask calibrate {run.run_dir}"
        if run.checkpoint != "best":
            command += f" --checkpoint {run.checkpoint}"
        if not len(validation):
            command += " --data FILE"
        note = f"the run has no anomaly detector for its {run.checkpoint} checkpoint yet: '{command}' fits one"
    score = detector.score if detector is not None else ""
    return ReportData(run, source, outputs, train.lengths, metrics, history, categories, detection, note, score)


def read_categories(path: str | Path, seqs: Sequences) -> np.ndarray:
    """A CSV whose first column is `id` and second any label (a class, a family, 0/1): one
    label per sequence of `seqs` ("" for a sequence the file does not name). The file may
    label more sequences than `seqs` holds (a labels file for a whole dataset, a report on
    its validation split), but it must label some of them."""
    path = Path(path)
    rows = read_rows(path)
    if not rows or len(rows[0]) < 2 or rows[0][0].strip() != "id":
        raise DataError(f"{path}, line 1: a labels file starts with a header 'id,<label column>'")
    position = {str(sid): i for i, sid in enumerate(seqs.ids)}
    out = np.full(len(seqs), "", dtype=object)
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) < 2:
            raise DataError(f"{path}, line {line}: expected id,label, got {len(row)} field(s)")
        if row[0] in position:
            out[position[row[0]]] = row[1].strip()
    if len(seqs) and not (out != "").any():
        raise DataError(
            f"{path}: labels none of the {len(seqs):,} sequences of {seqs.source or 'the data'} (no id matches)"
        )
    return out


# --------------------------------------------------------------------------- sections


def _run_section(d: ReportData) -> Section:
    cfg, m = d.run.cfg, d.metrics or {}
    model = cfg.model
    rows = [
        ("run directory", str(d.run.run_dir)),
        ("checkpoint", d.run.checkpoint),
        (
            "model",
            f"{model.decoder} decoder, {model.units} units × {model.num_layers} layer(s)"
            f"{', bidirectional' if model.bidirectional else ''}, latent {model.latent_dim}, "
            f"pooling {model.pooling}",
        ),
        ("loss", f"{cfg.train.loss}, {error_of(cfg)}, target {cfg.train.target}"),
        ("input", cfg.input.kind + f", padding {cfg.data.padding}"),
        ("scored data", f"{d.source}: {len(d.seqs):,} sequences, {d.seqs.num_steps:,} real steps"),
        (
            f"loss on it ({cfg.train.loss}, {error_of(cfg)})",
            f"{d.outputs.scores.loss:.6f} (the number 'seqmask evaluate' prints)",
        ),
    ]
    if m:
        seconds = m.get("train_seconds") or 0.0
        rows += [
            (
                "training",
                f"{m.get('train_sequences', 0):,} sequences, {m.get('train_real_steps', 0):,} real steps, "
                f"padding fraction {m.get('padding_fraction', 0.0):.1%}, batch {m.get('batch_size')}",
            ),
            ("device", f"{m.get('device')} (LSTM: {m.get('lstm_kernel')})"),
            ("training time", f"{seconds:,.0f} s over {m.get('epochs_run')} epochs"),
            (
                "best epoch",
                f"{m.get('best_epoch')} (val_loss {_fmt(m.get('best_val_loss'))}, loss {_fmt(m.get('best_loss'))})",
            ),
            ("stop reason", str(m.get("stop_reason"))),
            ("versions", ", ".join(f"{k} {v}" for k, v in (m.get("versions") or {}).items())),
        ]
    else:
        rows.append(("training", "no metrics.json: the run has not finished training"))
    return Section("run", "1. The run", _table(rows))


def _fmt(x: Any) -> str:
    return "-" if x is None else f"{float(x):.6f}"


def _curves_section(d: ReportData) -> Section:
    rows = d.history
    if not rows:
        return Section("curves", "2. Learning curves", "<p>No epoch has finished yet (history.csv is empty).</p>")
    epochs = np.array([int(r["epoch"]) for r in rows])

    def column(name: str) -> np.ndarray:
        return np.array([float(r[name]) if r.get(name) not in (None, "") else np.nan for r in rows])

    loss, val, lr = column("loss"), column("val_loss"), column("learning_rate")
    tokens = d.run.cfg.input.kind == "tokens"
    fig = _figure(8, 3.2)
    axes = fig.subplots(1, 2 if tokens else 1)
    ax = axes[0] if tokens else axes
    ax.plot(epochs, loss, label="training loss", color=COLOURS[0])
    if np.isfinite(val).any():
        ax.plot(epochs, val, label="validation loss", color=COLOURS[1])
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (log scale)")
    cuts = epochs[1:][np.diff(lr) < 0] if len(lr) > 1 else np.zeros(0, np.int64)
    for i, e in enumerate(cuts):
        ax.axvline(e, color="grey", linestyle=":", label="learning rate cut" if i == 0 else None)
    best = (d.metrics or {}).get("best_epoch")
    if best is not None and best in epochs:
        y = val if np.isfinite(val).any() else loss
        ax.plot([best], [y[list(epochs).index(best)]], "k*", markersize=12, label=f"best epoch ({best})")
    ax.legend(fontsize=8)
    if tokens:
        acc, val_acc = column("accuracy"), column("val_accuracy")
        axes[1].plot(epochs, acc, label="training accuracy", color=COLOURS[0])
        if np.isfinite(val_acc).any():
            axes[1].plot(epochs, val_acc, label="validation accuracy", color=COLOURS[1])
        axes[1].set_xlabel("epoch")
        axes[1].set_ylabel("token accuracy")
        axes[1].legend(fontsize=8)
    caption = (
        f"The mean loss over the real steps of each epoch, on a log scale. The star is the best epoch "
        f"({best}), whose weights are the best checkpoint; dotted lines are epochs where the plateau "
        f"schedule cut the learning rate ({len(cuts)} cut(s))."
    )
    return Section("curves", "2. Learning curves", _png(fig, caption))


def _lengths_section(d: ReportData) -> Section:
    seqs, errors = d.seqs, d.errors
    fig = _figure(8, 3.0)
    left, right = fig.subplots(1, 2)
    top = max(int(d.train_lengths.max()) if len(d.train_lengths) else 1, int(seqs.lengths.max()))
    bins = np.linspace(0.5, top + 0.5, min(40, top) + 1)
    left.hist(d.train_lengths, bins=bins, alpha=0.6, label="training split", color=COLOURS[0])
    left.hist(seqs.lengths, bins=bins, alpha=0.6, label="scored data", color=COLOURS[1])
    left.set_xlabel("length (real steps)")
    left.set_ylabel("sequences")
    left.legend(fontsize=8)
    shown = _sample(len(seqs))
    ok = shown[np.isfinite(errors[shown])]
    right.scatter(seqs.lengths[ok], errors[ok], s=6, alpha=0.4, color=COLOURS[0])
    edges = np.unique(np.quantile(seqs.lengths, np.linspace(0, 1, 11)))
    if len(edges) > 2:
        which = np.clip(np.searchsorted(edges, seqs.lengths, side="right") - 1, 0, len(edges) - 2)
        centres, medians = [], []
        for k in range(len(edges) - 1):
            part = errors[(which == k) & np.isfinite(errors)]
            if len(part):
                centres.append(np.median(seqs.lengths[which == k]))
                medians.append(np.median(part))
        right.plot(centres, medians, "k-o", markersize=3, label="median per length decile")
        right.legend(fontsize=8)
    right.set_xlabel("length (real steps)")
    right.set_ylabel("per-sequence error")
    if np.nanmin(errors) > 0:
        right.set_yscale("log")
    caption = (
        "Left: how long the sequences are. Right: each sequence's mean error against its length, with "
        "the median per length decile. With the mask right, short and long sequences are reconstructed "
        "about equally well, or long ones slightly worse; errors that jump at the short or long end "
        "point at a padding or masking problem." + _sampled_note(len(seqs))
    )
    return Section("lengths", "3. Lengths", _png(fig, caption))


def _predictions(d: ReportData, i: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels, predictions, scored) of sequence i over its real steps, in input units."""
    run, seqs = d.run, d.seqs
    import tensorflow as tf

    values, lengths = padded_batch(seqs, np.array([i]), "bucket", None, run.cfg.data.padding)
    predictions = run.model([tf.constant(values), tf.constant(lengths)], training=False)
    labels, has_target = targets_and_mask(values, lengths, run.cfg.train.target, run.cfg.data.padding)
    weights = step_weights(has_target, run.cfg.train.loss)  # last_step: one scored step
    real = length_mask_np(lengths, values.shape[1], run.cfg.data.padding)[0]
    y = np.asarray(labels)[0][real]  # (length, features)
    p = np.asarray(predictions)[0][real]  # (length, features | vocab)
    scored = np.asarray(weights)[0][real] > 0  # (length,)
    if isinstance(run.transform, Normalizer):  # back to the data's own units
        y = y * run.transform.std + run.transform.mean
        p = p * run.transform.std + run.transform.mean
    return y, p, scored


def _chosen(errors: np.ndarray) -> list[tuple[str, int]]:
    ok = np.flatnonzero(np.isfinite(errors))
    if not len(ok):
        return []
    order = ok[np.argsort(errors[ok], kind="stable")]
    picks = [("best", int(order[0])), ("median", int(order[len(order) // 2])), ("worst", int(order[-1]))]
    return picks


def _reconstructions_section(d: ReportData) -> Section:
    seqs, errors = d.seqs, d.errors
    picks = _chosen(errors)
    if not picks:
        return Section("reconstructions", "4. Reconstructions", "<p>No sequence has a scored step.</p>")
    target = d.run.cfg.train.target
    what = {
        "reconstruct": "its reconstruction",
        "composite": "its reconstruction",
        "reverse": "its reversed reconstruction",
    }
    against = what.get(target, "the model's prediction of the next step")
    parts = []
    if isinstance(d.run.transform, Vocabulary):
        return Section("reconstructions", "4. Reconstructions", _token_reconstructions(d, picks))
    names = seqs.feature_labels
    drawn = list(range(min(MAX_FEATURES, seqs.num_features)))
    for name, i in picks:
        y, p, scored = _predictions(d, i)
        fig = _figure(8, 1.2 + 1.1 * len(drawn))
        axes = np.atleast_1d(fig.subplots(len(drawn), 1, sharex=True))
        steps = np.arange(len(y))
        for ax, f in zip(axes, drawn, strict=True):
            ax.plot(steps, y[:, f], color=COLOURS[0], label="target")
            ax.plot(steps[scored], p[scored, f], color=COLOURS[1], linestyle="--", label="model")
            ax.set_ylabel(names[f], fontsize=8)
        axes[0].legend(fontsize=8, loc="upper right")
        axes[-1].set_xlabel("step")
        sid = str(seqs.ids[i])
        caption = (
            f"The {name} sequence by error: '{sid}' ({int(seqs.lengths[i])} steps, error {errors[i]:.6f}). "
            f"Solid: what the model is scored against; dashed: {against}, at the scored steps"
            + (
                f"; features {', '.join(names[f] for f in drawn)} of {seqs.num_features} drawn"
                if seqs.num_features > len(drawn)
                else ""
            )
            + ". In the data's own units."
        )
        parts.append(_png(fig, caption))
    return Section("reconstructions", "4. Reconstructions", "".join(parts))


def _token_reconstructions(d: ReportData, picks: list[tuple[str, int]]) -> str:
    vocab = d.run.transform
    assert isinstance(vocab, Vocabulary)
    out = [
        "<p>Token runs: each sequence's target tokens above the model's most likely tokens, step by step; "
        "<mark>marked</mark> tokens are mispredicted.</p>"
    ]
    for name, i in picks:
        y, p, scored = _predictions(d, i)
        want = [vocab.tokens[int(t)] for t in y[:, 0]]
        got = [vocab.tokens[int(t)] for t in np.argmax(p, axis=-1)]
        shown = min(len(want), 40)
        row_want = "".join(f"<td>{html.escape(w)}</td>" for w in want[:shown])
        row_got = "".join(
            f"<td>{html.escape(g)}</td>" if (not s or g == w) else f"<td><mark>{html.escape(g)}</mark></td>"
            for w, g, s in zip(want[:shown], got[:shown], scored[:shown], strict=True)
        )
        more = f" (first {shown} of {len(want)} tokens)" if len(want) > shown else ""
        out.append(
            f"<h3>{name}: '{html.escape(str(d.seqs.ids[i]))}', error {d.errors[i]:.6f}{more}</h3>"
            f"<div class='scroll'><table class='tokens'><tr><th>target</th>{row_want}</tr>"
            f"<tr><th>model</th>{row_got}</tr></table></div>"
        )
    return "".join(out)


def _feature_section(d: ReportData) -> Section:
    fe = d.outputs.feature_errors  # (num_steps, R)
    means = np.nanmean(fe, axis=0) if np.isfinite(fe).any() else np.zeros(fe.shape[1])
    names = d.seqs.feature_labels if fe.shape[1] == d.seqs.num_features else ("token NLL",)
    fig = _figure(8, 0.9 + 0.3 * len(names))
    ax = fig.subplots()
    order = np.arange(len(names))
    ax.barh(order, means, color=COLOURS[0])
    ax.set_yticks(order, [str(n) for n in names], fontsize=8)
    ax.invert_yaxis()
    error = "negative log-likelihood" if d.run.cfg.input.kind == "tokens" else error_of(d.run.cfg)
    ax.set_xlabel(f"mean {error} over the scored steps")
    worst = names[int(np.argmax(means))]
    if d.run.cfg.input.kind == "tokens":
        caption = "The mean negative log-likelihood of the target token over every scored step."
    else:
        caption = (
            f"The mean error of each feature over every scored step, in the standardized units the model "
            f"is trained in (1 = the feature's own spread). The model does worst on '{worst}'."
        )
    return Section("features", "5. Errors per feature", _png(fig, caption))


def _latent_section(d: ReportData) -> Section:
    z = d.outputs.latent
    shown = _sample(len(z))
    x = z[shown] - z[shown].mean(axis=0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    variance = s**2 / max(float((s**2).sum()), 1e-300)
    xy = x @ vt[:2].T if vt.shape[0] >= 2 else np.column_stack([x @ vt[:1].T, np.zeros(len(x))])
    fig = _figure(6.5, 4.5)
    ax = fig.subplots()
    if d.categories is not None:
        cats = d.categories[shown]
        for k, c in enumerate(sorted(set(cats.tolist()))):
            m = cats == c
            ax.scatter(xy[m, 0], xy[m, 1], s=8, alpha=0.6, color=COLOURS[k % len(COLOURS)], label=c or "(no label)")
        ax.legend(fontsize=8, markerscale=2)
        colour = "their label (--labels)"
    else:
        points = ax.scatter(xy[:, 0], xy[:, 1], s=8, alpha=0.6, c=d.seqs.lengths[shown], cmap="viridis")
        fig.colorbar(points, ax=ax, label="length (real steps)")
        colour = "their length"
    pc2 = variance[1] if len(variance) > 1 else 0.0
    ax.set_xlabel(f"PC 1 ({variance[0]:.1%} of the variance)")
    ax.set_ylabel(f"PC 2 ({pc2:.1%})")
    caption = (
        f"The latent vectors ('seqmask encode') projected on their two principal components, which "
        f"hold {variance[0] + pc2:.1%} of their variance, coloured by {colour}. Groups that separate here "
        "are easy to tell apart from the vectors; colours that mix may still separate in the other "
        f"{z.shape[1] - 2} dimensions." + _sampled_note(len(z))
    )
    return Section("latent", "6. Latent space", _png(fig, caption))


def _anomaly_section(d: ReportData) -> Section:
    det = d.detection
    if det is None:
        return Section("anomalies", "7. Anomalies", f"<p>{html.escape(d.detector_note)}.</p>")
    scores, flags = det.scores, det.flags
    fig = _figure(8, 2.8)
    ax = fig.subplots()
    finite = scores[np.isfinite(scores)]
    ax.hist(finite, bins=60, color=COLOURS[0])
    low, high = float(det.thresholds.min()), float(det.thresholds.max())
    ax.axvline(low, color=COLOURS[1], linestyle="--", label="threshold" if low == high else "thresholds (by length)")
    if high != low:
        ax.axvline(high, color=COLOURS[1], linestyle="--")
    ax.set_yscale("log")
    ax.set_xlabel(f"anomaly score ({d.score})")
    ax.set_ylabel("sequences (log scale)")
    ax.legend(fontsize=8)
    parts = [
        _png(
            fig,
            f"The anomaly score of every sequence; {int(flags.sum()):,} of {len(scores):,} lie above the "
            f"threshold and are flagged (threshold set at {det.how}).",
        )
    ]
    flagged = np.flatnonzero(flags)
    top = flagged[np.argsort(-scores[flagged], kind="stable")][:MAX_FLAGGED]
    if not len(top):
        parts.append("<p>No sequence is flagged.</p>")
    elif isinstance(d.run.transform, Vocabulary):
        rows = [
            (str(d.seqs.ids[i]), f"score {scores[i]:.4g}, worst interval steps {det.worst[i, 0]}..{det.worst[i, 1]}")
            for i in top
        ]
        parts.append("<p>The most anomalous flagged sequences:</p>" + _table(rows))
    else:
        fig = _figure(8, 1.0 + 1.3 * len(top))
        axes = np.atleast_1d(fig.subplots(len(top), 1))
        for ax, i in zip(axes, top, strict=True):
            seq = d.seqs.sequence(int(i))
            if isinstance(d.run.transform, Normalizer):
                seq = seq * d.run.transform.std + d.run.transform.mean
            for f in range(min(MAX_FEATURES, seq.shape[1])):
                ax.plot(seq[:, f], color=COLOURS[f % len(COLOURS)], linewidth=1, label=d.seqs.feature_labels[f])
            a, b = int(det.worst[i, 0]), int(det.worst[i, 1])
            if a >= 0:
                ax.axvspan(a - 0.5, b + 0.5, color="orange", alpha=0.3)
            ax.set_title(f"'{d.seqs.ids[i]}' score {scores[i]:.4g}", fontsize=9)
        axes[0].legend(fontsize=7, loc="upper right")
        axes[-1].set_xlabel("step")
        parts.append(
            _png(
                fig,
                f"The {len(top)} highest-scoring flagged sequences in the data's own units, with their worst "
                "anomalous interval (the run of steps above the step threshold with the largest total excess "
                "over it) shaded.",
            )
        )
    return Section("anomalies", "7. Anomalies", "".join(parts))


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
