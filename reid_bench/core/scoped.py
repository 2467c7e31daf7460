"""A value that holds for the duration of a ``with`` block (a context variable with a
context-managed setter): the training loop's settings, the speed switches, the shakedown's step
limit, the checkpoint identity, the weights overrides, the training history.

One helper for them all, so each is set, restored on exit (also on an exception) and read the
same way; context variables keep concurrent threads and tasks apart.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Scoped(Generic[T]):
    """``get()`` is ``default`` outside every ``use`` block and the innermost block's value
    inside one."""

    def __init__(self, name: str, default: T):
        self._var: contextvars.ContextVar[T] = contextvars.ContextVar(name, default=default)

    def get(self) -> T:
        return self._var.get()

    @contextlib.contextmanager
    def use(self, value: T) -> Iterator[T]:
        """Make ``value`` current inside the block; the previous value is back after it."""
        token = self._var.set(value)
        try:
            yield value
        finally:
            self._var.reset(token)
