"""The GPU path (cuDNN LSTMs, and `mirrored` over the GPUs): skipped on machines without a
GPU, except the check that asking for one there fails clearly."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml
from helpers import read_history, write_run_config

from seqmask.config import load_config
from seqmask.errors import DeviceError


def tiny_config(tmp_path, device):
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 20, 60)
    np.savez(tmp_path / "d.npz", values=rng.normal(size=(lengths.sum(), 3)).astype(np.float32), lengths=lengths)
    cfg = {
        "data": {"train": "d.npz"},
        "model": {"units": 8, "latent_dim": 4},
        "train": {"epochs": 2, "batch_size": 8, "device": device},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    return load_config(tmp_path / "c.yaml")


def test_device_gpu_without_a_gpu_is_a_clear_error(tmp_path):
    import tensorflow as tf

    from seqmask.training.loop import train

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    with pytest.raises(DeviceError, match="'train.device' is 'gpu' but TensorFlow sees no GPU"):
        train(tiny_config(tmp_path, "gpu"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.gpu
def test_gpu_training_reports_the_exact_masked_loss(tmp_path):
    """On the GPU (cuDNN kernels) evaluate's figure still equals plain numpy."""
    from seqmask.analysis.evaluate import evaluate
    from seqmask.data import pad
    from seqmask.run.loaded import load_run
    from seqmask.training.loop import train

    metrics = train(tiny_config(tmp_path, "gpu"), tmp_path / "run")
    assert metrics["device"].startswith("gpu")
    run = load_run(tmp_path / "run", "best")
    result = evaluate(run)
    np.testing.assert_allclose(result.loss, metrics["best_val_loss"], rtol=1e-5)
    data = result.data
    errors = []
    for i in range(len(data)):
        x = pad(data, [i], int(data.lengths[i]), "post")
        y = np.asarray(run.model([x, data.lengths[i : i + 1].astype(np.int32)]))
        errors.append(((y - x) ** 2).mean(axis=2).ravel())
    np.testing.assert_allclose(result.loss, np.concatenate(errors).mean(), rtol=1e-4)


def _gpus():
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def _train_gpu(run, config, *sets):
    args = [sys.executable, "-m", "seqmask", "train", str(run), "--config", str(config), "--quiet"]
    for s in ("train.device=gpu", *sets):
        args += ["--set", s]
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((run / "metrics.json").read_text())


def _same_run(a, b, tol):
    for x, y in zip(read_history(a), read_history(b), strict=True):
        for key in x:
            assert x[key] == pytest.approx(y[key], rel=tol, abs=tol), key
    for x, y in zip(_weights(a), _weights(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=tol, atol=tol)


def _weights(run):
    from seqmask.run.checkpoints import load_checkpoint

    return load_checkpoint(run / "checkpoints" / "last.keras")[0].get_weights()


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.parametrize("replicas", [1, 2])
def test_mirrored_on_gpus_matches_one_process(tmp_path, replicas):
    """`mirrored` over `replicas` GPUs (cuDNN) against one process on one GPU, same global
    batch. cuDNN's sums are not bit-reproducible across batch splits, hence 1e-4, not 1e-5."""
    if _gpus() < replicas:
        pytest.skip(f"needs {replicas} GPUs, this machine has {_gpus()}")
    config = write_run_config(tmp_path, num_sequences=203, epochs=3, batch_size=7, clip_norm=0.05)
    _train_gpu(tmp_path / "one", config, "train.distribute=none")
    metrics = _train_gpu(tmp_path / "mirrored", config, "train.distribute=mirrored", f"train.replicas={replicas}")
    assert metrics["distribute"] == {"mode": "mirrored", "replicas": replicas, "workers": 1}
    _same_run(tmp_path / "mirrored", tmp_path / "one", 1e-4)
