"""The derivations' key lists travel as one TSV string literal: organization names with quotes,
backslashes, tabs and line breaks must still select exactly their own rows."""

from __future__ import annotations

import random

from spanline.consumer.readback import totals
from spanline.store.store import Store
from tests.consumer_events import expected_totals, generate_execution, normalise_totals
from tests.store_ingest import ingest

AWKWARD_ORGS = ["o'brien", "back\\slash", "tab\there", "line\nbreak", "cr\rlf", "plain"]


async def test_awkward_organization_names_derive_their_own_spans_runs_and_rollups(store: Store) -> None:
    executions = [generate_execution(random.Random(900 + index), org=org) for index, org in enumerate(AWKWARD_ORGS)]
    for execution in executions:
        assert execution.org is not None
        await ingest(store, execution.payloads(), org=execution.org, key=execution.execution_id.encode())
    assert normalise_totals(await totals(store)) == normalise_totals(expected_totals(executions))
    per_org = await store.query("SELECT org, count() FROM executions FINAL GROUP BY org ORDER BY org")
    assert per_org == [(org, 1) for org in sorted(AWKWARD_ORGS)]
