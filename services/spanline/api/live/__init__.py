"""The API process's live feed of `spanline.events`, fanned out to SSE subscribers (see hub.py)."""

from spanline.api.live.hub import LiveEvent, LiveHub, SharedReads, Subscription, sse_frame

__all__ = ["LiveEvent", "LiveHub", "SharedReads", "Subscription", "sse_frame"]
