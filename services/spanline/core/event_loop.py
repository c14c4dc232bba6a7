"""Which asyncio event loop a serving process runs on (SPANLINE_EVENT_LOOP): uvloop when installed, the
way uvicorn's own `loop="auto"` chooses, so `spanline dev` (which starts uvicorn inside its own loop) runs
on the same loop as `spanline api`. Its transports and callbacks are C: the live fan-out's cost per send."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

EventLoopChoice = Literal["auto", "asyncio", "uvloop"]
T = TypeVar("T")


def loop_factory(choice: EventLoopChoice) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory for `asyncio.Runner` (None: the stdlib loop); `uvloop` insists on uvloop."""
    if choice == "asyncio" or (choice == "auto" and importlib.util.find_spec("uvloop") is None):
        return None
    import uvloop

    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], choice: EventLoopChoice = "auto") -> T:
    """`asyncio.run(main)` on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
        return runner.run(main)
