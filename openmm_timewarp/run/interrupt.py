"""Stopping a run cleanly: SIGINT (Ctrl-C) and SIGTERM ask it to stop after its current step.

A run that is asked to stop writes everything it has (frames, log, statistics, a checkpoint) and
returns a result marked as interrupted, instead of losing the run to a ``KeyboardInterrupt``.
"""
from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Dict, Optional

__all__ = ["StopRequest"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Within ``with StopRequest() as stop:``, SIGINT and SIGTERM set ``stop.requested`` (the signal's name).

    A second SIGINT raises ``KeyboardInterrupt`` as usual, for a user who will not wait for the step.
    Outside the main thread Python cannot handle signals, and a signal the process ignores (as
    ``nohup`` and shells' background jobs do) stays ignored; there signals act as they would
    without this object.
    """

    def __init__(self) -> None:
        self.requested: Optional[str] = None
        self._previous: Dict[int, object] = {}

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in _SIGNALS:
                # A signal ignored on purpose (nohup, a shell's background job) stays ignored.
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
