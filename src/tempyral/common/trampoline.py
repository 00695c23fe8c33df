"""Recursion over client input without the interpreter's stack.

A list filter nests as deep as its client writes it, and Python's call stack ends at about 1000
frames. Functions that recurse over such input are written as generators instead: `x = yield
self.f(...)` calls f and receives its result, and `run` keeps the pending calls on a list.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, TypeAlias, TypeVar

T = TypeVar("T")
Step: TypeAlias = Generator[Any, Any, T]  # yields the calls it makes, returns its result


def run(step: Step[T]) -> T:
    """The result of a generator-recursive call, however deep its calls go."""
    calls: list[Step[Any]] = [step]
    result: Any = None
    while True:
        try:
            callee = calls[-1].send(result)
        except StopIteration as done:
            calls.pop()
            if not calls:
                return done.value  # type: ignore[no-any-return]
            result = done.value
            continue
        calls.append(callee)
        result = None
