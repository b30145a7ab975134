"""The command line: `seqmask train | evaluate | encode | detect | calibrate | report | export`.

The only module that prints or exits. Errors the user can fix (`SeqmaskError`) become one
message on stderr and an exit code: 2 for config and usage errors, 1 for data, run and
device errors, 130 for Ctrl-C, 143 for SIGTERM (preempted: checkpoint written, resume it).
Every command takes the run directory as its first argument. TensorFlow is imported inside
the commands that need it, so `--help` and config errors answer at once.

Modules: ``_app`` (the Typer app, its one error path and the consoles), ``_interrupt`` (Ctrl-C
and SIGTERM during training), ``_reporters`` (training progress lines and bar), ``_train``
(the train command) and ``_commands`` (the commands that use a trained run). The long
signatures of the commands are Typer's way of declaring options: they are the exception to
the 60-line rule the rest of seqmask keeps.

May import anything in seqmask; nothing in seqmask imports it.
"""

from __future__ import annotations

from seqmask.cli import _commands, _train  # noqa: F401  (registers the commands on the app)
from seqmask.cli._app import app
from seqmask.cli._reporters import PlainReporter, RichReporter

__all__ = ["PlainReporter", "RichReporter", "app", "main"]


def main() -> None:
    app()
