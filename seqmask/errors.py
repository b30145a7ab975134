"""The errors a user can cause. `cli.py` turns each into one message and an exit code."""

from pathlib import Path


class SeqmaskError(Exception):
    """Base of every error that is the user's to fix (bad config, bad data, bad run dir)."""

    exit_code = 1


class ConfigError(SeqmaskError):
    """A config key, value or combination is wrong. The message names the key path."""

    exit_code = 2


class DataError(SeqmaskError):
    """A data file cannot be used. The message names the file and the line/row/sequence."""

    exit_code = 1


class RunError(SeqmaskError):
    """A run directory is missing, not a run, incompatible, or cannot be written."""

    exit_code = 1


class DeviceError(SeqmaskError):
    """The machine cannot run what the config asks for (`train.device: gpu` and no GPU).

    Exit code 1, like data and run errors: the config is valid, this machine is not the
    one it was written for; code 2 stays for configs and command lines that are wrong.
    """

    exit_code = 1


class SeqmaskDeprecationWarning(FutureWarning):
    """A config uses a name that still works but will go (an old key name, for instance).

    A FutureWarning, not a DeprecationWarning, because it is meant for the user, who
    wrote the config: Python shows FutureWarnings by default. The message names the
    new spelling; `cli.py` prints it as one "warning: ..." line.
    """


class Interrupted(Exception):
    """Training stopped on request (Ctrl-C) after writing a checkpoint at this position."""

    def __init__(self, run_dir: Path, epoch: int, batch: int) -> None:
        super().__init__(f"interrupted at epoch {epoch}, batch {batch}")
        self.run_dir, self.epoch, self.batch = run_dir, epoch, batch
