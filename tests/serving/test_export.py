"""export.py: the exported SavedModel and ONNX graph, loaded without seqmask, give
`seqmask encode` / `evaluate` / `detect`'s numbers; padding changes nothing; errors."""

import dataclasses
import json
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml
from helpers import ROOT, make_sequences

from seqmask.analysis import detect
from seqmask.analysis.evaluate import encode, evaluate
from seqmask.config import config_from_dict, load_config
from seqmask.data import Normalizer, Sequences, pad
from seqmask.data.loading import load
from seqmask.errors import ConfigError, RunError
from seqmask.model.autoencoder import build_autoencoder, encoder_from
from seqmask.model.scoring import make_eval_step, make_loss_fn
from seqmask.model.scoring import score as score_all
from seqmask.run.directory import RunDir
from seqmask.run.loaded import LoadedRun, load_run
from seqmask.run.splits import apply_transform
from seqmask.serving.export import METADATA, ONNX_FILE, ExportError, _Graphs, _write_onnx, export
from seqmask.training.loop import train

# Every decoder with post padding; with pre padding only remask is valid (the config refuses the others).
COMBOS = [("repeat", "post"), ("remask", "post"), ("crop", "post"), ("remask", "pre")]
NUM_SEQUENCES = 32
# One worker builds the module's runs once under `pytest -n 2 --dist loadgroup` (or loadfile).
pytestmark = pytest.mark.xdist_group("export")


def _ids(combo: tuple[str, str]) -> str:
    return "-".join(combo)


def _bundled_subset(path: Path, n: int = NUM_SEQUENCES) -> Path:
    """The first `n` sequences of data/trajectories.npz (lengths 1 .. 120)."""
    data = np.load(ROOT / "data" / "trajectories.npz")
    lengths = data["lengths"][:n]
    np.savez(path, values=data["values"][: int(lengths.sum())], lengths=lengths, ids=data["ids"][:n])
    return path


def _train_run(tmp: Path, decoder: str, padding: str) -> tuple[Path, Path]:
    """(run directory, data file): a tiny run, calibrated (train fits the default detector)."""
    data = _bundled_subset(tmp / "data.npz")
    # The first run has the bidirectional, pooled encoder (more layers to rebuild); the others are plain.
    wide = decoder == "repeat"
    cfg = {
        "data": {"train": "data.npz", "validation_split": 0.25, "padding": padding},
        "model": {
            "units": 8,
            "latent_dim": 4,
            "decoder": decoder,
            "bidirectional": wide,
            "pooling": "mean" if wide else "none",
        },
        "train": {"epochs": 1, "batch_size": 8},
    }
    (tmp / "config.yaml").write_text(yaml.safe_dump(cfg))
    train(load_config(tmp / "config.yaml"), tmp / "run")
    return tmp / "run", data


def _padded(seqs: Sequences, padding: str, extra: int = 0, fill: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All of `seqs` in one batch, padded to the longest + `extra` steps, the padding
    holding 0 or `fill`."""
    lengths = seqs.lengths.astype(np.int32)
    time_len = int(lengths.max()) + extra
    values = pad(seqs, np.arange(len(seqs)), time_len, padding)
    if fill is not None:
        steps = np.arange(time_len)[None, :]
        real = steps < lengths[:, None] if padding == "post" else steps >= time_len - lengths[:, None]
        values[~real] = fill
    return values, lengths


Runs = Callable[[tuple[str, str]], tuple[Path, Path]]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    """combo -> (run directory, data file), each run trained on first use: the fast tests
    (`-m "not slow"`) need two of the four."""
    cache: dict[tuple[str, str], tuple[Path, Path]] = {}

    def get(combo: tuple[str, str]) -> tuple[Path, Path]:
        if combo not in cache:
            cache[combo] = _train_run(tmp_path_factory.mktemp(_ids(combo)), *combo)
        return cache[combo]

    return get


# --------------------------------------------------------------------------- the proof: no seqmask

# Run with `python -I -S`: no site processing, so seqmask's editable install (a .pth file)
# is not on the path; site-packages is appended by hand for TensorFlow and onnxruntime.
# A non-editable install would be in site-packages itself: the finder blocks it too.
CHECKER = r"""
import json, sys


class NoSeqmask:
    def find_spec(self, name, path=None, target=None):
        if name == "seqmask" or name.startswith("seqmask."):
            raise ImportError("seqmask is blocked in the checker")
        return None


sys.meta_path.insert(0, NoSeqmask())
sys.path.append(sys.argv[1])
try:
    import seqmask
    raise AssertionError("seqmask is importable in the checker")
except ImportError:
    pass
import numpy as np
import tensorflow as tf
import onnxruntime as ort

for job in json.loads(open(sys.argv[2]).read()):
    batch = np.load(job["inputs"])
    values, lengths = batch["values"], batch["lengths"]
    out = {}
    model = tf.saved_model.load(job["savedmodel"])
    for name in ("encode", "reconstruct", "score"):
        for key, tensor in getattr(model, name)(values, lengths).items():
            out["savedmodel_" + key] = tensor.numpy()
    session = ort.InferenceSession(job["onnx"], providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    for key, array in zip(names, session.run(None, {"values": values, "lengths": lengths})):
        out["onnx_" + key] = array
    np.savez(job["result"], **out)
assert not any(m == "seqmask" or m.startswith("seqmask.") for m in sys.modules), "seqmask was imported"
print("ok")
"""


@pytest.fixture(scope="module")
def checked(runs: Runs, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Per combo: seqmask's own numbers and those of its two exports, computed in a
    subprocess that cannot import seqmask."""
    pytest.importorskip("tf2onnx", reason="the export extra (tf2onnx) is not installed")
    pytest.importorskip("onnxruntime", reason="the export extra (onnxruntime) is not installed")
    tmp = tmp_path_factory.mktemp("checked")
    jobs, expected = [], {}
    for combo in COMBOS:
        run_dir, data = runs(combo)
        run = load_run(run_dir)
        name = _ids(combo)
        infos = {fmt: export(run, tmp / f"{name}_{fmt}", fmt) for fmt in ("savedmodel", "onnx")}
        values, lengths = _padded(load(data, run.cfg), run.cfg.data.padding)
        np.savez(tmp / f"{name}_inputs.npz", values=values, lengths=lengths)
        _, latent, _ = encode(run, data)
        detection, _, new = detect.detect(run, data)
        assert not new  # train calibrated the run
        expected[combo] = {
            "latent": latent,
            "error": evaluate(run, data).scores.per_sequence,
            "detection": detection,
            "infos": infos,
            "values": values,
            "lengths": lengths,
        }
        jobs.append(
            {
                "inputs": str(tmp / f"{name}_inputs.npz"),
                "savedmodel": str(tmp / f"{name}_savedmodel"),
                "onnx": str(tmp / f"{name}_onnx" / ONNX_FILE),
                "result": str(tmp / f"{name}_result.npz"),
            }
        )
    (tmp / "jobs.json").write_text(json.dumps(jobs))
    (tmp / "checker.py").write_text(CHECKER)
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(tmp / "checker.py"), sysconfig.get_paths()["purelib"], str(tmp / "jobs.json")],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]
    for combo in COMBOS:
        with np.load(tmp / f"{_ids(combo)}_result.npz") as result:
            expected[combo]["got"] = dict(result)
    return expected


@pytest.mark.slow  # the `checked` fixture: 4 runs, 8 exports, a subprocess (~60 s)
@pytest.mark.parametrize("fmt", ["savedmodel", "onnx"])
@pytest.mark.parametrize("combo", COMBOS, ids=_ids)
def test_export_without_seqmask_matches_encode_evaluate_and_detect(checked: dict, combo: tuple, fmt: str) -> None:
    case = checked[combo]
    got = {k.removeprefix(f"{fmt}_"): v for k, v in case["got"].items() if k.startswith(f"{fmt}_")}
    assert got["latent"].dtype == np.float32 and got["error"].dtype == np.float64
    np.testing.assert_allclose(got["latent"], case["latent"], rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(got["error"], case["error"], rtol=1e-5, atol=1e-7)
    detection = case["detection"]
    # The combined score divides by an interquartile range, which scales the model's float32
    # rounding up: absolute agreement to 1e-5 on scores of order 1.
    np.testing.assert_allclose(got["anomaly_score"], detection.scores, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got["threshold"], detection.thresholds, rtol=1e-12)
    clear = np.abs(detection.scores - detection.thresholds) > 1e-4
    np.testing.assert_array_equal(got["anomaly"][clear], detection.flags[clear].astype(np.int32))
    counts = np.asarray(got["scored_steps"])
    np.testing.assert_array_equal(counts, case["lengths"])  # reconstruct, per_step: every real step


@pytest.mark.slow  # the `checked` fixture: 4 runs, 8 exports, a subprocess (~60 s)
@pytest.mark.parametrize("combo", COMBOS, ids=_ids)
def test_reconstruction_is_in_raw_units_and_zero_at_padding(checked: dict, combo: tuple) -> None:
    case = checked[combo]
    sm, ox = case["got"]["savedmodel_reconstruction"], case["got"]["onnx_reconstruction"]
    values, lengths = case["values"], case["lengths"]
    np.testing.assert_allclose(ox, sm, rtol=1e-4, atol=1e-5)
    steps = np.arange(values.shape[1])[None, :]
    padding = combo[1]
    real = steps < lengths[:, None] if padding == "post" else steps >= values.shape[1] - lengths[:, None]
    assert (sm[~real] == 0).all()
    # Raw units: the per-step squared error of the raw reconstruction, divided by std²,
    # averaged, is the normalized error evaluate reports.
    meta = json.loads((case["infos"]["savedmodel"].path / METADATA).read_text())
    std = np.asarray(meta["normalization"]["std"])
    per_step = (((sm.astype(np.float64) - values) / std) ** 2).mean(axis=-1)  # (batch, time)
    error = np.where(real, per_step, 0).sum(axis=1) / lengths
    np.testing.assert_allclose(error, case["error"], rtol=1e-3, atol=1e-6)


@pytest.mark.slow  # the `checked` fixture: 4 runs, 8 exports, a subprocess (~60 s)
def test_metadata_and_info(checked: dict) -> None:
    case = checked["remask", "pre"]
    info = case["infos"]["savedmodel"]
    assert info.format == "savedmodel" and info.with_anomaly_score and info.anomaly_score == "combined"
    assert info.signatures["encode"] == ("latent",)
    assert info.signatures["score"] == ("error", "scored_steps", "anomaly_score", "threshold", "anomaly")
    assert METADATA in info.files and "saved_model.pb" in info.files
    meta = json.loads((info.path / METADATA).read_text())
    assert meta["padding"] == "pre" and meta["num_features"] == 2 and meta["latent_dim"] == 4
    assert meta["checkpoint"] == "best" and meta["input_kind"] == "values"
    assert meta["anomaly_score"]["score"] == "combined"
    assert meta["anomaly_score"]["threshold_rule"].startswith("quantile 0.99 of the validation split")
    assert meta["signatures"]["score"] == list(info.signatures["score"])
    onnx_info = case["infos"]["onnx"]
    assert set(onnx_info.signatures["model"]) == {"latent", "reconstruction"} | set(info.signatures["score"])
    assert json.loads((onnx_info.path / METADATA).read_text())["file"] == ONNX_FILE


# --------------------------------------------------------------------------- padding invariance


@pytest.mark.slow  # the `checked` fixture: 4 runs, 8 exports, a subprocess (~60 s)
@pytest.mark.parametrize("combo", [("repeat", "post"), ("remask", "pre")], ids=_ids)
def test_padding_and_batch_change_nothing_in_the_export(
    runs: Runs, checked: dict, combo: tuple, tmp_path: Path
) -> None:
    ort = pytest.importorskip("onnxruntime", reason="the export extra (onnxruntime) is not installed")
    case = checked[combo]
    run_dir, data = runs(combo)
    padding = combo[1]
    seqs = load(data, load_run(run_dir).cfg)
    model = tf.saved_model.load(str(case["infos"]["savedmodel"].path))
    session = ort.InferenceSession(str(case["infos"]["onnx"].path / ONNX_FILE), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]

    def outputs(values: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
        out = {f"sm_{k}": v.numpy() for k, v in model.score(values, lengths).items()}
        out["sm_latent"] = model.encode(values, lengths)["latent"].numpy()
        onnx = dict(zip(names, session.run(None, {"values": values, "lengths": lengths}), strict=True))
        out.update({f"onnx_{k}": onnx[k] for k in ("latent", "error", "anomaly_score")})
        return out

    base = outputs(*_padded(seqs, padding))
    keys = ("latent", "error", "anomaly_score")
    # Extra padding holding garbage (large numbers, and inf / NaN, which the graph zeroes first).
    for fill in (1e30, -3e4, np.inf, np.nan):
        other = outputs(*_padded(seqs, padding, extra=9, fill=fill))
        for fmt in ("sm", "onnx"):
            for key in keys:
                np.testing.assert_allclose(other[f"{fmt}_{key}"], base[f"{fmt}_{key}"], rtol=1e-5, atol=1e-5)
    # Batch composition: a few sequences alone and in reverse order.
    pick = np.array([7, 3, 0, 12])
    part = outputs(*_padded(seqs.subset(pick), padding, extra=2, fill=5e5))
    for fmt in ("sm", "onnx"):
        for key in keys:
            np.testing.assert_allclose(part[f"{fmt}_{key}"], base[f"{fmt}_{key}"][pick], rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- every anomaly score


SCORES = [
    ("error", "top"),
    ("mahalanobis", "top"),
    ("mahalanobis", "mean"),
    ("mahalanobis", "max"),
    ("latent", "top"),
    ("density", "top"),
    ("combined", "mean"),
]


def _detector(run: LoadedRun, score: str, aggregate: str) -> detect.Detector:
    """`score` fitted on the run's validation split, with `aggregate` and three length ranges."""
    detector = detect.calibrate(run, score=score, save=False)
    detector = replace(detector, settings=replace(detector.settings, aggregate=aggregate, top_fraction=0.3))
    # Thresholds by length range (the tiny runs calibrate one range): edges at lengths in the data.
    median = float(np.median(detector.thresholds(np.array([1]))))
    return replace(detector, bins=detect.LengthBins((10.0, 37.0), (0.5 * median, median, 2.0 * median)))


def _check_detection(got: dict[str, np.ndarray], expected: detect.Detection, atol: float) -> None:
    np.testing.assert_allclose(got["anomaly_score"], expected.scores, rtol=1e-5, atol=atol)
    np.testing.assert_allclose(got["threshold"], expected.thresholds, rtol=1e-12)
    assert len(np.unique(expected.thresholds)) == 3
    clear = np.abs(expected.scores - expected.thresholds) > 1e-4
    np.testing.assert_array_equal(got["anomaly"][clear], expected.flags[clear])


@pytest.mark.parametrize(("score", "aggregate"), SCORES)
def test_every_detector_score_matches_detect(runs: Runs, score: str, aggregate: str) -> None:
    """The score graph (traced in-process, as export traces it) against detect.py's numpy."""
    run_dir, data = runs(("repeat", "post"))
    run = load_run(run_dir)
    detector = _detector(run, score, aggregate)
    expected = detect.detect_outputs(detector, detect.model_outputs(run, run_data_of(run, data)))
    fn = _Graphs(run, detector).function("score")
    values, lengths = _padded(load(data, run.cfg), run.cfg.data.padding)
    _check_detection({k: v.numpy() for k, v in fn(values, lengths).items()}, expected, atol=1e-6)


@pytest.mark.slow
def test_every_detector_score_through_onnx(runs: Runs, tmp_path: Path) -> None:
    """The same scores from the ONNX graph in onnxruntime (float64 TopK, Gather, MatMul)."""
    ort = pytest.importorskip("onnxruntime", reason="the export extra (onnxruntime) is not installed")
    pytest.importorskip("tf2onnx", reason="the export extra (tf2onnx) is not installed")
    run_dir, data = runs(("repeat", "post"))
    run = load_run(run_dir)
    outputs = detect.model_outputs(run, run_data_of(run, data))
    values, lengths = _padded(load(data, run.cfg), run.cfg.data.padding, extra=4, fill=np.nan)
    # Those the matrix above does not run through ONNX (it has combined with top): ~5 s each.
    for i, (score, aggregate) in enumerate([("mahalanobis", "max"), ("latent", "top"), ("combined", "mean")]):
        detector = _detector(run, score, aggregate)
        target = tmp_path / str(i)
        target.mkdir()
        _write_onnx(_Graphs(run, detector), target)
        session = ort.InferenceSession(str(target / ONNX_FILE), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        got = dict(zip(names, session.run(None, {"values": values, "lengths": lengths}), strict=True))
        _check_detection(got, detect.detect_outputs(detector, outputs), atol=1e-5)


def run_data_of(run: LoadedRun, data: Path) -> Sequences:
    return apply_transform(run.transform, load(data, run.cfg))


# --------------------------------------------------------------------------- without a detector, tokens


def test_run_without_detector_exports_the_error_only(runs: Runs, tmp_path: Path) -> None:
    run_dir, data = runs(("crop", "post"))
    bare = tmp_path / "run"
    shutil.copytree(run_dir, bare)
    (bare / detect.DETECTOR).unlink()
    run = load_run(bare)
    info = export(run, tmp_path / "out")
    assert not info.with_anomaly_score and info.anomaly_score is None
    assert info.signatures["score"] == ("error", "scored_steps")
    meta = json.loads((tmp_path / "out" / METADATA).read_text())
    assert meta["anomaly_score"] is None and "seqmask calibrate" in meta["anomaly_note"]
    model = tf.saved_model.load(str(tmp_path / "out"))
    values, lengths = _padded(load(data, run.cfg), "post")
    out = model.score(values, lengths)
    assert set(out) == {"error", "scored_steps"}
    np.testing.assert_allclose(out["error"].numpy(), evaluate(run, data).scores.per_sequence, rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_token_run_exports_ids_in_and_cross_entropy_out(tmp_path: Path) -> None:
    lines = (ROOT / "data" / "tokens.txt").read_text().splitlines()[:60]
    (tmp_path / "tokens.txt").write_text("\n".join(lines) + "\n")
    cfg = {
        "data": {"train": "tokens.txt", "validation_split": 0.25, "max_len": 30},
        "input": {"kind": "tokens", "min_count": 1, "embedding_dim": 4},
        "model": {"units": 8, "latent_dim": 4, "bidirectional": False, "pooling": "none"},
        "train": {"epochs": 1, "batch_size": 8},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    train(load_config(tmp_path / "config.yaml"), tmp_path / "run")
    run = load_run(tmp_path / "run")
    data = tmp_path / "tokens.txt"
    info = export(run, tmp_path / "out")
    assert (tmp_path / "out" / "vocabulary.txt").read_text() == (tmp_path / "run" / "vocabulary.txt").read_text()
    assert info.signatures["score"][:3] == ("error", "scored_steps", "accuracy")
    ids = run_data_of(run, data)
    values, lengths = _padded(ids, "post", extra=3, fill=999)  # ids outside the vocabulary in the padding
    assert values.dtype == np.int32
    model = tf.saved_model.load(str(tmp_path / "out"))
    evaluation = evaluate(run, data)
    score = model.score(values, lengths)
    np.testing.assert_allclose(score["error"].numpy(), evaluation.scores.per_sequence, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(score["accuracy"].numpy(), evaluation.scores.per_sequence_accuracy, rtol=1e-6)
    _, latent, _ = encode(run, data)
    np.testing.assert_allclose(model.encode(values, lengths)["latent"].numpy(), latent, rtol=1e-5, atol=2e-6)
    detection, _, _ = detect.detect(run, data)
    np.testing.assert_allclose(score["anomaly_score"].numpy(), detection.scores, rtol=1e-5, atol=1e-5)
    recon = model.reconstruct(values, lengths)["reconstruction"].numpy()
    assert recon.dtype == np.int32 and recon.shape == values.shape
    assert (recon[:, -3:] == 0).all() and recon.max() < len(run.transform)
    # The same through ONNX (skipped without the export extra).
    ort = pytest.importorskip("onnxruntime", reason="the export extra (onnxruntime) is not installed")
    pytest.importorskip("tf2onnx", reason="the export extra (tf2onnx) is not installed")
    export(run, tmp_path / "onnx", "onnx")
    session = ort.InferenceSession(str(tmp_path / "onnx" / ONNX_FILE), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    got = dict(zip(names, session.run(None, {"values": values, "lengths": lengths}), strict=True))
    np.testing.assert_allclose(got["error"], evaluation.scores.per_sequence, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got["latent"], latent, rtol=1e-5, atol=2e-6)
    np.testing.assert_array_equal(got["reconstruction"], recon)


# --------------------------------------------------------------------------- errors


@pytest.fixture(scope="module")
def small_run(runs: Runs) -> LoadedRun:
    return load_run(runs(("crop", "post"))[0])


def test_existing_output_is_refused_then_overwritten(small_run: LoadedRun, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty; pass --overwrite"):
        export(small_run, out)
    assert (out / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary directory left
    export(small_run, out, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / METADATA).is_file()
    info = export(small_run, tmp_path / "new" / "dir")  # a new directory, its parent made too
    assert info.path == tmp_path / "new" / "dir" and info.seconds > 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.seconds = 0.0  # type: ignore[misc]


def test_output_that_is_a_file_or_the_run_is_refused(small_run: LoadedRun, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExportError, match="not a directory"):
        export(small_run, tmp_path / "file", overwrite=True)
    with pytest.raises(ExportError, match="holds the run"):
        export(small_run, small_run.run_dir.path, overwrite=True)
    with pytest.raises(ExportError, match="holds the run"):
        export(small_run, small_run.run_dir.path.parent, overwrite=True)


def test_unknown_format_is_a_config_error(small_run: LoadedRun, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="format"):
        export(small_run, tmp_path / "out", "tflite")  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()
    assert issubclass(ExportError, RunError)


def test_onnx_without_tf2onnx_names_the_extra(
    small_run: LoadedRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # import tf2onnx now raises ImportError
    with pytest.raises(ExportError, match=r"pip install 'seqmask\[export\]'"):
        export(small_run, tmp_path / "out", "onnx")
    assert list(tmp_path.iterdir()) == []  # the failure left nothing


def test_failure_midway_leaves_nothing(small_run: LoadedRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from seqmask.serving import export as export_module

    def broken(*args: object) -> dict:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(export_module, "metadata", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        export(small_run, tmp_path / "new" / "parents" / "out")
    assert list(tmp_path.iterdir()) == []  # nor the parents it made


def test_stale_detector_is_a_run_error_naming_calibrate(runs: Runs, tmp_path: Path) -> None:
    run_dir, _ = runs(("crop", "post"))
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    entries = json.loads((copy / detect.DETECTOR).read_text())
    entries["best"]["checkpoint_digest"] = "0" * 64  # as if the run had been trained on since
    (copy / detect.DETECTOR).write_text(json.dumps(entries))
    with pytest.raises(RunError, match="seqmask calibrate"):
        export(load_run(copy), tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- model and loss options, untrained

# (padding, model keys, train keys): the options the trained runs above do not cover.
OPTIONS = {
    "next_step-mae": ("post", {"decoder": "repeat"}, {"target": "next_step", "error": "mae"}),
    "reverse-last_step": ("post", {"decoder": "crop", "num_layers": 2}, {"target": "reverse", "loss": "last_step"}),
    "composite-dropout": ("post", {"decoder": "remask", "dropout": 0.2, "input_noise": 0.1}, {"target": "composite"}),
    "pre-two_layers": ("pre", {"decoder": "remask", "num_layers": 2, "pooling": "max"}, {"target": "next_step"}),
    "pre-plain": ("pre", {"decoder": "remask", "bidirectional": False, "decoder_positions": 0}, {}),
}


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_rebuilt_graph_matches_seqmask_for_every_option(name: str, tmp_path: Path) -> None:
    """The traced functions (as export writes them) against the fused model seqmask trains
    and scores with, on raw values normalized by a non-trivial Normalizer."""
    padding, model_keys, train_keys = OPTIONS[name]
    cfg = config_from_dict(
        {
            "data": {"train": str(tmp_path / "data.npz"), "padding": padding},
            "model": {"units": 6, "latent_dim": 3, **model_keys},
            "train": {"batch_size": 4, **train_keys},
        }
    )
    keras.utils.set_random_seed(0)
    future = cfg.train.future_fraction if cfg.train.target == "composite" else 0.0
    model = build_autoencoder(cfg.model, 2, padding, fused=True, seed=cfg.train.seed, future_fraction=future)
    normalizer = Normalizer(np.array([3.0, -1.0]), np.array([2.0, 0.5]))
    run = LoadedRun(RunDir(tmp_path / "run"), cfg, normalizer, model, "best")
    raw = make_sequences([1, 6, 3, 9, 2, 5], seed=3)
    raw = raw.with_values(raw.values * 2.0 + np.array([3.0, -1.0], np.float32))
    seqs = normalizer.apply(raw)
    expected = score_all(make_eval_step(model, make_loss_fn(cfg)), seqs, 4, padding).per_sequence
    normalized, lengths = _padded(seqs, padding)
    expected_latent = encoder_from(model)([normalized, lengths], training=False).numpy()
    graphs = _Graphs(run, None)
    values, _ = _padded(raw, padding, extra=2, fill=1e6)
    got = graphs.function("score")(values, lengths)
    np.testing.assert_allclose(got["error"].numpy(), expected, rtol=1e-5, atol=1e-7)
    latent = graphs.function("encode")(values, lengths)["latent"].numpy()
    np.testing.assert_allclose(latent, expected_latent, rtol=1e-5, atol=1e-6)
