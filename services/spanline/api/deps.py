"""Annotated dependencies the routes declare (StoreDep, BusDep, OrgDep, ...)."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from spanline.api.auth import authenticate
from spanline.api.state import AppState
from spanline.bus.interface import Bus
from spanline.core.config import Settings
from spanline.store.store import Store


def get_app_state(request: Request) -> AppState:
    return cast(AppState, request.state.spanline)


AppStateDep = Annotated[AppState, Depends(get_app_state)]


def get_store(state: AppStateDep) -> Store:
    return state.store


def get_bus(state: AppStateDep) -> Bus:
    return state.bus


def get_settings(state: AppStateDep) -> Settings:
    return state.settings


async def get_org(request: Request, state: AppStateDep) -> str:
    return await authenticate(request, state.store, state.key_cache)


StoreDep = Annotated[Store, Depends(get_store)]
BusDep = Annotated[Bus, Depends(get_bus)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
OrgDep = Annotated[str, Depends(get_org)]
