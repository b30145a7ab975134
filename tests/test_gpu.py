"""The GPU path (cuDNN LSTMs): skipped on machines without a GPU, except the check that
asking for one there fails clearly."""

import numpy as np
import pytest
import yaml

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

    from seqmask.training import train

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    with pytest.raises(DeviceError, match="'train.device' is 'gpu' but TensorFlow sees no GPU"):
        train(tiny_config(tmp_path, "gpu"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.gpu
def test_gpu_training_reports_the_exact_masked_loss(tmp_path):
    """On the GPU (cuDNN kernels) evaluate's figure still equals plain numpy."""
    from seqmask.data import pad
    from seqmask.evaluate import evaluate, load_run
    from seqmask.training import train

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
