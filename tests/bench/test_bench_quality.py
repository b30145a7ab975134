"""Smoke tests of bench/quality.py's data handling and report: no training, no downloads."""

import importlib.util
import math
import sys

import numpy as np
import pytest
from helpers import ROOT

from seqmask.data import Normalizer, Sequences

_PATH = ROOT / "bench" / "quality.py"
_spec = importlib.util.spec_from_file_location("bench_quality", _PATH)
quality = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = quality  # dataclasses look their module up there
_spec.loader.exec_module(quality)


def _split(lengths, features=2, seed=0):
    rng = np.random.default_rng(seed)
    seqs = [rng.normal(size=(n, features)).astype(np.float32).astype(np.float64) for n in lengths]
    return quality.Split(seqs, np.array([str(i % 2) for i in range(len(lengths))]))


def test_crops_are_contiguous_windows_of_half_to_full_length():
    split = _split([1, 2, 9, 24, 100, 101])
    cropped = quality.random_crops(split, quality.crop_rng(3, "X"))
    for full, part in zip(split.seqs, cropped.seqs, strict=True):
        assert math.ceil(len(full) / 2) <= len(part) <= len(full)
        starts = [s for s in range(len(full) - len(part) + 1) if np.array_equal(full[s : s + len(part)], part)]
        assert starts, "a crop must be one contiguous window of its sequence"
    again = quality.random_crops(split, quality.crop_rng(3, "X"))
    assert [len(s) for s in again.seqs] == [len(s) for s in cropped.seqs]
    others = [quality.random_crops(split, quality.crop_rng(s, "X")).lengths for s in range(4, 9)]
    assert any(not np.array_equal(o, cropped.lengths) for o in others)


def test_holdout_is_a_seeded_partition():
    fit, val = quality.holdout(36, seed=1)
    assert len(val) == round(0.2 * 36) and len(fit) + len(val) == 36
    assert not set(fit) & set(val)
    assert np.array_equal(quality.holdout(36, seed=1)[1], val)


def test_standardizer_matches_seqmask_normalizer():
    split = _split([5, 17, 3], features=3)
    split.seqs[0][:, 1] = split.seqs[1][:, 1] = split.seqs[2][:, 1] = 4.0  # a constant feature
    mean, std = quality.standardizer(split)
    values = np.concatenate(split.seqs).astype(np.float32)
    ref = Normalizer.fit(Sequences(values, split.lengths, np.array(["a", "b", "c"]), "<test>"))
    np.testing.assert_allclose(mean, ref.mean, rtol=1e-12)
    np.testing.assert_allclose(std, ref.std, rtol=1e-12)
    assert std[1] == 1.0


def test_real_step_mse_ignores_padding():
    split = _split([3, 5], features=2)
    predicted = quality.padded(split, 8).astype(np.float64)
    predicted[0, 3:] = 1e6  # garbage in the padding must not count
    predicted[1, :5, 0] += 2.0  # error 4 on one feature of 5 steps: 4 * 5 / 2 features / 8 steps
    assert quality.real_step_mse(predicted, split) == pytest.approx(4 * 5 / 2 / 8)


def test_markdown_has_a_row_per_dataset_and_a_mean_row():
    raw = {
        d: {
            str(s): {
                m: {"accuracy": 0.5 + 0.1 * s, "r2": 0.2, "seconds": 1.0, "epochs_run": 60} for m in quality.METHODS
            }
            for s in (0, 1)
        }
        for d in ("A", "B")
    }
    report = {
        "raw": raw,
        "options": {"seeds": [0, 1], "epochs": 60, "early_epochs": None, "set": [], "only": list(quality.METHODS)},
        "datasets": [
            {
                "name": d,
                "package": "p",
                "features": 1,
                "classes": 2,
                "train": 3,
                "test": 4,
                "length": 9,
                "downsample": 1,
                "max_train": None,
                "max_test": None,
            }
            for d in ("A", "B")
        ],
        "command": "python bench/quality.py",
        "environment": "test",
    }
    text = quality.markdown(report)
    assert "| A | 0.550 ± 0.071" in text and "| **mean** |" in text
    assert text.count("| **mean** |") == 4  # accuracy, R², seconds, epochs


def test_quick_options():
    opts = quality.parse_args(["--quick", "--set", "model.units=8"])
    assert opts.datasets == list(quality.QUICK_DATASETS) and opts.seeds == [0]
    assert opts.epochs < 60 and opts.set == ["model.units=8"]
    with pytest.raises(SystemExit):
        quality.parse_args(["--only", "nope"])


def test_bundled_datasets_load():
    pytest.importorskip("sktime")
    train, test = quality.load_dataset(quality.DATASETS["ItalyPowerDemand"])
    assert len(train.seqs) == 67 and len(test.seqs) == 1029 and train.seqs[0].shape == (24, 1)
