"""Schema fuzzing: schemathesis reads the live GET /openapi.json of a real
server (uvicorn, on the session's Redis and PostgreSQL) and throws valid and invalid
requests at every operation. No answer may be a 500; every answer must match its
documented status, content type, headers and schema; every error has the contract's
{error, message} shape; invalid requests change nothing at all.

Bounded: MAX_EXAMPLES per operation and mode, no shrinking, derandomized (the same
cases every run; BOXOFFICE_FUZZ_SEED=<n> explores others)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    missing_required_header,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from boxoffice.engine.wiring import open_engine
from tests.support.live import LiveServer, serve
from tests.support.services import RedisServer
from tests.support.state import State, difference, snapshot

MAX_EXAMPLES = 40
MAX_EXAMPLES_WITH_REAL_IDS = 5
# Streams never end: their error answers are tested in tests/hostile/test_web.py. The admin
# routes answer 404 to everything while BOXOFFICE_ADMIN_TOKEN is unset (as here): tests/api/test_admin.py
# tests them with a token.
EXCLUDED = r"/events$|^/v1/admin/"
# A schema-valid request may still be refused for a fact no schema can know: a seat
# label that is not in this show's hall, a price category this show does not sell.
SEMANTIC_FIELDS = {"seats", "category"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection, missing_required_header]


@pytest.fixture(scope="module")
def live(redis_server: RedisServer, database_url: str) -> Iterator[LiveServer]:
    from tests.support.backends import base_settings

    with serve(base_settings("real", redis_server.url, database_url, "")) as server:
        yield server


def contract_error_shape(response: requests.Response) -> None:
    """Every non-2xx answer is {"error": code, "message": sentence, ...}, never a trace."""
    if response.status_code < 400:
        return
    body = response.json()
    assert isinstance(body.get("error"), str) and body["error"], body
    assert isinstance(body.get("message"), str) and body["message"], body
    assert "Traceback" not in response.text and 'File "' not in response.text


def positive_data_is_accepted(case: schemathesis.Case, response: requests.Response) -> None:
    """A request valid by the schema is never refused as invalid, but for a hall fact."""
    if case.meta is None or case.meta.generation.mode is not GenerationMode.POSITIVE:
        return
    if response.status_code == 422:
        fields = {d["field"].split("[")[0] for d in response.json().get("details", [])}
        assert fields <= SEMANTIC_FIELDS, f"valid request {case.body!r} refused: {response.json()}"


def fuzz(operation: Any, mode: GenerationMode, live: LiveServer, session: requests.Session,
         examples: int = MAX_EXAMPLES, **fixed: Any) -> str | None:
    """Runs one operation in one mode; the failure report, or None."""

    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck), derandomize="BOXOFFICE_FUZZ_SEED" not in os.environ)
    def run(case: schemathesis.Case) -> None:
        response = case.call(base_url=live.url, session=session, timeout=10)
        case.validate_response(response, checks=CHECKS)
        contract_error_shape(response)
        positive_data_is_accepted(case, response)

    if "BOXOFFICE_FUZZ_SEED" in os.environ:
        run = seed(int(os.environ["BOXOFFICE_FUZZ_SEED"]))(run)
    try:
        run()
    except Unsatisfiable:
        # Nothing to make invalid: an operation without parameters or body.
        assert mode is GenerationMode.NEGATIVE and not operation.path_parameters and not operation.body
    except Exception as failure:
        return f"{operation.label} [{mode.value}]: {failure}"
    return None


def state_of(live: LiveServer) -> State:
    async def take() -> State:
        ctx = await open_engine(live.settings, background=False)
        try:
            return await snapshot(ctx)
        finally:
            await ctx.close()

    return asyncio.run(take())


def operations(live: LiveServer) -> list[Any]:
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json").exclude(path_regex=EXCLUDED)
    return [result.ok() for result in schema.get_all_operations()]


def test_invalid_requests_are_refused_as_documented_and_change_nothing(live: LiveServer) -> None:
    found = operations(live)
    assert len(found) >= 15, "every operation of docs/API.md is fuzzed"
    before = state_of(live)
    with requests.Session() as session:
        failures = [f for op in found if (f := fuzz(op, GenerationMode.NEGATIVE, live, session))]
    assert not failures, "\n\n".join(failures)
    assert not difference(before, state_of(live)), difference(before, state_of(live))
    assert "Traceback" not in live.log(), live.log()[-3000:]


def test_valid_requests_are_answered_as_documented(live: LiveServer) -> None:
    with requests.Session() as session:
        failures = [f for op in operations(live) if (f := fuzz(op, GenerationMode.POSITIVE, live, session))]
    assert not failures, "\n\n".join(failures)
    assert "Traceback" not in live.log(), live.log()[-3000:]


def test_operations_on_real_holds_entries_and_bookings_answer_as_documented(live: LiveServer) -> None:
    """Random ids only ever meet 404: here the id parameters are real ones (a hold active,
    released, confirmed and granted, a booking, a granted waitlist entry), so the
    200, 204, 402, 409 and 410 answers are held to the document too."""
    with requests.Session() as session:
        real = make_real_resources(live, session)
        failures = []
        for operation in operations(live):
            for name in (p.name for p in operation.path_parameters):
                for value in real.get(name, []):
                    failure = fuzz(operation, GenerationMode.POSITIVE, live, session, MAX_EXAMPLES_WITH_REAL_IDS,
                                   path_parameters={name: value})
                    if failure:
                        failures.append(failure)
    assert not failures, "\n\n".join(failures)
    assert "Traceback" not in live.log(), live.log()[-3000:]


def make_real_resources(live: LiveServer, session: requests.Session) -> dict[str, list[str]]:
    """Holds, a booking and waitlist entries on a show of the demo catalog."""
    url = live.url
    movies = session.get(f"{url}/v1/cities/1/movies", timeout=5).json()["movies"]
    cinemas = session.get(f"{url}/v1/cities/1/movies/{movies[0]['id']}/shows", timeout=5).json()["cinemas"]
    show_id = cinemas[0]["shows"][-1]["id"]
    seats = [s["id"] for s in session.get(f"{url}/v1/shows/{show_id}/seats", timeout=5).json()["seats"]]

    def created(answer: requests.Response) -> dict[str, Any]:
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    def hold(seat_ids: list[str], customer: str) -> str:
        body = {"seats": seat_ids, "customer": customer}
        return str(created(session.post(f"{url}/v1/shows/{show_id}/holds", json=body, timeout=5))["hold_id"])

    def join(customer: str) -> str:
        body = {"count": 1, "customer": customer}
        return str(created(session.post(f"{url}/v1/shows/{show_id}/waitlist", json=body, timeout=5))["entry_id"])

    confirmed = hold(seats[:2], "fuzz-buyer@example.org")
    booking = created(session.post(f"{url}/v1/holds/{confirmed}/confirm", headers={"Idempotency-Key": "fuzz-1"},
                                   json={"payment": {"method": "card", "token": "tok_ok"}}, timeout=10))
    released = hold(seats[2:3], "fuzz-releaser@example.org")
    assert session.delete(f"{url}/v1/holds/{released}", timeout=5).status_code == 204
    # Seats are free, so the entry is granted at once: its status carries a whole hold.
    granted = join("fuzz-waiter@example.org")
    grant = session.get(f"{url}/v1/waitlist/{granted}", timeout=5).json()
    assert grant["status"] == "granted", grant
    return {"hold_id": [hold(seats[3:5], "fuzz-holder@example.org"), released, confirmed, grant["hold"]["hold_id"]],
            "booking_id": [str(booking["booking_id"])],
            "entry_id": [granted],
            "show_id": [str(show_id)]}


def test_the_live_document_describes_every_route(live: LiveServer) -> None:
    from boxoffice.api.app import routes, v1_routes
    from boxoffice.api.openapi import OPENAPI

    assert requests.get(f"{live.url}/openapi.json", timeout=5).json() == OPENAPI
    documented = {(path, method.upper()) for path, item in OPENAPI["paths"].items() for method in item}
    served = {(route.path, method) for route in [*v1_routes, *routes] if getattr(route, "methods", None)
              for method in route.methods if method != "HEAD"}
    assert served == documented, f"not documented: {served - documented}; not served: {documented - served}"


