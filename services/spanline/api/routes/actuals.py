"""Vellum's `POST /v1/submit-workflow-execution-actuals`: feedback on a run's outputs, by execution_id or
by the external_id given at execution. Stored per organization (`execution_actuals`), one row per output
(output_key, else output_id; a later submission replaces it); shown as `actuals` with the execution
(detail, Arcee run, Interactly run) and counted by the usage query (`actuals`, `quality_avg`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field, model_validator

from spanline.api.contract_types import UtcTimestamp
from spanline.api.deps import AppStateDep, OrgDep
from spanline.api.state import AppState
from spanline.store import execution_reads as reads
from spanline.store.execution_labels import Actual, execution_of_external_id, save_actuals

router = APIRouter(prefix="/v1", tags=["actuals"])

OutputType = Literal["STRING", "NUMBER", "JSON", "CHAT_HISTORY", "ARRAY", "FUNCTION_CALL", "ERROR", "IMAGE", "AUDIO"]


class ActualRequest(BaseModel):
    output_id: str | None = None
    output_key: str | None = None
    output_type: OutputType = "STRING"
    quality: float | None = Field(default=None, ge=0, le=1)
    desired_output_value: Any = None
    metadata: dict[str, Any] | None = None
    timestamp: float | None = Field(
        default=None,
        ge=0,
        le=10_413_791_999,
        description="seconds since the epoch (to 2299, as ClickHouse keeps); unset: when received",
    )

    @model_validator(mode="after")
    def _names_an_output(self) -> ActualRequest:
        if not (self.output_id or self.output_key):
            raise ValueError("give output_id or output_key")
        return self

    def stored(self, received: datetime) -> Actual:
        moment = datetime.fromtimestamp(self.timestamp, UTC) if self.timestamp is not None else received
        return Actual(
            output=self.output_key or str(self.output_id),
            output_id=self.output_id or "",
            output_key=self.output_key or "",
            output_type=self.output_type,
            quality=self.quality,
            desired_output_value=self.desired_output_value,
            metadata=self.metadata,
            timestamp=moment,
        )


class SubmitActualsRequest(BaseModel):
    actuals: list[ActualRequest] = Field(min_length=1, max_length=1000)
    execution_id: UUID | None = None
    external_id: str | None = None

    @model_validator(mode="after")
    def _names_a_run(self) -> SubmitActualsRequest:
        if (self.execution_id is None) == (self.external_id is None):
            raise ValueError("give execution_id or external_id (one of them)")
        return self


class ActualView(BaseModel):
    """An actual as the API shows it with its execution (a spanline field: `actuals`)."""

    output_id: str | None
    output_key: str | None
    output_type: str
    quality: float | None
    desired_output_value: Any
    metadata: dict[str, Any] | None
    timestamp: UtcTimestamp


class SubmitActualsResponse(BaseModel):
    execution_id: str
    count: int


def actual_view(actual: Actual) -> ActualView:
    return ActualView(
        output_id=actual.output_id or None,
        output_key=actual.output_key or None,
        output_type=actual.output_type,
        quality=actual.quality,
        desired_output_value=actual.desired_output_value,
        metadata=actual.metadata,
        timestamp=actual.timestamp,
    )


async def _execution(state: AppState, org: str, body: SubmitActualsRequest) -> UUID:
    if body.external_id is not None:
        found = await execution_of_external_id(state.store, org, body.external_id)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no execution has external_id {body.external_id!r}")
        return found
    assert body.execution_id is not None
    requested_here = state.recent_requests.get(body.execution_id) == org
    if not requested_here and await reads.execution(state.store, org, body.execution_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"execution {body.execution_id} not found")
    return body.execution_id


@router.post(
    "/submit-workflow-execution-actuals",
    response_model=SubmitActualsResponse,
    responses={404: {"description": "unknown execution or external_id, or another organization's"}},
)
async def submit_actuals(body: SubmitActualsRequest, org: OrgDep, state: AppStateDep) -> SubmitActualsResponse:
    execution_id = await _execution(state, org, body)
    received = datetime.now(UTC)
    await save_actuals(state.store, org, execution_id, [actual.stored(received) for actual in body.actuals])
    return SubmitActualsResponse(execution_id=str(execution_id), count=len(body.actuals))
