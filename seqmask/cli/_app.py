"""The Typer app, the consoles, the one error path (`fail`) and the TensorFlow import."""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

# Typer vendors click (typer._click) and exports no public name for the base class of its
# usage errors; typer.BadParameter is one of its subclasses.
from typer._click.core import Context
from typer._click.exceptions import UsageError
from typer.core import TyperGroup

from seqmask.errors import SeqmaskDeprecationWarning

# Before any TensorFlow import: keep its C++ log lines out of the user's terminal. Its
# failures still reach the user, as Python exceptions.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# No markup on what seqmask prints: paths and ids may hold [brackets].
out = Console(markup=False, highlight=False)
err = Console(stderr=True, markup=False, highlight=False)


def fail(message: str, code: int) -> NoReturn:
    # escape(): file and column names may contain [brackets] that Rich would read as markup.
    err.print(f"[bold red]error:[/] {escape(message)}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


class _Group(TyperGroup):
    """Usage errors (a bad option value, an unknown option) get the same one-line
    `error:` form and exit code 2 as every other error, instead of Typer's panel."""

    def invoke(self, ctx: Context) -> Any:
        try:
            with warnings.catch_warnings():  # restores the previous handler afterwards
                warnings.simplefilter("always", SeqmaskDeprecationWarning)
                warnings.showwarning = _show_warning
                return super().invoke(ctx)
        except UsageError as e:
            command = e.ctx.command.name if e.ctx is not None and e.ctx.parent is not None else None
            # Typer words a bad Literal choice "Value error, 'x' is not one of ...".
            message = e.format_message().replace("Value error, ", "")
            fail(f"{message} (see 'seqmask {command + ' ' if command else ''}--help')", 2)


app = typer.Typer(
    cls=_Group,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Train, evaluate and use masked LSTM autoencoders on variable-length sequences.",
)


def _show_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    if issubclass(category, SeqmaskDeprecationWarning):
        err.print(f"[yellow]warning:[/] {escape(str(message))}", markup=True, soft_wrap=True)
    else:
        warnings._showwarnmsg_impl(warnings.WarningMessage(message, category, *args, **kwargs))  # type: ignore[attr-defined]


def import_tensorflow() -> None:
    """Imports TensorFlow with its start-up banner (printed before its logging is set up,
    so no setting silences it) sent to a file; the banner is shown only if the import fails."""
    import tempfile

    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        sys.stderr.flush()
        os.dup2(sink.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")
        except Exception:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
