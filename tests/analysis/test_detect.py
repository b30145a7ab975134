"""detect.py: the scores' math on hand-checked arrays, the model's outputs against
`evaluate`, their independence of padding and batching, and the detector saved in a run."""

import dataclasses
import math
import shutil
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml
from helpers import make_sequences
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from seqmask.analysis import detect
from seqmask.analysis.detect import (
    MIN_PER_BIN,
    SELF_DISTANCE,
    DetectError,
    Outputs,
    Threshold,
    aggregate,
    calibrate,
    density_ratio,
    detect_outputs,
    detector_for,
    fit_detector,
    fit_gaussian,
    fit_length_bins,
    intervals,
    knn_distance,
    load_detector,
    mahalanobis_squared,
    model_outputs,
)
from seqmask.analysis.evaluate import evaluate
from seqmask.cli import app
from seqmask.config import DetectConfig, config_from_dict, load_config
from seqmask.data import Normalizer, Sequences, pad
from seqmask.errors import RunError
from seqmask.model.autoencoder import build_autoencoder
from seqmask.model.scoring import Scores
from seqmask.run.directory import RunDir
from seqmask.run.loaded import LoadedRun, load_run, run_data
from seqmask.training.loop import train

# --------------------------------------------------------------------------- mahalanobis_squared


def test_mahalanobis_squared_by_hand() -> None:
    # Σ = diag(4, 1), μ = 0: r = (2, 3) is 2²/4 + 3²/1 = 10.
    d2 = mahalanobis_squared(np.array([[2.0, 3.0]]), np.zeros(2), np.diag([4.0, 1.0]), np.array([True]))
    np.testing.assert_allclose(d2, [10.0], rtol=1e-12)


def test_mahalanobis_squared_is_the_inverse_covariance_form_and_nan_without_target() -> None:
    r = np.array([[1.0, 2.0], [0.0, -1.0], [3.0, 0.5], [9.0, 9.0], [-2.0, 0.25]])
    has_target = np.array([True, True, True, False, True])
    mean, cov = np.array([0.5, 0.2]), np.array([[2.0, 0.5], [0.5, 1.0]])
    d2 = mahalanobis_squared(r, mean, cov, has_target)
    inverse = np.linalg.inv(cov)
    expected = [(x - mean) @ inverse @ (x - mean) for x in r]
    np.testing.assert_allclose(d2[has_target], np.array(expected)[has_target], rtol=1e-12)
    assert np.isnan(d2[3])


# --------------------------------------------------------------------------- aggregate

# Three sequences: [1, 5, 3, NaN, 2], [NaN, NaN] (no scored step), [4].
STEPS = np.array([1.0, 5.0, 3.0, np.nan, 2.0, np.nan, np.nan, 4.0])
OFFSETS = np.array([0, 5, 7, 8])


@pytest.mark.parametrize(
    ("how", "fraction", "expected"),
    [
        ("mean", 0.1, [2.75, np.nan, 4.0]),
        ("max", 0.1, [5.0, np.nan, 4.0]),
        ("top", 0.1, [5.0, np.nan, 4.0]),  # ⌈0.4⌉ = 1: the largest
        ("top", 0.25, [5.0, np.nan, 4.0]),  # ⌈1.0⌉ = 1
        ("top", 0.3, [4.0, np.nan, 4.0]),  # ⌈1.2⌉ = 2: mean of 5 and 3
        ("top", 0.5, [4.0, np.nan, 4.0]),
        ("top", 0.75, [10 / 3, np.nan, 4.0]),  # 3 largest of 4
        ("top", 1.0, [2.75, np.nan, 4.0]),  # all: the mean
    ],
)
def test_aggregate_by_hand(how: str, fraction: float, expected: list[float]) -> None:
    np.testing.assert_allclose(aggregate(STEPS, OFFSETS, how, fraction), expected, rtol=1e-12)


def test_aggregate_top_counts_an_exact_product_as_exact() -> None:
    """0.1 · 30 is 3.0000000000000004 in floats: the top 3 steps, not 4."""
    steps = np.arange(30, dtype=float)
    np.testing.assert_allclose(aggregate(steps, np.array([0, 30]), "top", 0.1), [28.0])


# --------------------------------------------------------------------------- knn_distance


def _knn_brute_force(query: np.ndarray, reference: np.ndarray, k: int) -> np.ndarray:
    k = min(k, len(reference) - 1)
    out = []
    for q in query:
        d = np.sort(np.linalg.norm(reference - q, axis=1))
        if d[0] < SELF_DISTANCE:  # the query itself: skipped once
            d = d[1:]
        out.append(d[:k].mean())
    return np.array(out)


def test_knn_distance_by_hand_skips_the_query_itself_once() -> None:
    reference = np.array([[0.0], [1.0], [3.0], [6.0]])
    # [1] is a reference row: skipped; its 2 nearest others are 0 (1 away) and 3 (2 away).
    # [2] is not: its 2 nearest are 1 and 3, both 1 away.
    np.testing.assert_allclose(knn_distance(np.array([[1.0], [2.0]]), reference, 2), [1.5, 1.0])
    # A duplicated reference row: only one copy is the query itself, the other is a neighbour at 0.
    np.testing.assert_allclose(knn_distance(np.array([[0.0]]), np.array([[0.0], [0.0], [5.0]]), 1), [0.0])


def test_knn_distance_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    for trial in range(40):
        m, d, k = int(rng.integers(2, 25)), int(rng.integers(1, 5)), int(rng.integers(1, 8))
        reference = rng.normal(size=(m, d))
        query = np.concatenate([rng.normal(size=(6, d)), reference[rng.integers(0, m, 4)]])
        got = knn_distance(query, reference, k, chunk=int(rng.integers(1, 8)))
        np.testing.assert_allclose(got, _knn_brute_force(query, reference, k), rtol=1e-9, atol=1e-9, err_msg=trial)


def test_density_ratio_by_hand() -> None:
    """A query's mean distance to its k nearest reference rows over those rows' own."""
    reference = np.array([[0.0], [1.0], [2.0], [10.0], [14.0]])
    own = knn_distance(reference, reference, 1)  # nearest other row: 1, 1, 1, 4, 4
    np.testing.assert_allclose(own, [1, 1, 1, 4, 4])
    # 3.0: nearest row 2.0 (1 away), whose own is 1 -> 1.0; 5.0: nearest 2.0 (3 away) -> 3.0;
    # 12.0: nearest 10.0 or 14.0 (2 away), own 4 -> 0.5: far, but in a sparse part of the data.
    np.testing.assert_allclose(density_ratio(np.array([[3.0], [5.0], [12.0]]), reference, own, 1), [1.0, 3.0, 0.5])


def test_density_ratio_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    for trial in range(20):
        m, d, k = int(rng.integers(3, 25)), int(rng.integers(1, 5)), int(rng.integers(1, 6))
        reference = rng.normal(size=(m, d))
        query = np.concatenate([rng.normal(size=(5, d)), reference[rng.integers(0, m, 3)]])
        own = _knn_brute_force(reference, reference, k)
        want = []
        for q in query:
            dist = np.linalg.norm(reference - q, axis=1)
            order = np.argsort(dist, kind="stable")
            if dist[order[0]] < SELF_DISTANCE:
                order = order[1:]
            near = order[: min(k, m - 1)]
            want.append(dist[near].mean() / own[near].mean())
        got = density_ratio(query, reference, knn_distance(reference, reference, k), k)
        np.testing.assert_allclose(got, want, rtol=1e-9, err_msg=trial)


def test_combined_is_the_sum_of_the_standardized_parts() -> None:
    """combined = (m - median m) / IQR m + (d - median d) / IQR d over the calibration data."""
    rng = np.random.default_rng(2)
    n, lengths = 40, rng.integers(3, 9, 40)
    seqs = Sequences(rng.normal(size=(int(lengths.sum()), 2)), lengths, [f"s{i}" for i in range(n)])
    residuals = rng.normal(size=(seqs.num_steps, 2))
    errors = (residuals**2).mean(1)
    out = Outputs(
        seqs,
        residuals,
        np.ones(seqs.num_steps, bool),
        errors,
        residuals**2,
        Scores(np.zeros(n), np.ones(n), np.zeros(n)),
        rng.normal(size=(n, 3)),
    )
    reference = rng.normal(size=(30, 3))
    settings = DetectConfig(score="combined", aggregate="mean", length_bins=1)
    combined = fit_detector(settings, out, reference, level=0.9, how="t")
    maha = fit_detector(replace(settings, score="mahalanobis"), out, reference, level=0.9, how="t")
    dens = fit_detector(replace(settings, score="density"), out, reference, level=0.9, how="t")
    m, d = maha.sequence_scores(out), dens.sequence_scores(out)

    def standardized(x: np.ndarray) -> np.ndarray:
        q25, q75 = np.quantile(x, [0.25, 0.75])
        return (x - np.median(x)) / (q75 - q25)

    np.testing.assert_allclose(combined.sequence_scores(out), standardized(m) + standardized(d), rtol=1e-9)
    np.testing.assert_allclose(combined.step_scores(out), maha.step_scores(out))
    assert combined.thresholds(lengths)[0] == np.quantile(combined.sequence_scores(out), 0.9)


# --------------------------------------------------------------------------- fit_length_bins


def test_one_length_range_is_the_quantile_of_the_scores() -> None:
    rng = np.random.default_rng(1)
    scores = rng.gamma(2.0, size=157)
    lengths = rng.integers(1, 50, 157)
    for level in (0.5, 0.9, 0.99):
        bins = fit_length_bins(lengths, scores, 1, level)
        assert bins.edges == () and len(bins.per_range) == 1
        # The standardization is affine, so this is the quantile up to float rounding.
        np.testing.assert_allclose(bins.thresholds(lengths), np.quantile(scores, level), rtol=1e-13)


def test_one_length_range_threshold_is_exactly_the_quantile() -> None:
    """The docstring's promise: with one range, exactly the quantile of the scores. Here
    the 1/27 quantile of 28 scores is the second smallest score, 0.497."""
    scores = np.array(
        [1.395, 3.318, 1.648, 3.968, 0.963, 3.251, 1.577, 1.437, 0.845, 6.357, 2.299, 0.497, 1.579, 0.812]
        + [1.253, 4.35, 2.527, 4.347, 2.301, 3.9, 1.832, 0.459, 5.418, 0.968, 1.407, 2.643, 3.708, 1.919]
    )
    level = 1 / 27
    bins = fit_length_bins(np.arange(1, 29), scores, 1, level)
    assert np.quantile(scores, level) == 0.497
    flagged = scores > bins.per_range[0]
    assert flagged.sum() == (scores > np.quantile(scores, level)).sum() == 26  # 0.497 itself is not above it
    assert bins.per_range[0] == np.quantile(scores, level)


def test_length_ranges_flag_every_range_at_the_same_rate() -> None:
    """Scores whose spread grows with the length: one threshold would flag mostly long
    sequences; one per length range flags each range at about the wanted rate."""
    rng = np.random.default_rng(2)
    lengths = rng.integers(1, 61, 800)
    scores = np.abs(rng.normal(size=800)) * lengths
    level = 0.9
    bins = fit_length_bins(lengths, scores, 4, level)
    assert len(bins.per_range) == 4 and len(bins.edges) == 3
    which = bins.index(lengths)
    counts = np.bincount(which, minlength=4)
    assert counts.min() >= MIN_PER_BIN
    flagged = scores > bins.thresholds(lengths)
    rates = np.array([flagged[which == b].mean() for b in range(4)])
    np.testing.assert_allclose(rates, 1 - level, atol=0.04)
    assert abs(flagged.mean() - (1 - level)) < 0.01
    one = scores > np.quantile(scores, level)
    assert one[which == 3].mean() - one[which == 0].mean() > 0.15  # what the ranges correct


def test_length_ranges_keep_at_least_min_per_bin_with_tied_lengths() -> None:
    rng = np.random.default_rng(3)
    lengths = np.r_[np.full(100, 5), np.full(10, 6), np.full(45, 7), np.full(31, 40)]
    scores = rng.gamma(2.0, size=len(lengths))
    bins = fit_length_bins(lengths, scores, 8, 0.95)
    counts = np.bincount(bins.index(lengths))
    assert counts.min() >= MIN_PER_BIN and len(counts) == len(bins.per_range) > 1
    # Every sequence of one length is in one range.
    for length in np.unique(lengths):
        assert len(np.unique(bins.index(lengths[lengths == length]))) == 1


def test_too_few_sequences_for_two_ranges_and_nan_scores() -> None:
    lengths = np.arange(1, 2 * MIN_PER_BIN)  # 59 sequences: too few for two ranges of MIN_PER_BIN
    scores = np.linspace(0, 1, len(lengths))
    scores[0] = np.nan  # a sequence with nothing scored takes no part
    bins = fit_length_bins(lengths, scores, 4, 0.5)
    assert bins.edges == ()
    np.testing.assert_allclose(bins.per_range[0], np.quantile(scores[1:], 0.5), rtol=1e-12)
    with pytest.raises(DetectError, match="no calibration sequence has a score"):
        fit_length_bins(np.array([1, 2]), np.array([np.nan, np.nan]), 4, 0.5)


# --------------------------------------------------------------------------- intervals


def test_intervals_by_hand() -> None:
    scores = np.array(
        [0.2, 3.5, 0.1, 2.0, 2.0, 2.0]  # runs [1] (excess 2.5) and [3..5] (excess 3): the second is worst
        + [4.0, 0.5, np.nan]  # starts above right after the last run: a new run, numbered 1
        + [0.0, np.nan, 0.9]  # nothing above
        + [1.2]  # one step, above
    )
    offsets = np.array([0, 6, 9, 12, 13])
    worst, step_interval = intervals(scores, offsets, 1.0)
    np.testing.assert_array_equal(worst, [[3, 5], [0, 0], [-1, -1], [0, 0]])
    np.testing.assert_array_equal(step_interval, [0, 1, 0, 2, 2, 2, 1, 0, 0, 0, 0, 0, 1])
    # Nothing above anywhere.
    worst, step_interval = intervals(scores, offsets, 10.0)
    assert (worst == -1).all() and (step_interval == 0).all()


# --------------------------------------------------------------------------- fitting on synthetic outputs


def synthetic_outputs(residuals: np.ndarray, lengths: list[int], has_target: np.ndarray | None = None) -> Outputs:
    """Outputs as model_outputs makes them, from given per-feature residuals (mse)."""
    residuals = np.asarray(residuals, float)
    n_steps, width = residuals.shape
    has_target = np.ones(n_steps, bool) if has_target is None else has_target
    residuals = np.where(has_target[:, None], residuals, 0.0)
    seqs = Sequences(np.zeros((n_steps, width)), np.array(lengths), [f"s{i}" for i in range(len(lengths))])
    feature_errors = np.where(has_target[:, None], residuals**2, np.nan)
    step_errors = np.where(has_target, np.square(residuals).mean(axis=1), np.nan)
    sums = np.add.reduceat(np.nan_to_num(step_errors), seqs.offsets[:-1])
    counts = np.add.reduceat(has_target.astype(float), seqs.offsets[:-1])
    latent = np.random.default_rng(0).normal(size=(len(lengths), 3))
    return Outputs(seqs, residuals, has_target, step_errors, feature_errors, Scores(sums, counts, counts), latent)


def test_fit_detector_mahalanobis_fits_the_population_gaussian_of_scored_steps() -> None:
    rng = np.random.default_rng(4)
    residuals = rng.normal(size=(60, 2)) @ np.array([[1.0, 0.3], [0.0, 0.5]])
    has_target = rng.random(60) > 0.2
    out = synthetic_outputs(residuals, [10] * 6, has_target)
    settings = DetectConfig(score="mahalanobis", aggregate="mean", length_bins=1)
    detector = fit_detector(settings, out, np.zeros((0, 0)), level=0.9, how="test")
    scored = residuals[has_target]
    np.testing.assert_allclose(detector.mean, scored.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(detector.cov, np.cov(scored, rowvar=False, ddof=0), rtol=1e-12)
    steps = detector.step_scores(out)
    assert np.isnan(steps[~has_target]).all()
    np.testing.assert_allclose(
        steps[has_target], mahalanobis_squared(scored, detector.mean, detector.cov, np.ones(len(scored), bool))
    )
    np.testing.assert_allclose(detector.step_threshold, np.quantile(steps[has_target], 0.9), rtol=1e-12)
    np.testing.assert_allclose(detector.sequence_scores(out), aggregate(steps, out.seqs.offsets, "mean", 0.1))


def test_singular_covariance_is_a_clear_detect_error() -> None:
    rng = np.random.default_rng(5)
    column = rng.normal(size=(40, 1))
    out = synthetic_outputs(np.hstack([column, column]), [10] * 4)  # a duplicated residual column
    with pytest.raises(DetectError, match="singular covariance.*constant or duplicated feature.*detect.score"):
        fit_gaussian(out)
    with pytest.raises(DetectError, match="singular covariance"):
        fit_detector(DetectConfig(score="mahalanobis"), out, np.zeros((0, 0)), level=0.99, how="test")
    constant = synthetic_outputs(np.hstack([column, np.full((40, 1), 0.5)]), [10] * 4)
    with pytest.raises(DetectError, match="singular covariance"):
        fit_gaussian(constant)
    assert issubclass(DetectError, RunError)  # exit code 1


def test_too_few_scored_steps_for_mahalanobis_is_a_clear_detect_error() -> None:
    has_target = np.array([True, False, True, False, False])
    out = synthetic_outputs(np.random.default_rng(6).normal(size=(5, 2)), [2, 3], has_target)
    with pytest.raises(DetectError, match=r"more scored calibration steps than error features \(2 steps, 2 features\)"):
        fit_detector(DetectConfig(score="mahalanobis"), out, np.zeros((0, 0)), level=0.99, how="test")


def test_latent_needs_two_reference_vectors_and_sequences_to_calibrate_on() -> None:
    out = synthetic_outputs(np.ones((4, 2)), [2, 2])
    with pytest.raises(DetectError, match="at least 2 training sequences"):
        fit_detector(DetectConfig(score="latent"), out, np.zeros((1, 3)), level=0.9, how="test")
    with pytest.raises(DetectError, match="no sequences to calibrate on"):
        fit_detector(DetectConfig(score="error"), out.subset(np.array([], np.int64)), out.latent, level=0.9, how="t")


# --------------------------------------------------------------------------- the tables detect writes


def _error_detector(out: Outputs) -> detect.Detector:
    return fit_detector(DetectConfig(score="error", length_bins=1), out, out.latent, level=0.5, how="test")


def _hand_detection(feature_names: tuple[str, ...] = ()) -> detect.Detection:
    """Two sequences (3 and 2 steps) under the error score, step threshold 1."""
    residuals = np.array([[0.1, 0.2], [2.0, 1.0], [1.5, 1.5], [0.0, 0.1], [3.0, 0.0]])
    out = synthetic_outputs(residuals, [3, 2], np.array([True, True, True, True, True]))
    out = dataclasses.replace(out, seqs=dataclasses.replace(out.seqs, feature_names=feature_names))
    return detect_outputs(dataclasses.replace(_error_detector(out), step_threshold=1.0), out, threshold=1.0)


def test_detection_and_step_columns_by_hand() -> None:
    from seqmask.analysis.outputs import DETECTION_COLUMNS, detection_columns, step_columns

    detection = _hand_detection()
    # Step errors (mean of squares): 0.025, 2.5, 2.25 | 0.005, 4.5; sequence errors 1.591.., 2.2525.
    columns = detection_columns(detection)
    assert tuple(columns) == DETECTION_COLUMNS
    assert columns["id"] == ["s0", "s1"] and columns["length"] == [3, 2] and columns["anomaly"] == [1, 1]
    np.testing.assert_allclose(columns["score"], [(0.025 + 2.5 + 2.25) / 3, (0.005 + 4.5) / 2])
    assert columns["threshold"] == [1.0, 1.0]
    assert (columns["interval_start"], columns["interval_end"]) == ([1, 1], [2, 1])
    steps = step_columns(detection)
    assert list(steps) == ["id", "step", "score", "error_f0", "error_f1", "interval"]  # no names in the file
    assert steps["id"] == ["s0", "s0", "s0", "s1", "s1"] and steps["step"] == [0, 1, 2, 0, 1]
    np.testing.assert_allclose(steps["error_f0"], [0.01, 4.0, 2.25, 0.0, 9.0])
    assert steps["interval"] == [None, 1, 1, None, 1]
    assert list(step_columns(_hand_detection(("x", "y")))) == ["id", "step", "score", "error_x", "error_y", "interval"]


def test_parquet_column_types_do_not_depend_on_the_values(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from seqmask.analysis.outputs import detection_columns, write_table

    detection = _hand_detection()
    detector = dataclasses.replace(_error_detector(detection.outputs), step_threshold=math.inf)
    quiet = detect_outputs(detector, detection.outputs)
    assert (quiet.worst == -1).all()  # no interval anywhere
    write_table(tmp_path / "some.parquet", detection_columns(detection))
    write_table(tmp_path / "none.parquet", detection_columns(quiet))
    assert pq.read_table(tmp_path / "none.parquet").schema == pq.read_table(tmp_path / "some.parquet").schema


# --------------------------------------------------------------------------- a model's outputs

# (padding, decoder, error, target): the two exact pairings of padding and decoder; the
# second with mae and next_step (the last step of each sequence has no target).
RUNS = {
    "post": ("post", "repeat", "mse", "reconstruct"),
    "pre": ("pre", "remask", "mae", "next_step"),
}


def _built_run(tmp: Path, padding: str, decoder: str, error: str, target: str) -> LoadedRun:
    cfg = config_from_dict(
        {
            "data": {"train": str(tmp / "data.npz"), "padding": padding, "normalize": "none"},
            "model": {"units": 4, "latent_dim": 3, "decoder": decoder, "decoder_positions": 4},
            "train": {"error": error, "target": target, "batch_size": 4},
        }
    )
    keras.utils.set_random_seed(0)
    model = build_autoencoder(cfg.model, 2, padding, fused=padding == "post")
    return LoadedRun(RunDir(tmp / "run"), cfg, Normalizer.identity(2), model, "best")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, LoadedRun]:
    """Untrained tiny models, built once for the module: outputs need no training."""
    return {name: _built_run(tmp_path_factory.mktemp(name), *spec) for name, spec in RUNS.items()}


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    seqs = make_sequences([1, 4, 9, 2, 7, 3, 3, 11, 5], seed=7)
    path = tmp_path_factory.mktemp("data") / "data.npz"
    np.savez(path, values=seqs.values, lengths=seqs.lengths, ids=seqs.ids)
    return path


@pytest.mark.parametrize("name", sorted(RUNS))
def test_outputs_agree_with_evaluate(built: dict[str, LoadedRun], data_file: Path, name: str) -> None:
    run = built[name]
    evaluation = evaluate(run, data_file)
    out = model_outputs(run, run_data(run, data_file))
    # The error score is evaluate's per-sequence error, the very numbers.
    error = fit_detector(DetectConfig(score="error", length_bins=1), out, out.latent, level=0.9, how="t")
    np.testing.assert_array_equal(error.sequence_scores(out), evaluation.scores.per_sequence)
    np.testing.assert_array_equal(detect_outputs(error, out).scores, evaluation.scores.per_sequence)
    # Σ e_t over the scored steps is evaluate's Σ w·e (per_step: w = 1 at every scored step).
    offsets = out.seqs.offsets
    sums = np.add.reduceat(np.nan_to_num(out.step_errors), offsets[:-1])
    np.testing.assert_allclose(sums, evaluation.scores.sums, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(np.add.reduceat(out.has_target.astype(float), offsets[:-1]), evaluation.scores.counts)
    # e_t is the mean over the features of the per-feature errors.
    scored = out.has_target
    np.testing.assert_allclose(out.feature_errors[scored].mean(axis=1), out.step_errors[scored], rtol=1e-12)
    assert np.isnan(out.step_errors[~scored]).all() and np.isnan(out.feature_errors[~scored]).all()
    square = run.cfg.train.error == "mse"
    np.testing.assert_allclose(
        out.feature_errors[scored], out.residuals[scored] ** 2 if square else np.abs(out.residuals[scored])
    )
    if run.cfg.train.target == "next_step":  # the last step of each sequence has nothing to predict
        assert (
            not out.has_target[offsets[1:] - 1].any() and out.has_target.sum() == out.seqs.num_steps - len(offsets) + 1
        )
        assert np.isnan(evaluation.scores.per_sequence[out.seqs.lengths == 1]).all()
    else:
        assert out.has_target.all()
    # The latent vectors are encode's.
    from seqmask.analysis.evaluate import encode

    _, latent, _ = encode(run, data_file)
    np.testing.assert_allclose(out.latent, latent, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def fitted(built: dict[str, LoadedRun]) -> dict[str, tuple[LoadedRun, dict[str, detect.Detector]]]:
    """Per padding, a run and its three detectors, fitted once on 40 random sequences."""
    out: dict[str, tuple[LoadedRun, dict[str, detect.Detector]]] = {}
    for name, run in built.items():
        calibration = model_outputs(run, make_sequences(np.random.default_rng(8).integers(1, 12, 40), seed=8))
        detectors = {
            score: fit_detector(
                DetectConfig(score=score, length_bins=1, aggregate="top", top_fraction=0.3),
                calibration,
                calibration.latent,
                level=0.8,
                how="test",
            )
            for score in ("error", "mahalanobis", "latent", "density", "combined")
        }
        out[name] = (run, detectors)
    return out


@settings(max_examples=15, deadline=None)
@given(
    padding=st.sampled_from(["post", "pre"]),
    length=st.integers(1, 8),
    neighbours=st.lists(st.integers(1, 12), max_size=6),
    position=st.integers(0, 6),
    batch_size=st.integers(1, 5),
    extra=st.integers(0, 4),
    pad_value=st.sampled_from([0.0, -3.0, 1e30, np.nan, np.inf]),
    seed=st.integers(0, 1000),
)
def test_a_sequences_outputs_and_scores_do_not_depend_on_its_batch(
    fitted: dict[str, tuple[LoadedRun, dict[str, detect.Detector]]],
    padding: str,
    length: int,
    neighbours: list[int],
    position: int,
    batch_size: int,
    extra: int,
    pad_value: float,
    seed: int,
) -> None:
    """Padding value, amount of padding (longer neighbours, extra padded steps), batch
    size and neighbours change nothing about one sequence: not its residuals, step
    scores or latent vector, nor any of its sequence scores."""
    run, detectors = fitted[padding]
    target = make_sequences([length], seed=seed)
    crowd = make_sequences(neighbours, seed=seed + 1) if neighbours else None
    i = min(position, len(neighbours))
    if crowd is None:
        seqs = target
    else:
        order = list(range(len(neighbours)))
        order.insert(i, len(neighbours))
        both = Sequences(
            np.concatenate([crowd.values, target.values]),
            np.r_[crowd.lengths, target.lengths],
            [f"n{j}" for j in range(len(neighbours) + 1)],
        )
        seqs = both.subset(np.array(order))
    alone = model_outputs(run, target, batch_size=1)

    def padded_batch(
        seqs: Sequences, indices: np.ndarray, batching: str, max_len: int | None, padding: str
    ) -> tuple[np.ndarray, np.ndarray]:
        lengths = seqs.lengths[indices]
        return pad(seqs, indices, int(lengths.max()) + extra, padding, pad_value), lengths.astype(np.int32)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(detect, "padded_batch", padded_batch)
        together = model_outputs(run, seqs, batch_size=batch_size)
    rows = slice(int(together.seqs.offsets[i]), int(together.seqs.offsets[i + 1]))
    tol = {"rtol": 1e-5, "atol": 1e-5}
    np.testing.assert_allclose(together.residuals[rows], alone.residuals, **tol)
    np.testing.assert_array_equal(together.has_target[rows], alone.has_target)
    np.testing.assert_allclose(together.step_errors[rows], alone.step_errors, **tol)
    np.testing.assert_allclose(together.latent[i], alone.latent[0], **tol)
    for score, detector in detectors.items():
        np.testing.assert_allclose(detector.step_scores(together)[rows], detector.step_scores(alone), **tol)
        np.testing.assert_allclose(
            detector.sequence_scores(together)[i], detector.sequence_scores(alone)[0], **tol, err_msg=score
        )


# --------------------------------------------------------------------------- a trained run


def _write_csv(path: Path, seed: int, n: int) -> Path:
    """Long-format CSV (id,step,x,y), sequences in shuffled id order."""
    rng = np.random.default_rng(seed)
    lines = ["id,step,x,y"]
    for i in rng.permutation(n):
        t = np.arange(int(rng.integers(2, 10)))
        x, y = np.sin(t / 2 + i), np.cos(t / 3 + i) + 0.1 * rng.normal(size=len(t))
        lines += [f"q{i:03d},{s},{x[s]:.4f},{y[s]:.4f}" for s in t]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(run directory, data file): one tiny run with a validation split, 1 epoch."""
    tmp = tmp_path_factory.mktemp("trained")
    data = _write_csv(tmp / "data.csv", seed=0, n=50)
    cfg = {
        "data": {"train": "data.csv", "step_column": "step", "validation_split": 0.2},
        "model": {"units": 4, "latent_dim": 2, "bidirectional": False, "pooling": "none", "decoder_positions": 0},
        "train": {"epochs": 1, "batch_size": 16},
        "detect": {"score": "latent"},
    }
    (tmp / "config.yaml").write_text(yaml.safe_dump(cfg))
    metrics = train(load_config(tmp / "config.yaml"), tmp / "run")
    assert metrics["detector"] == {
        "score": "latent",
        "thresholds": "quantile 0.99 of the validation split (10 sequences)",
    }
    return tmp / "run", data


def _copy(trained: tuple[Path, Path], tmp_path: Path) -> Path:
    return Path(shutil.copytree(trained[0], tmp_path / "run"))


def test_train_calibrates_the_best_checkpoint(trained: tuple[Path, Path]) -> None:
    run_dir, _ = trained
    for name in ("detector.json", "detector_best.npz", "metrics.json"):
        assert (run_dir / name).is_file(), name
    detector = load_detector(RunDir(run_dir), "best")
    assert detector is not None and detector.score == "latent" and detector.calibration_sequences == 10
    assert detector.reference is not None and detector.reference.shape == (40, 2)  # the training split
    assert load_detector(RunDir(run_dir), "last") is None  # only best is calibrated


def test_detect_in_a_fresh_process_gives_the_same_scores(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run_dir, data = _copy(trained, tmp_path), trained[1]
    detector = calibrate(load_run(run_dir), score="mahalanobis", threshold=Threshold(quantile=0.8))
    assert detector.score == "mahalanobis" and detector.how == "quantile 0.8 of the validation split (10 sequences)"
    args = ["detect", str(run_dir), "--data", str(data)]
    here = CliRunner().invoke(app, [*args, "--output", str(tmp_path / "here.csv"), "--steps", str(tmp_path / "hs.csv")])
    assert here.exit_code == 0, here.output
    there = subprocess.run(
        [
            sys.executable,
            "-m",
            "seqmask",
            *args,
            "--output",
            str(tmp_path / "there.csv"),
            "--steps",
            str(tmp_path / "ts.csv"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert there.returncode == 0, there.stderr
    assert (tmp_path / "there.csv").read_text() == (tmp_path / "here.csv").read_text()
    assert (tmp_path / "ts.csv").read_text() == (tmp_path / "hs.csv").read_text()
    # ... and both are what the saved detector gives in this process.
    result, loaded, new = detect.detect(load_run(run_dir), data)
    assert not new and loaded.score == "mahalanobis"
    np.testing.assert_allclose(loaded.cov, detector.cov)
    written = np.genfromtxt(tmp_path / "here.csv", delimiter=",", names=True, dtype=None, encoding="utf-8")
    np.testing.assert_allclose(written["score"], result.scores, rtol=1e-8)


def test_a_detector_of_an_earlier_checkpoint_is_a_run_error(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run_dir, data = _copy(trained, tmp_path), trained[1]
    calibrate(load_run(run_dir, "last"))
    # Training on rewrites the last checkpoint; the end of train recalibrates best only.
    train(None, run_dir, resume=True, overrides=["train.epochs=2"])
    with pytest.raises(
        RunError, match=r"earlier version of the last checkpoint.*seqmask calibrate .* --checkpoint last'"
    ):
        detect.detect(load_run(run_dir, "last"), data)
    assert load_detector(RunDir(run_dir), "best") is not None
    # A best checkpoint rewritten behind the detector's back.
    with zipfile.ZipFile(run_dir / "checkpoints" / "best.keras", "a") as archive:
        archive.writestr("extra.txt", "changed")
    with pytest.raises(RunError, match=r"earlier version of the best checkpoint.*run 'seqmask calibrate [^ ]*'$"):
        detect.detect(load_run(run_dir), data)
    calibrate(load_run(run_dir))  # what the message says to do
    assert detect.detect(load_run(run_dir), data)[2] is False


def test_resuming_a_finished_run_keeps_its_calibration(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run_dir = _copy(trained, tmp_path)
    calibrate(load_run(run_dir), threshold=Threshold(quantile=0.5))
    best = (run_dir / "checkpoints" / "best.keras").read_bytes()
    train(None, run_dir, resume=True)  # had already finished: nothing to train
    assert (run_dir / "checkpoints" / "best.keras").read_bytes() == best
    detector = load_detector(RunDir(run_dir), "best")
    assert detector is not None and detector.how == "quantile 0.5 of the validation split (10 sequences)"


def test_damaged_detector_files_are_run_errors(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run_dir = _copy(trained, tmp_path)
    arrays = run_dir / "detector_best.npz"
    arrays.write_bytes(arrays.read_bytes() + b"x")
    with pytest.raises(RunError, match="detector_best.npz does not match .*detector.json; run 'seqmask calibrate"):
        load_detector(RunDir(run_dir), "best")
    (run_dir / "detector.json").write_text("[1, 2]")
    with pytest.raises(RunError, match="detector.json is damaged.*seqmask calibrate"):
        load_detector(RunDir(run_dir), "best")


def test_a_run_without_a_detector_is_calibrated_on_first_use(trained: tuple[Path, Path], tmp_path: Path) -> None:
    run_dir, data = _copy(trained, tmp_path), trained[1]
    saved = load_detector(RunDir(run_dir), "best")
    (run_dir / "detector.json").unlink()
    (run_dir / "detector_best.npz").unlink()
    run = load_run(run_dir)
    detector, new = detector_for(run)
    assert new and (run_dir / "detector.json").is_file() and (run_dir / "detector_best.npz").is_file()
    # The same fit as the end of train: validation split, training reference set.
    assert saved is not None and detector.bins == saved.bins and detector.how == saved.how
    np.testing.assert_allclose(detector.reference, saved.reference, rtol=1e-6)
    again, new = detector_for(run)
    assert not new and again.bins == detector.bins
    assert detect.detect(run, data)[2] is False


def test_threshold_levels() -> None:
    assert Threshold().level(0.99) == 0.99
    assert Threshold(quantile=0.9).level(0.99) == 0.9
    assert math.isclose(Threshold(contamination=0.05).level(0.99), 0.95)
    assert math.isclose(Threshold(fpr=0.2).level(0.99), 0.8)
