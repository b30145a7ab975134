"""Batch sizes and batches: `train.batch_size: auto`, and the batches of an epoch."""

import numpy as np
import pytest

from seqmask.data.batching import batch_size_for, inference_batch_size, inference_batches, training_batches


@pytest.mark.parametrize(
    ("num_sequences", "expected"),
    [(1, 4), (29, 4), (40, 4), (63, 4), (64, 8), (80, 8), (160, 16), (255, 16), (256, 32), (100_000, 32)],
)
def test_auto_batch_size_is_a_power_of_two_near_an_eighth_of_the_data(num_sequences: int, expected: int) -> None:
    assert batch_size_for("auto", num_sequences) == expected


def test_a_fixed_batch_size_is_kept() -> None:
    assert batch_size_for(7, 10) == 7 and batch_size_for(64, 1_000_000) == 64
    assert inference_batch_size(7) == 7 and inference_batch_size("auto") == 32


def test_auto_gives_at_least_eight_updates_an_epoch_until_its_floor() -> None:
    for n in range(32, 2000, 7):
        size = batch_size_for("auto", n)
        batches = training_batches(np.ones(n, np.int64), size, "bucket", 0, 1)
        assert len(batches) >= min(8, -(-n // 4)) and all(len(b) <= size for b in batches)


def test_every_sequence_once_per_epoch_and_the_same_batches_for_the_same_seed_and_epoch() -> None:
    lengths = np.random.default_rng(0).integers(1, 20, size=37)
    first = training_batches(lengths, 8, "bucket", seed=3, epoch=2)
    again = training_batches(lengths, 8, "bucket", seed=3, epoch=2)
    assert sorted(np.concatenate(first).tolist()) == list(range(37))
    assert all((a == b).all() for a, b in zip(first, again, strict=True))
    assert sorted(np.concatenate(inference_batches(lengths, 8)).tolist()) == list(range(37))
