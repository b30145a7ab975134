"""Ctrl-C and SIGTERM while training: finish the batch, checkpoint, exit 130 or 143."""

from __future__ import annotations

import signal
from types import FrameType, TracebackType

# SIGTERM is what schedulers and Kubernetes send before they kill a process: 128 + 15 is
# the code of a process that SIGTERM ended, and the range 128-255 is the one Kubeflow's
# `restartPolicy: ExitCode` treats as retryable. Ctrl-C keeps the shell's 130.
PREEMPTED = 143
INTERRUPTED = 130


class Interrupt:
    """First Ctrl-C or SIGTERM: finish the batch, checkpoint, exit 130 (Ctrl-C) or 143
    (SIGTERM: preempted, resume me). A second one stops at once."""

    def __init__(self) -> None:
        self.requested = False
        self.signum: int | None = None

    def __enter__(self) -> Interrupt:
        self.previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested, self.signum = True, signum

    @property
    def exit_code(self) -> int:
        return PREEMPTED if self.signum == signal.SIGTERM else INTERRUPTED

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)

    def __call__(self) -> bool:
        return self.requested
