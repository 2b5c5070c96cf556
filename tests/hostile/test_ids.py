"""Capabilities (docs/API.md): hold, waitlist-entry and booking ids carry 128 random bits from
the CSPRNG, and knowing everything else (show, seats, customer, other ids) gives no power
over a hold or an entry: guessed, enumerated and tampered ids all answer the same 404
and change nothing."""

from __future__ import annotations

import base64
import random
import string
from collections.abc import Iterator

import httpx
import pytest

from boxoffice.engine import ids
from boxoffice.engine.ids import BOOKING_PATTERN, ID_PATTERN, IdSigner
from boxoffice.engine.wiring import Engine
from tests.support.scene import Scene, make_scene
from tests.support.shows import ShowRef
from tests.support.state import nothing_changes

SAMPLES = 2000
ALPHABET = string.ascii_letters + string.digits + "-_"


@pytest.fixture
async def scene(client: httpx.AsyncClient, show: ShowRef) -> Scene:
    return await make_scene(client, show)


def random_bytes_of(value: str) -> bytes:
    """The random part of any id the service hands out, decoded."""
    match = ID_PATTERN.fullmatch(value)
    part = match.group(3) if match else value.split("_", 1)[1]
    return base64.urlsafe_b64decode(part + "==")


def test_ids_carry_128_random_bits() -> None:
    signer = IdSigner("s3cret")
    makers = [lambda: signer.new_hold_id(42), lambda: signer.new_entry_id(42), ids.new_booking_id,
              ids.new_payment_id]
    for make in makers:
        values = [make() for _ in range(SAMPLES)]
        assert len(set(values)) == SAMPLES
        raw = [random_bytes_of(v) for v in values]
        assert {len(r) for r in raw} == {16}, "128 bits each"
        # Every one of the 128 bit positions is set about half the time (within 5 sigma):
        # a counter, a clock or a constant in any byte fails this.
        sigma = (SAMPLES / 4) ** 0.5
        for bit in range(128):
            ones = sum((r[bit // 8] >> (bit % 8)) & 1 for r in raw)
            assert abs(ones - SAMPLES / 2) < 5 * sigma, f"bit {bit} set {ones} times in {SAMPLES}"


def test_ids_come_from_the_secrets_module(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[int] = []

    def recording_token_bytes(n: int) -> bytes:
        asked.append(n)
        return bytes(range(n))

    monkeypatch.setattr(ids.secrets, "token_bytes", recording_token_bytes)
    signer = IdSigner("s3cret")
    made = [signer.new_hold_id(7), signer.new_entry_id(7), ids.new_booking_id(), ids.new_payment_id()]
    assert asked == [16, 16, 16, 16]
    assert all(random_bytes_of(value) == bytes(range(16)) for value in made)


async def test_the_api_hands_out_well_formed_capabilities(scene: Scene) -> None:
    for value in (scene.hold_id, scene.booked_hold_id, scene.granted_hold_id):
        assert ID_PATTERN.fullmatch(value) and value[0] in "HG"
    assert ID_PATTERN.fullmatch(scene.entry_id) and scene.entry_id[0] == "W"
    assert BOOKING_PATTERN.fullmatch(scene.booking_id)


def one_character_changed(value: str) -> Iterator[str]:
    """Every position of `value` changed to another character of the id alphabet."""
    rng = random.Random(value)
    for i, old in enumerate(value):
        if old in ALPHABET:
            yield value[:i] + rng.choice(ALPHABET.replace(old, "")) + value[i + 1:]


def guesses(scene: Scene, other_show: int) -> Iterator[str]:
    """Guessed, enumerated and tampered ids, none of them a real capability."""
    real = {scene.hold_id, scene.booked_hold_id, scene.booking_id, scene.entry_id, scene.granted_hold_id,
            "G" + scene.entry_id[1:], "W" + scene.granted_hold_id[1:]}
    return (guess for guess in candidates(scene, other_show) if guess not in real)


def candidates(scene: Scene, other_show: int) -> Iterator[str]:
    rng = random.Random(9)
    show = scene.show_id
    for kind in "HWG":  # guessed: well-formed, random
        for _ in range(20):
            yield f"{kind}{show}-{''.join(rng.choices(ALPHABET, k=22))}-{''.join(rng.choices(ALPHABET, k=12))}"
    for n in range(20):  # enumerated: the ids a counter would have made
        yield f"H{show}-{'A' * 21}{ALPHABET[n]}-{'A' * 12}"
        yield f"bk_{'A' * 21}{ALPHABET[n]}"
    for real in (scene.hold_id, scene.granted_hold_id, scene.entry_id, scene.booked_hold_id, scene.booking_id):
        yield from one_character_changed(real)
        yield real[:-1]
        yield real + "A"
        yield real.swapcase()
    for real in (scene.hold_id, scene.entry_id, scene.granted_hold_id):
        body = real[1 + len(str(show)):]
        yield f"{real[0]}{other_show}{body}"  # the same token, another show
        yield f"{real[0]}0{show}{body}"  # the same show, spelled with a leading zero
        yield f"{real[0]}{show}{body}".replace(f"{show}-", f"{show}{show}-", 1)
    # Kinds swapped. W and G are one capability by design (a grant's hold id is its entry's
    # id with the letter changed, and the entry's status shows it), so W<->G is not a guess.
    yield "W" + scene.hold_id[1:]
    yield "G" + scene.hold_id[1:]
    yield "H" + scene.entry_id[1:]
    yield "H" + scene.granted_hold_id[1:]
    yield "bk_" + ID_PATTERN.fullmatch(scene.hold_id).group(3)  # type: ignore[union-attr]


async def test_guessed_enumerated_and_tampered_ids_all_answer_the_same_404(
        client: httpx.AsyncClient, ctx: Engine, scene: Scene) -> None:
    other_show = scene.show_id + 1
    assert (await client.get(f"/v1/shows/{other_show}")).status_code == 200, "swapping to a real show"
    bodies: dict[str, set[bytes]] = {}
    header_sets: set[tuple[str, ...]] = set()
    tried = 0
    async with nothing_changes(ctx, [scene.show_id]):
        for guess in guesses(scene, other_show):
            for method, path, kwargs in requests_with(guess):
                answer = await client.request(method, path, **kwargs)
                assert answer.status_code == 404, (guess, method, path, answer.status_code, answer.text)
                bodies.setdefault(f"{method} {path.split('/')[2]}", set()).add(answer.content)
                header_sets.add(tuple(sorted(k for k in answer.headers if k != "date")))
                tried += 1
    assert tried >= 900
    # Nothing learned: per resource one body, whatever was wrong with the id; one header set.
    for endpoint, seen in bodies.items():
        assert len(seen) == 1, f"{endpoint} answers differently for different guesses: {seen}"
        assert set(httpx.Response(404, content=next(iter(seen))).json()) == {"error", "message"}
    assert len(header_sets) == 1, header_sets


def requests_with(guess: str) -> list[tuple[str, str, dict[str, object]]]:
    pay = {"json": {"payment": {"method": "card", "token": "tok_ok"}}, "headers": {"Idempotency-Key": "g-1"}}
    return [("GET", f"/v1/holds/{guess}", {}), ("DELETE", f"/v1/holds/{guess}", {}),
            ("POST", f"/v1/holds/{guess}/confirm", pay), ("GET", f"/v1/waitlist/{guess}", {}),
            ("DELETE", f"/v1/waitlist/{guess}", {}), ("GET", f"/v1/waitlist/{guess}/events", {}),
            ("GET", f"/v1/bookings/{guess}", {})]


async def test_only_its_own_id_confirms_releases_or_cancels(client: httpx.AsyncClient, ctx: Engine,
                                                            scene: Scene) -> None:
    """Every other real id, used on the operations of another kind of resource, is not
    found; and knowing the show, the seats and the customer gives no handle at all."""
    real = {"hold": scene.hold_id, "booked": scene.booked_hold_id, "entry": scene.entry_id,
            "booking": scene.booking_id}
    async with nothing_changes(ctx, [scene.show_id]):
        for value in (real["entry"], real["booking"]):
            refused = await client.delete(f"/v1/holds/{value}")
            assert refused.status_code == 404, (value, refused.text)
            refused = await client.post(f"/v1/holds/{value}/confirm", headers={"Idempotency-Key": "x-1"},
                                        json={"payment": {"method": "card", "token": "tok_ok"}})
            assert refused.status_code == 404, (value, refused.text)
        for value in (real["hold"], real["booked"], real["booking"]):
            assert (await client.delete(f"/v1/waitlist/{value}")).status_code == 404
            assert (await client.get(f"/v1/waitlist/{value}")).status_code == 404
        for value in (real["hold"], real["entry"]):
            assert (await client.get(f"/v1/bookings/{value}")).status_code == 404
        # No way in by what anyone can know: show, seats, customer.
        show, seats = scene.show_id, scene.seat_ids[2:4]
        for method, path in [("DELETE", f"/v1/shows/{show}/holds"), ("DELETE", f"/v1/shows/{show}/waitlist"),
                             ("GET", f"/v1/shows/{show}/holds"), ("DELETE", f"/v1/holds/{seats[0]}"),
                             ("DELETE", "/v1/holds/bob@example.org")]:
            answer = await client.request(method, path, params={"customer": "bob@example.org"})
            assert answer.status_code in (404, 405, 422), (method, path, answer.status_code)
        taken = await client.post(f"/v1/shows/{show}/holds", json={"seats": seats, "customer": "bob@example.org"})
        assert taken.status_code == 409 and taken.json()["error"] == "seats_unavailable"
    # The rightful id works; releasing again changes nothing.
    assert (await client.delete(f"/v1/holds/{scene.hold_id}")).status_code == 204
    assert (await client.delete(f"/v1/holds/{scene.hold_id}")).status_code == 204  # idempotent: no change
    assert (await client.delete(f"/v1/waitlist/{scene.entry_id}")).status_code == 409  # granted: not waiting
