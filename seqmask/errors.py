"""The errors a user can cause. `cli.py` turns each into one message and an exit code."""


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


class Interrupted(Exception):
    """Training stopped on request (Ctrl-C) after writing a checkpoint at this position."""

    def __init__(self, run_dir, epoch, batch):
        super().__init__(f"interrupted at epoch {epoch}, batch {batch}")
        self.run_dir, self.epoch, self.batch = run_dir, epoch, batch
