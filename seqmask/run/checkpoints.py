"""Checkpoints: one `.keras` file holding the model, the optimizer state and the training
position, written atomically.

The training position (epoch, batch, early-stopping counters, history so far) is stored as
an extra member, `seqmask_state.json`, of the `.keras` zip archive, so weights and position
can never come from two different moments: both are renamed into place together.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

import seqmask.model.fused_lstm  # noqa: F401  (registers the custom layers before any load)
import seqmask.model.layers  # noqa: F401
from seqmask.atomic import atomic_path
from seqmask.errors import RunError

STATE_MEMBER = "seqmask_state.json"


def save_checkpoint(model: keras.Model, path: Path, state: dict[str, Any]) -> None:
    """`model` (with its optimizer, if compiled) and the JSON-able `state`, in one file."""
    with atomic_path(path) as tmp:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(STATE_MEMBER, json.dumps(state))


def read_state(path: Path) -> dict[str, Any]:
    """The training position alone, without building the model (cheap)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read(STATE_MEMBER)) if STATE_MEMBER in archive.namelist() else {}
    except FileNotFoundError as e:
        raise RunError(f"checkpoint {path} does not exist") from e
    except Exception as e:  # a truncated or foreign file
        raise RunError(f"checkpoint {path} cannot be loaded (truncated or not a seqmask checkpoint): {e}") from e


def load_checkpoint(path: Path, compile: bool = False) -> tuple[keras.Model, dict[str, Any]]:
    """(model, state) from a checkpoint; `compile=True` also restores the optimizer."""
    state = read_state(path)
    try:
        model = keras.models.load_model(path, compile=compile, safe_mode=True)
    except tf.errors.OpError:
        raise  # a collective of a multi-worker run failed (variables are broadcast): not the file
    except Exception as e:  # a truncated or foreign file fails in zipfile, h5py or Keras
        raise RunError(f"checkpoint {path} cannot be loaded (truncated or not a seqmask checkpoint): {e}") from e
    return model, state
