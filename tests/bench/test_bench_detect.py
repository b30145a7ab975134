"""Smoke tests of bench/detect.py's tasks, metrics and report: no training, no downloads."""

import importlib.util
import math
import sys

import numpy as np
import pytest
from helpers import ROOT

_PATH = ROOT / "bench" / "detect.py"
_spec = importlib.util.spec_from_file_location("bench_detect", _PATH)
detect = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = detect  # dataclasses look their module up there
_spec.loader.exec_module(detect)


def _split(lengths, labels, seed=0):
    rng = np.random.default_rng(seed)
    return detect.Split([rng.normal(size=(n, 2)) for n in lengths], np.array(labels))


def test_leave_one_class_out_tasks():
    """Both archive splits pooled and cut to prefixes; for each class, the other classes'
    sequences split into fit / validation / normal test parts, the class itself all test."""
    train = _split([10, 12, 14, 16, 18, 20, 22, 24, 26, 28], list("aabbccaabb"))
    test = _split([9, 11, 13, 15], list("abca"), seed=1)
    labels = np.concatenate([train.labels, test.labels])
    full = np.concatenate([train.lengths, test.lengths])
    tasks = list(detect.ucr_tasks("X", 0, train, test))
    assert [t.left_out for t in tasks] == ["a", "b", "c"]
    for t in tasks:
        assert t.left_out not in set(t.fit.labels) | set(t.val.labels)
        normal = int(np.sum(labels != t.left_out))
        assert len(t.fit.seqs) + len(t.val.seqs) + int(np.sum(t.labels == 0)) == normal
        assert int(t.labels.sum()) == int(np.sum(labels == t.left_out))
        assert t.labels.tolist() == [int(c == t.left_out) for c in t.test.labels]
    # Every sequence is a prefix of between half and all of its steps.
    pooled = train.seqs + test.seqs
    for t in tasks:
        for part in (t.fit, t.val, t.test):
            for s in part.seqs:
                source = next(i for i, p in enumerate(pooled) if p[0, 0] == s[0, 0])
                assert math.ceil(full[source] / 2) <= len(s) <= full[source]
                assert np.array_equal(pooled[source][: len(s)], s)


def test_mitdb_windows_are_labelled_by_their_steps():
    values = np.arange(1000, dtype=np.float64)[:, None]  # a value is its step number
    step_labels = np.zeros(1000, np.int64)
    step_labels[900:950] = 1
    normal, test, labels = detect.mitdb_split((values, step_labels), seed=0)
    assert all(s[-1, 0] < 600 for s in normal.seqs)  # training windows inside the first 60 %
    assert all(s[0, 0] >= 600 for s in test.seqs)
    for s, y in zip(test.seqs, labels, strict=True):
        assert y == int(step_labels[s[:, 0].astype(int)].max())
        assert np.array_equal(np.diff(s[:, 0]), np.ones(len(s) - 1))  # contiguous
    assert 0 < labels.sum() < len(labels)


def test_nan_scores_count_as_lowest():
    labels = np.array([0, 1, 0, 1])
    assert detect.metrics(labels, np.array([0.1, 0.9, np.nan, 0.8]))["auroc"] == 1.0
    assert detect.metrics(labels, np.array([0.1, np.nan, 0.2, 0.8]))["auroc"] == 0.5
    assert math.isnan(detect.metrics(labels, None)["auroc"])


def test_summary_features():
    split = _split([3, 5], ["a", "b"])
    x = detect.summary_features(split)
    assert x.shape == (2, 6 * 2 + 1) and x[1, -1] == 5
    np.testing.assert_allclose(x[0, 8:10], split.seqs[0][0])  # the first step's features


def _result(auroc):
    length = {"spearman": 0.1, "short": 0.2, "long": 0.0, "all": 0.1, "ranges": 1}
    return {
        **{m: {"auroc": auroc, "ap": 0.5} for m in detect.METHODS},
        "errors": {},
        "default_settings": {"score": "latent"},
        "train_seconds": 1.0,
        "score_seconds": 0.5,
        "lstm_kernel": None,
        "length": {"default": length, "bins1": length},
    }


def test_markdown_tables():
    raw = {d: {str(s): {c: _result(0.6 + 0.1 * s) for c in ("x", "y")} for s in (0, 1)} for d in ("A", "B")}
    raw["A"]["1"]["y"]["knn"]["auroc"] = 0.96
    raw["A"]["0"]["y"]["knn"]["auroc"] = 0.96
    report = {
        "raw": raw,
        "options": {"seeds": [0, 1], "epochs": 40, "set": []},
        "datasets": [],
        "wall_seconds": 3.0,
        "command": "python bench/detect.py",
        "environment": "test",
    }
    text = detect.markdown(report)
    assert "| A | 0.650 ± 0.071" in text and text.count("| **mean** |") == 2
    assert "| A | y | kNN (k=5) | 0.960 | 0.650 | no |" in text
    assert "Score and length" in text


def test_quick_options():
    opts = detect.parse_args(["--quick", "--set", "detect.neighbors=3"])
    assert opts.datasets == list(detect.QUICK_DATASETS) and opts.seeds == [0] and opts.epochs == 3
    assert opts.set == ["detect.neighbors=3"]
    with pytest.raises(SystemExit):
        detect.parse_args(["--datasets", "NoSuchDataset"])
