"""The API process's live feed of `spanline.events`, fanned out to SSE subscribers (see hub.py)."""

from spanline.api.live.frames import LiveEvent, sse_frame
from spanline.api.live.hub import LiveHub
from spanline.api.live.shared_reads import SharedReads
from spanline.api.live.subscription import Subscription

__all__ = ["LiveEvent", "LiveHub", "SharedReads", "Subscription", "sse_frame"]
