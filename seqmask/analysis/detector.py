"""The anomaly detector: a fitted score and its thresholds, and how the run directory keeps it.

Owns: `Detector` (what calibration saves: the score's settings, its fitted statistics and
thresholds, and the checkpoint it was fitted on), `fit_detector` (calibration's fit, from a
pass of the model over the calibration data), and the detector's files in the run directory,
detector.json + detector_<checkpoint>.npz (`save_detector`, `load_detector`, which checks
them against each other and against the checkpoint). numpy only, like the score math it
applies (`scores`); running the model and calibrating a run are `detect`.
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from seqmask import atomic
from seqmask.analysis.scores import (
    DetectError,
    LengthBins,
    Outputs,
    aggregate,
    density_ratio,
    fit_gaussian,
    fit_length_bins,
    fit_reference,
    knn_distance,
    mahalanobis_squared,
    robust_scale,
)
from seqmask.config import AnomalyScore, DetectConfig, check_choice
from seqmask.errors import RunError
from seqmask.run.directory import Checkpoint, RunDir

DETECTOR = "detector.json"


@dataclass(frozen=True)
class Detector:
    """A fitted score and its thresholds. Saved as detector.json + detector_<checkpoint>.npz."""

    settings: DetectConfig
    bins: LengthBins  # the sequence thresholds
    step_threshold: float
    how: str  # how the thresholds were set, in words
    calibration_sequences: int
    # mahalanobis: the error vectors' Gaussian.
    mean: np.ndarray | None = None  # (R,)
    cov: np.ndarray | None = None  # (R, R)
    # latent, density, combined: the standardized reference set.
    latent_mean: np.ndarray | None = None  # (latent_dim,)
    latent_scale: np.ndarray | None = None  # (latent_dim,)
    reference: np.ndarray | None = None  # (m, latent_dim), standardized
    reference_knn: np.ndarray | None = None  # (m,): density's denominator
    # combined: the median and interquartile range of each part over the calibration data.
    parts_location: np.ndarray | None = None  # (2,): mahalanobis, density
    parts_scale: np.ndarray | None = None  # (2,)
    one_sided: bool = False  # token runs: see mahalanobis_squared
    checkpoint: Checkpoint = "best"
    checkpoint_digest: str = ""

    @property
    def score(self) -> AnomalyScore:
        return self.settings.score

    # -- scoring ---------------------------------------------------------------------

    def step_scores(self, out: Outputs) -> np.ndarray:
        """(num_steps,) float64: d²_t (mahalanobis, combined) or e_t; NaN at steps not scored."""
        if self.score not in ("mahalanobis", "combined"):
            return out.step_errors
        assert self.mean is not None and self.cov is not None
        return mahalanobis_squared(out.residuals, self.mean, self.cov, out.has_target, self.one_sided)

    def sequence_scores(self, out: Outputs, step_scores: np.ndarray | None = None) -> np.ndarray:
        """(num_sequences,) float64; NaN for a sequence with no scored step (error, mahalanobis)."""
        if self.score == "error":
            return out.scores.per_sequence
        if self.score == "latent":
            return knn_distance(self._query(out), self._reference(), self.settings.neighbors)
        if self.score == "density":
            return self._density(out)
        steps = self.step_scores(out) if step_scores is None else step_scores
        errors = aggregate(steps, out.seqs.offsets, self.settings.aggregate, self.settings.top_fraction)
        if self.score == "mahalanobis":
            return errors
        return self.combine(errors, self._density(out))

    def combine(self, errors: np.ndarray, density: np.ndarray) -> np.ndarray:
        """combined = Σ over the two parts of (part - median) / IQR, both over the calibration data."""
        assert self.parts_location is not None and self.parts_scale is not None
        loc, scale = self.parts_location, self.parts_scale
        return (errors - loc[0]) / scale[0] + (density - loc[1]) / scale[1]

    def _query(self, out: Outputs) -> np.ndarray:
        assert self.latent_mean is not None and self.latent_scale is not None
        return (out.latent - self.latent_mean) / self.latent_scale  # (num_sequences, latent_dim)

    def _reference(self) -> np.ndarray:
        assert self.reference is not None
        return self.reference

    def _density(self, out: Outputs) -> np.ndarray:
        assert self.reference_knn is not None
        return density_ratio(self._query(out), self._reference(), self.reference_knn, self.settings.neighbors)

    def thresholds(self, lengths: np.ndarray) -> np.ndarray:
        return self.bins.thresholds(lengths)

    # -- files -----------------------------------------------------------------------

    def arrays(self) -> dict[str, np.ndarray]:
        named = {
            "mean": self.mean,
            "cov": self.cov,
            "latent_mean": self.latent_mean,
            "latent_scale": self.latent_scale,
            "reference": self.reference,
            "reference_knn": self.reference_knn,
            "parts_location": self.parts_location,
            "parts_scale": self.parts_scale,
        }
        return {k: v for k, v in named.items() if v is not None}

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": asdict(self.settings),
            "bins": asdict(self.bins),
            "step_threshold": self.step_threshold,
            "how": self.how,
            "calibration_sequences": self.calibration_sequences,
            "one_sided": self.one_sided,
            "checkpoint": self.checkpoint,
            "checkpoint_digest": self.checkpoint_digest,
        }


# --------------------------------------------------------------------------- fitting


def fit_detector(
    settings: DetectConfig,
    calibration: Outputs,
    reference_latent: np.ndarray,
    *,
    level: float,
    how: str,
    seed: int = 0,
) -> Detector:
    """Fits `settings.score` on `calibration` (normal data, or data with a known share of
    anomalies for a contamination level) and sets its thresholds at quantile `level`."""
    check_choice("score", settings.score, AnomalyScore)
    if not len(calibration.seqs):
        raise DetectError("there are no sequences to calibrate on")
    parts: dict[str, Any] = {}
    if settings.score in ("mahalanobis", "combined"):
        parts["mean"], parts["cov"] = fit_gaussian(calibration)
    if settings.score in ("latent", "density", "combined"):
        k = settings.neighbors if settings.score != "latent" else None
        parts.update(fit_reference(reference_latent, seed, k))
    unfitted = LengthBins((), (math.inf,))
    one_sided = calibration.seqs.values.dtype.kind in "iu"  # token ids: residuals are NLLs
    partial = Detector(settings, unfitted, 0.0, how, len(calibration.seqs), one_sided=one_sided, **parts)
    steps = partial.step_scores(calibration)
    if settings.score == "combined":
        errors = aggregate(steps, calibration.seqs.offsets, settings.aggregate, settings.top_fraction)
        density = partial._density(calibration)
        location, scale = zip(robust_scale(errors), robust_scale(density), strict=True)
        partial = replace(partial, parts_location=np.array(location), parts_scale=np.array(scale))
    scores = partial.sequence_scores(calibration, steps)
    bins = fit_length_bins(calibration.seqs.lengths, scores, settings.length_bins, level)
    finite = steps[np.isfinite(steps)]
    step_threshold = float(np.quantile(finite, level)) if len(finite) else math.inf
    return replace(partial, bins=bins, step_threshold=step_threshold)


# --------------------------------------------------------------------------- the run directory


def checkpoint_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def arrays_name(checkpoint: str) -> str:
    return f"detector_{checkpoint}.npz"


def save_detector(run_dir: RunDir, detector: Detector) -> None:
    """detector_<checkpoint>.npz (allow_pickle=False) first, then detector.json naming its
    digest: a kill in between leaves a json whose digest no longer matches, never a
    detector mixing two fits."""
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=False, **detector.arrays())
    data = buffer.getvalue()
    name = arrays_name(detector.checkpoint)
    atomic.write_bytes(run_dir.file(name), data)
    entries = _read_entries(run_dir)
    entries[detector.checkpoint] = {**detector.to_dict(), "arrays": name, "arrays_sha256": _sha(data)}
    run_dir.write_json(DETECTOR, entries)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_entries(run_dir: RunDir) -> dict[str, Any]:
    path = run_dir.file(DETECTOR)
    if not path.is_file():
        return {}
    entries = run_dir.read_json(DETECTOR)
    if not isinstance(entries, dict):
        raise RunError(f"{path} is damaged (expected an object per checkpoint); run 'seqmask calibrate {run_dir}'")
    return entries


def load_detector(run_dir: RunDir, checkpoint: Checkpoint) -> Detector | None:
    """The saved detector for `checkpoint`, or None if there is none yet. A detector fitted
    on another version of the checkpoint (the run was trained on since) is an error."""
    entry = _read_entries(run_dir).get(checkpoint)
    if entry is None:
        return None
    fix = f"run 'seqmask calibrate {run_dir}" + ("" if checkpoint == "best" else f" --checkpoint {checkpoint}") + "'"
    try:
        data = run_dir.file(entry["arrays"]).read_bytes()
        if _sha(data) != entry["arrays_sha256"]:
            raise RunError(f"{run_dir.file(entry['arrays'])} does not match {run_dir.file(DETECTOR)}; {fix}")
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        settings = DetectConfig(**entry["settings"])
        check_choice("score", settings.score, AnomalyScore)
        raw_bins = entry["bins"]
        bins = LengthBins(tuple(map(float, raw_bins["edges"])), tuple(map(float, raw_bins["per_range"])))
        detector = Detector(
            settings,
            bins,
            float(entry["step_threshold"]),
            str(entry["how"]),
            int(entry["calibration_sequences"]),
            one_sided=bool(entry.get("one_sided", False)),
            checkpoint=checkpoint,
            checkpoint_digest=str(entry["checkpoint_digest"]),
            **arrays,
        )
    except RunError:
        raise
    except (OSError, KeyError, TypeError, ValueError) as e:
        raise RunError(f"{run_dir.file(DETECTOR)} is damaged ({e}); {fix}") from e
    if detector.checkpoint_digest != checkpoint_digest(run_dir.require_checkpoint(checkpoint)):
        raise RunError(
            f"{run_dir.file(DETECTOR)} was calibrated on an earlier version of the {checkpoint} checkpoint "
            f"(the run has been trained on since); {fix}"
        )
    return detector
