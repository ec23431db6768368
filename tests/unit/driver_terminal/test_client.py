"""ApiClient over httpx.MockTransport: typed answers, typed errors, tokens, bounded retries that keep
the Idempotency-Key."""

from __future__ import annotations

import base64
from datetime import timedelta

import httpx
import jwt
import pytest

from driver_terminal.client import (
    ApiClient,
    ApiError,
    ApiUnreachable,
    CardProof,
    NotSignedIn,
    RetryPolicy,
    Ride,
    RideStatus,
    TerminalCredentials,
    UnexpectedResponse,
    api_root,
)
from tests.unit.driver_terminal.fakes import (
    API_URL,
    FakeApi,
    MovableClock,
    api_client,
    body_of,
    challenge_json,
    enrolment_json,
    problem,
    ride_json,
    terminal_key,
    token_json,
)

PROOF = CardProof(certificate=b"cert", chain=(b"ca",), nonce="ab" * 32, signature=b"sig")


def board(client: ApiClient, key: str = "ride-key-1", sequence: int = 5) -> Ride:
    return client.board(sequence=sequence, card=PROOF, idempotency_key=key)


# -- answers and errors --


def test_ride_answer_becomes_a_typed_ride() -> None:
    api = FakeApi().on(
        "GET /rides/41", httpx.Response(200, json=ride_json(status="completed", meter_fare=1840))
    )
    ride = api_client(api).ride(41)
    assert ride.status is RideStatus.COMPLETED
    assert (ride.ride_id, ride.meter_fare, ride.boarded_at.tzinfo is not None) == (41, 1840, True)


def test_problem_answer_raises_api_error_with_code_and_title() -> None:
    api = FakeApi().on(
        "POST /rides", problem(422, "entitlement.exhausted", "今年度の利用回数(残高)を使い切っています。")
    )
    with pytest.raises(ApiError) as raised:
        board(api_client(api))
    error = raised.value
    assert (error.status, error.code, error.is_refusal) == (422, "entitlement.exhausted", True)
    assert error.title.startswith("今年度")
    assert error.body["status"] == 422


def test_validation_problem_exposes_its_field_errors() -> None:
    api = FakeApi().on(
        "POST /rides/41/fare",
        problem(
            422, "validation", "入力内容に誤りがあります。", errors={"meter_fare": ["Not a valid integer."]}
        ),
    )
    with pytest.raises(ApiError) as raised:
        api_client(api).fare(41, 10)
    assert raised.value.field_errors == {"meter_fare": ["Not a valid integer."]}


def test_error_page_that_is_not_a_problem_gets_a_generic_japanese_title() -> None:
    api = FakeApi().on("GET /rides/41", httpx.Response(502, text="<html>Bad gateway</html>"))
    with pytest.raises(ApiError) as raised:
        api_client(api, attempts=2).ride(41)
    assert raised.value.code == "http.502"
    assert "サーバーがエラーを返しました" in raised.value.title


def test_answer_not_in_the_contracts_shape_is_unexpected() -> None:
    broken = ride_json()
    del broken["balance"]
    api = FakeApi().on("GET /rides/41", httpx.Response(200, json=broken))
    with pytest.raises(UnexpectedResponse, match="balance"):
        api_client(api).ride(41)


def test_unknown_ride_status_is_unexpected_rather_than_guessed() -> None:
    api = FakeApi().on("GET /rides/41", httpx.Response(200, json=ride_json(status="teleported")))
    with pytest.raises(UnexpectedResponse):
        api_client(api).ride(41)


def test_requests_ask_for_titles_in_the_drivers_language() -> None:
    api = FakeApi().on("GET /rides/41", httpx.Response(200, json=ride_json()))
    api_client(api, lang="en").ride(41)
    assert {r.headers["Accept-Language"] for r in api.requests} == {"en"}


def test_health_reports_a_degraded_service_without_raising() -> None:
    degraded = {"status": "degraded", "database": "ok", "broker": "unavailable"}
    api = FakeApi().on("GET /health", httpx.Response(503, json=degraded))
    health = api_client(api).health()
    assert (health.ok, health.broker) == (False, "unavailable")
    assert len(api.requests) == 1


def test_api_url_is_accepted_with_or_without_the_api_prefix() -> None:
    assert api_root("https://taxi.example.jp/api/v1/") == "https://taxi.example.jp"
    assert api_root(" http://127.0.0.1:8000 ") == "http://127.0.0.1:8000"
    with pytest.raises(ValueError, match="http"):
        api_root("taxi.example.jp")


def test_card_proof_is_sent_as_base64_with_the_sequence_and_key() -> None:
    api = FakeApi().on("POST /rides", httpx.Response(201, json=ride_json()))
    board(api_client(api), key="k-1", sequence=9)
    sent = api.sent("POST /rides")[0]
    assert sent.headers["Idempotency-Key"] == "k-1"
    assert body_of(sent) == {
        "sequence": 9,
        "card": {
            "certificate": base64.b64encode(b"cert").decode(),
            "chain": [base64.b64encode(b"ca").decode()],
            "nonce": "ab" * 32,
            "signature": base64.b64encode(b"sig").decode(),
        },
    }


def test_sequence_below_one_is_refused_before_sending() -> None:
    api = FakeApi()
    with pytest.raises(ValueError, match="sequence"):
        board(api_client(api), sequence=0)
    assert api.requests == []


def test_challenge_gives_the_exact_bytes_to_sign() -> None:
    api = FakeApi().on("POST /card-challenges", httpx.Response(201, json=challenge_json(b"\x00exact\xff")))
    challenge = api_client(api).challenge()
    assert challenge.message == b"\x00exact\xff"
    assert body_of(api.sent("POST /card-challenges")[0]) == {"purpose": "board"}


# -- retries --


def test_retried_boarding_keeps_its_idempotency_key_across_server_errors() -> None:
    api = FakeApi().on(
        "POST /rides",
        problem(503, "unavailable", "一時的に利用できません。"),
        httpx.Response(502, text="bad gateway"),
        httpx.Response(200, json=ride_json(replayed=True)),
    )
    ride = board(api_client(api), key="ride-same")
    attempts = api.sent("POST /rides")
    assert len(attempts) == 3
    assert {r.headers["Idempotency-Key"] for r in attempts} == {"ride-same"}
    assert len({r.content for r in attempts}) == 1  # the same body every time
    assert ride.replayed is True


def test_retried_boarding_keeps_its_idempotency_key_across_connection_errors() -> None:
    api = FakeApi().on(
        "POST /rides",
        httpx.ConnectError("connection refused"),
        httpx.ReadTimeout("no answer"),
        httpx.Response(201, json=ride_json()),
    )
    board(api_client(api), key="ride-net")
    assert [r.headers["Idempotency-Key"] for r in api.sent("POST /rides")] == ["ride-net"] * 3


def test_retries_are_bounded_and_back_off_exponentially() -> None:
    api = FakeApi().on("POST /rides", problem(503, "unavailable", "一時的に利用できません。"))
    sleeps: list[float] = []
    with pytest.raises(ApiError) as raised:
        board(api_client(api, sleeps=sleeps, attempts=4))
    assert raised.value.status == 503
    assert len(api.sent("POST /rides")) == 4
    assert sleeps == [0.5, 1.0, 2.0]


def test_backoff_never_waits_longer_than_the_ceiling() -> None:
    assert list(RetryPolicy(attempts=6, first_delay=1.0, max_delay=3.0).delays()) == [1.0, 2.0, 3.0, 3.0, 3.0]


def test_server_asking_to_retry_after_some_seconds_is_honoured() -> None:
    busy = problem(503, "unavailable", "一時的に利用できません。")
    busy.headers["Retry-After"] = "3"
    api = FakeApi().on("GET /rides/41", busy, httpx.Response(200, json=ride_json()))
    sleeps: list[float] = []
    api_client(api, sleeps=sleeps).ride(41)
    assert sleeps == [3.0]


def test_unreachable_api_is_reported_after_the_last_attempt() -> None:
    api = FakeApi().on("GET /rides/41", httpx.ConnectError("connection refused"))
    with pytest.raises(ApiUnreachable) as raised:
        api_client(api, attempts=3).ride(41)
    assert raised.value.attempts == 3


def test_refusal_is_not_retried() -> None:
    api = FakeApi().on("POST /rides", problem(422, "limit.per_day", "本日の利用回数の上限に達しています。"))
    with pytest.raises(ApiError):
        board(api_client(api))
    assert len(api.sent("POST /rides")) == 1


def test_enrolment_is_not_retried_once_the_server_may_have_used_the_code() -> None:
    for failure in (httpx.ReadTimeout("no answer"), problem(503, "unavailable", "一時的に利用できません。")):
        api = FakeApi().on("POST /terminals/enrol", failure, httpx.Response(201, json=enrolment_json()))
        with pytest.raises((ApiUnreachable, ApiError)):
            api_client(api).enrol("ABCD-EFGH-JKLM", "k" * 43)
        assert len(api.sent("POST /terminals/enrol")) == 1


def test_enrolment_is_retried_when_the_connection_was_never_made() -> None:
    api = FakeApi().on(
        "POST /terminals/enrol", httpx.ConnectError("refused"), httpx.Response(201, json=enrolment_json(9))
    )
    assert api_client(api).enrol("ABCD-EFGH-JKLM", "k" * 43).terminal_id == 9


def test_fare_retries_carry_one_idempotency_key() -> None:
    api = FakeApi().on(
        "POST /rides/41/fare",
        httpx.ReadTimeout("no answer"),
        httpx.Response(
            200, json=ride_json(status="completed", meter_fare=1840, rider_share=920, subsidy=920)
        ),
    )
    api_client(api).fare(41, 1840)
    keys = {r.headers["Idempotency-Key"] for r in api.sent("POST /rides/41/fare")}
    assert len(keys) == 1


# -- tokens --


def test_token_is_fetched_from_the_terminal_key_and_reused() -> None:
    key = terminal_key()
    api = FakeApi().on("GET /rides/41", httpx.Response(200, json=ride_json()))
    client = api_client(api, credentials=TerminalCredentials(7, key))
    client.ride(41)
    client.ride(41)
    token_requests = api.sent("POST /auth/terminal-token")
    assert len(token_requests) == 1
    assertion = body_of(token_requests[0])["assertion"]
    claims = jwt.decode(
        assertion,
        key.private_key.public_key(),
        algorithms=["EdDSA"],
        audience="voucher-api/terminal-token",
        options={"verify_exp": False, "verify_iat": False},
    )
    assert (claims["iss"], claims["sub"]) == ("terminal:7", "terminal:7")
    assert {r.headers["Authorization"] for r in api.sent("GET /rides/41")} == {"Bearer token-1"}


def test_token_is_renewed_shortly_before_it_expires() -> None:
    clock = MovableClock()
    api = FakeApi().on("GET /rides/41", httpx.Response(200, json=ride_json()))
    client = api_client(api, clock=clock)
    client.ride(41)
    clock.advance(timedelta(seconds=900 - 20))  # inside the renewal margin
    client.ride(41)
    assert [r.headers["Authorization"] for r in api.sent("GET /rides/41")] == [
        "Bearer token-1",
        "Bearer token-2",
    ]


def test_token_the_api_rejects_is_renewed_once() -> None:
    expired = problem(401, "auth.invalid_token", "サインインの有効期限が切れたか、無効です。")
    api = FakeApi().on("GET /rides/41", expired, httpx.Response(200, json=ride_json()))
    api_client(api).ride(41)
    assert api.tokens_issued == 2


def test_token_rejected_twice_is_reported() -> None:
    api = FakeApi().on("GET /rides/41", problem(401, "auth.invalid_token", "無効です。"))
    with pytest.raises(ApiError) as raised:
        api_client(api).ride(41)
    assert raised.value.code == "auth.invalid_token"
    assert len(api.sent("GET /rides/41")) == 2


def test_each_token_attempt_signs_a_fresh_assertion() -> None:
    api = FakeApi().on(
        "POST /auth/terminal-token",
        problem(503, "unavailable", "一時的に利用できません。"),
        httpx.Response(200, json=token_json()),
    )
    api_client(api).token()
    assertions = [body_of(r)["assertion"] for r in api.sent("POST /auth/terminal-token")]
    jtis = {jwt.decode(a, options={"verify_signature": False})["jti"] for a in assertions}
    assert len(jtis) == 2


def test_terminal_refused_by_the_api_gets_the_apis_reason() -> None:
    api = FakeApi().on(
        "POST /auth/terminal-token", problem(401, "terminal.not_active", "この端末は利用できません。")
    )
    with pytest.raises(ApiError) as raised:
        api_client(api).ride(41)
    assert raised.value.code == "terminal.not_active"


def test_call_needing_a_token_without_credentials_or_sign_in_is_refused_locally() -> None:
    api = FakeApi()
    client = ApiClient(API_URL, api.http(), sleep=lambda _s: None)
    with pytest.raises(NotSignedIn):
        client.ride(41)
    assert api.requests == []


def test_staff_sign_in_token_is_used_for_creating_a_terminal() -> None:
    staff_token = {**token_json("staff-token"), "roles": ["operator_admin"], "vehicle_id": None}
    created = {
        "terminal_id": 8,
        "vehicle_id": 3,
        "enrolment_code": "ABCD-EFGH-JKLM",
        "expires_at": "2026-10-16T01:00:00Z",
    }
    api = FakeApi().on("POST /auth/token", httpx.Response(200, json=staff_token))
    api.on("POST /terminals", httpx.Response(201, json=created))
    client = ApiClient(API_URL, api.http(), sleep=lambda _s: None)
    client.sign_in("jigyosha", "secret words")
    new = client.create_terminal(3)
    assert (new.terminal_id, new.enrolment_code) == (8, "ABCD-EFGH-JKLM")
    assert api.sent("POST /terminals")[0].headers["Authorization"] == "Bearer staff-token"


def test_health_behind_a_proxy_that_is_down_raises_api_error() -> None:
    api = FakeApi().on("GET /health", httpx.Response(503, text="<html>maintenance</html>"))
    with pytest.raises(ApiError) as raised:
        api_client(api).health()
    assert raised.value.code == "http.503"


def test_a_401_about_the_card_is_an_answer_not_a_reason_to_renew_the_token() -> None:
    api = FakeApi().on(
        "POST /rides", problem(401, "signature.invalid", "カードの署名を確認できませんでした。")
    )
    with pytest.raises(ApiError) as raised:
        board(api_client(api))
    assert raised.value.code == "signature.invalid"
    assert (len(api.sent("POST /rides")), api.tokens_issued) == (1, 1)
