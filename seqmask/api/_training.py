"""`seqmask.train` and `seqmask.load`: a config from a file, a dict or a `Config`, trained into a
run directory, and a run directory loaded as a `Run`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from seqmask.config import Config, config_from_dict, config_to_dict, load_config
from seqmask.errors import ConfigError
from seqmask.run.directory import Checkpoint
from seqmask.training.progress import Reporter

if TYPE_CHECKING:
    pass


from seqmask.api._run import Run


def train(
    config: str | Path | Mapping[str, Any] | Config | None = None,
    run_dir: str | Path | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    sets: Sequence[str] = (),
    reporter: Reporter | None = None,
    should_stop: Callable[[], bool] | None = None,
    **overrides: Any,
) -> Run:
    """Trains a model and returns the run (its best checkpoint).

    Args:
        config: a YAML file, a dict shaped like one, or a `Config`. None with `resume`.
        run_dir: where the run is written; default `runs/<config file name>` for a file
            (a dict or a `Config` needs one).
        resume: continue `run_dir` from its last checkpoint, with its saved config.
        overwrite: replace an existing run directory.
        sets: overrides as on the command line, `"train.learning_rate=0.01"`.
        reporter: receives progress (`seqmask.training.progress.Reporter`); default: none.
        should_stop: polled after every batch; True checkpoints and raises `Interrupted`.
        **overrides: config keys by their `--set` path, with `__` for the dot
            (`train__epochs=5`), or `**{"train.epochs": 5}`; values are Python values.

    Returns:
        The trained `Run`, loaded on first use.

    Raises:
        ConfigError, DataError, RunError, DeviceError: what the CLI reports for the same input.
    """
    all_sets = [*sets, *override_texts(overrides)]
    cfg, run_dir = _config_and_run_dir(config, run_dir, resume, overwrite, all_sets)
    from seqmask.training.loop import train as run_training  # TensorFlow: after the config's checks

    metrics = run_training(
        cfg,
        Path(run_dir),
        resume=resume,
        overwrite=overwrite,
        overrides=all_sets if resume else (),
        reporter=reporter,
        should_stop=should_stop,
    )
    run = Run(Path(run_dir), "best")
    # What this process trained: a multi-worker run's other workers write no metrics.json.
    run._trained_metrics = metrics
    return run


def _config_and_run_dir(
    config: str | Path | Mapping[str, Any] | Config | None,
    run_dir: str | Path | None,
    resume: bool,
    overwrite: bool,
    sets: Sequence[str],
) -> tuple[Config | None, Path]:
    """`train`'s arguments checked: the config to start from (None: resume with the saved
    one) and the run directory."""
    if resume:
        if run_dir is None:
            raise ConfigError("resume needs the run directory: seqmask.train(run_dir=..., resume=True)")
        if config is not None or overwrite:
            raise ConfigError(
                "resume continues a run with its saved config: do not combine it with a config or overwrite"
            )
        return None, Path(run_dir)
    if config is None:
        raise ConfigError("give a config (a YAML file, a dict or a Config) to start a run, or run_dir with resume=True")
    cfg = make_config(config, sets)
    if run_dir is None:
        if not isinstance(config, str | Path):
            raise ConfigError("a config given as a dict or a Config needs run_dir: where to write the run")
        run_dir = Path("runs") / Path(config).stem
    return cfg, Path(run_dir)


def make_config(config: str | Path | Mapping[str, Any] | Config, sets: Sequence[str] = ()) -> Config:
    """A checked `Config` from a file, a dict or a `Config`, with `--set`-style `sets` applied.
    Relative paths in a dict resolve against the current directory."""
    if isinstance(config, str | Path):
        return load_config(config, sets)
    if isinstance(config, Config):
        if not sets:
            return config
        config = config_to_dict(config)
    if not isinstance(config, Mapping):
        raise ConfigError(f"a config is a YAML file, a dict or a Config, got {type(config).__name__}")
    from seqmask.config import apply_overrides

    return config_from_dict(apply_overrides(dict(config), sets))


def override_texts(overrides: Mapping[str, Any]) -> list[str]:
    """`{"train__epochs": 5}` -> `["train.epochs=5"]`: Python values written as YAML, so they
    are parsed and checked exactly as `--set` values are."""
    texts = []
    for key, value in overrides.items():
        path = key.replace("__", ".", 1) if "." not in key else key
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        text = yaml.safe_dump(value, default_flow_style=True, width=10**9).strip()
        texts.append(f"{path}={text.removesuffix('...').strip()}")
    return texts


def load(run_dir: str | Path, checkpoint: Checkpoint = "best") -> Run:
    """The run in `run_dir` with its `checkpoint` ("best" or "last") loaded.

    Raises:
        RunError: not a run directory, no such checkpoint, or a checkpoint that cannot be read.
    """
    run = Run(Path(run_dir), checkpoint)
    run.loaded  # noqa: B018  (load now: a broken run fails here, not at first use)
    return run
