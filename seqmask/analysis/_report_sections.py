"""The seven sections of the run report, each drawn from `ReportData`: the run, learning
curves, lengths, reconstructions, errors per feature, the latent space, and anomalies.
`report.SECTIONS` lists them in page order.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np

from seqmask.analysis._report_data import ReportData, _chosen, _predictions
from seqmask.analysis._report_figures import (
    COLOURS,
    MAX_FEATURES,
    MAX_FLAGGED,
    Section,
    _figure,
    _png,
    _sample,
    _sampled_note,
    _table,
)
from seqmask.data import Normalizer
from seqmask.data.vocab import Vocabulary
from seqmask.model.scoring import error_of


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
