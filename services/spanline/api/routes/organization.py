"""Who the caller is: lets a client check its key and see the organization it is scoped to."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from spanline.api.deps import OrgDep

router = APIRouter(prefix="/v1", tags=["organization"])


class Organization(BaseModel):
    id: str


@router.get("/organization", response_model=Organization, responses={401: {"description": "no or bad key"}})
async def current_organization(org: OrgDep) -> Organization:
    return Organization(id=org)
