"""Executions this API process requested recently: their status is PENDING until the consumer has
stored their first event. Bounded, oldest forgotten first."""

from __future__ import annotations

from collections import OrderedDict
from uuid import UUID


class RecentRequests:
    def __init__(self, capacity: int = 10_000) -> None:
        self._capacity = capacity
        self._orgs: OrderedDict[UUID, str] = OrderedDict()

    def add(self, execution_id: UUID, org: str) -> None:
        self._orgs[execution_id] = org
        self._orgs.move_to_end(execution_id)
        while len(self._orgs) > self._capacity:
            self._orgs.popitem(last=False)

    def get(self, execution_id: UUID) -> str | None:
        return self._orgs.get(execution_id)
