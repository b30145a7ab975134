"""seqmask.run.state: the training position a checkpoint carries, old checkpoints included."""

import json
import zipfile

from helpers import FIXTURES

from seqmask.run.checkpoints import STATE_MEMBER
from seqmask.run.state import EpochRow, TrainState

FIXTURE = FIXTURES / "run_before_lengths"


def test_a_checkpoint_written_before_the_typed_state_loads():
    """The fixture's last.keras was written when the state was a dict and history rows
    said `real_steps`; it reads as a TrainState with every figure where it was."""
    with zipfile.ZipFile(FIXTURE / "checkpoints" / "last.keras") as archive:
        raw = json.loads(archive.read(STATE_MEMBER))
    state = TrainState.from_dict(raw)
    assert (state.epoch, state.batch, state.best_epoch) == (raw["epoch"], 0, raw["best_epoch"])
    assert state.best_loss == raw["best_loss"] and state.finished == raw["finished"]
    assert [row.train_real_steps for row in state.history] == [row["real_steps"] for row in raw["history"]]
    assert state.best_row().val_loss == raw["best_loss"]


def test_round_trip_through_json():
    state = TrainState(epoch=3, batch=2, epoch_sum=1.5, epoch_count=3.0, best_loss=0.25, best_epoch=2)
    state.history.append(
        EpochRow(epoch=1, loss=0.5, val_loss=0.4, seconds=1.0, learning_rate=0.01, train_real_steps=12)
    )
    assert TrainState.from_dict(json.loads(json.dumps(state.to_dict()))) == state


def test_batches_add_up_to_the_exact_epoch_mean():
    state = TrainState()
    state.add_batch(total=3.0, count=2.0, hits=0.0, seconds=0.1)  # two steps, error sum 3
    state.add_batch(total=1.0, count=6.0, hits=0.0, seconds=0.2)  # six steps, error sum 1
    assert state.epoch_loss == 4.0 / 8.0 and state.batch == 2
    state.next_epoch()
    assert (state.epoch, state.batch, state.epoch_sum, state.epoch_count) == (2, 0, 0.0, 0.0)
