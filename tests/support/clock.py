"""A clock the test moves by hand, for anything that takes `clock=`."""

from __future__ import annotations


class FakeClock:
    """Stands still until the test advances it; call it for the time."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
