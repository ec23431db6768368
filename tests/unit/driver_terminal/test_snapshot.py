"""The offline snapshot: accepted only when signed by the key pinned at enrolment and made for this
terminal; cards checked against it as the API would (chain, dates, revocation, the card's signature)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from driver_terminal.records import b64url, canonical_json, offline_board_message
from driver_terminal.snapshot import (
    OfflineRefusal,
    Snapshot,
    SnapshotInvalid,
    card_signature_valid,
    check_card,
    fingerprint,
    verify_snapshot,
)
from tests import factories as f

AT = datetime(2026, 10, 15, 1, 0, tzinfo=UTC)


def public_b64(key: Ed25519PrivateKey) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return b64url(raw)


def payload(
    issuer: Any, *, terminal_id: int = 7, revoked: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "version": 1,
        "terminal_id": terminal_id,
        "municipality_code": "062120",
        "issued_at": AT.isoformat(),
        "valid_until": (AT + timedelta(hours=24)).isoformat(),
        "trust_anchors": [Path(issuer.root_certificate_pem_path).read_text()],
        "intermediates": [],
        "revoked_serials": revoked or [],
        "bindings": [
            {
                "fingerprint": "ab" * 32,
                "program_code": "elderly",
                "unit": "ride",
                "balance": 3,
                "given_name": "花子",
                "age_band": "80代",
                "tap_allowed": False,
                "offline_max_rides_per_day": 2,
                "void_window_minutes": 10,
            }
        ],
        "programs": [
            {
                "code": "elderly",
                "name": "高齢者おもいやりタクシー",
                "name_en": "Elderly taxi subsidy",
                "subsidy": {"formula": "percent_capped", "percent": 50, "cap_per_ride": 1000},
                "grant_unit": "ride",
                "options": {},
            }
        ],
    }
    body.update(extra)
    return body


def signed(key: Ed25519PrivateKey, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "snapshot": body,
        "signature": b64url(key.sign(canonical_json(body))),
        "public_key": public_b64(key),
    }


@pytest.fixture
def api_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def test_snapshot_signed_by_the_pinned_key_is_read(issuer: Any, api_key: Ed25519PrivateKey) -> None:
    snapshot = verify_snapshot(signed(api_key, payload(issuer)), public_b64(api_key), terminal_id=7)
    binding = snapshot.binding("ab" * 32)
    assert binding is not None
    assert (binding.given_name, binding.balance) == ("花子", 3)
    assert snapshot.usable_at(AT + timedelta(hours=1))
    assert not snapshot.usable_at(AT + timedelta(hours=25))


def test_snapshot_signed_by_another_key_is_refused_even_if_it_names_that_key(
    issuer: Any, api_key: Ed25519PrivateKey
) -> None:
    impostor = Ed25519PrivateKey.generate()
    with pytest.raises(SnapshotInvalid, match="signature"):
        verify_snapshot(signed(impostor, payload(issuer)), public_b64(api_key), terminal_id=7)


def test_snapshot_changed_after_signing_is_refused(issuer: Any, api_key: Ed25519PrivateKey) -> None:
    body = signed(api_key, payload(issuer))
    body["snapshot"]["bindings"][0]["balance"] = 99
    with pytest.raises(SnapshotInvalid):
        verify_snapshot(body, public_b64(api_key), terminal_id=7)


def test_snapshot_made_for_another_terminal_is_refused(issuer: Any, api_key: Ed25519PrivateKey) -> None:
    with pytest.raises(SnapshotInvalid, match="terminal 8"):
        verify_snapshot(signed(api_key, payload(issuer, terminal_id=8)), public_b64(api_key), terminal_id=7)


def test_snapshot_of_an_unknown_version_is_refused(issuer: Any, api_key: Ed25519PrivateKey) -> None:
    with pytest.raises(SnapshotInvalid, match="version"):
        verify_snapshot(signed(api_key, payload(issuer, version=2)), public_b64(api_key), terminal_id=7)


def test_malformed_snapshot_is_refused_not_crashed_on(issuer: Any, api_key: Ed25519PrivateKey) -> None:
    with pytest.raises(SnapshotInvalid):
        verify_snapshot(
            signed(api_key, payload(issuer, bindings=[{"fingerprint": "x"}])),
            public_b64(api_key),
            terminal_id=7,
        )


# -- cards --


def card_parts(card_path: Path) -> tuple[bytes, bytes, Any]:
    reader = f.card_reader(card_path)
    return reader.read_user_certificate(), reader.read_user_ca_certificate(), reader


def snapshot_for(issuer: Any, **extra: Any) -> Snapshot:
    return Snapshot.parse(payload(issuer, **extra), "unused", "unused")


def test_card_from_the_trusted_issuer_passes(issuer: Any, card_factory: Any) -> None:
    certificate, ca, _reader = card_parts(card_factory("offline-ok"))
    card = check_card(snapshot_for(issuer), certificate, [ca], AT)
    assert card.fingerprint == fingerprint(certificate)


def test_card_without_its_ca_passes_when_the_snapshot_carries_the_intermediate(
    issuer: Any, card_factory: Any
) -> None:
    certificate, _ca, _reader = card_parts(card_factory("offline-ok"))
    intermediate = Path(issuer.intermediate_certificate_pem_path).read_text()
    check_card(snapshot_for(issuer, intermediates=[intermediate]), certificate, [], AT)
    with pytest.raises(OfflineRefusal, match=r"card\.unknown_issuer"):
        check_card(snapshot_for(issuer), certificate, [], AT)


def test_revoked_card_is_refused_offline(issuer: Any, card_factory: Any) -> None:
    certificate, ca, _reader = card_parts(card_factory("offline-ok"))
    serial = format(x509.load_der_x509_certificate(certificate).serial_number, "x")
    with pytest.raises(OfflineRefusal, match=r"card\.revoked"):
        check_card(snapshot_for(issuer, revoked_serials=[serial]), certificate, [ca], AT)


def test_expired_card_is_refused_offline(issuer: Any, card_factory: Any) -> None:
    certificate, ca, _reader = card_parts(card_factory("offline-ok"))
    with pytest.raises(OfflineRefusal, match=r"card\.expired"):
        check_card(snapshot_for(issuer), certificate, [ca], AT + timedelta(days=365 * 30))


def test_card_from_an_unknown_issuer_is_refused(issuer: Any, card_factory: Any, tmp_path: Path) -> None:
    from auth_mock.issuer import Issuer

    other = Issuer.create(tmp_path / "other", base_url="http://127.0.0.1:9", now=AT - timedelta(days=10))
    certificate, ca, _reader = card_parts(card_factory("offline-ok"))
    foreign = Snapshot.parse(
        {**payload(issuer), "trust_anchors": [Path(other.root_certificate_pem_path).read_text()]}, "x", "x"
    )
    with pytest.raises(OfflineRefusal, match=r"card\.unknown_issuer"):
        check_card(foreign, certificate, [ca], AT)


def test_garbage_instead_of_a_certificate_is_refused(issuer: Any) -> None:
    with pytest.raises(OfflineRefusal, match=r"card\.malformed"):
        check_card(snapshot_for(issuer), b"not a certificate", [], AT)


def test_the_cards_offline_signature_is_checked_against_its_certificate(
    issuer: Any, card_factory: Any
) -> None:
    certificate, ca, reader = card_parts(card_factory("offline-ok"))
    card = check_card(snapshot_for(issuer), certificate, [ca], AT)
    message = offline_board_message(b"\x01" * 32, 7, 12)
    signature = reader.sign_with_user_key(message, f.CARD_PIN)
    assert card_signature_valid(card, message, signature)
    assert not card_signature_valid(card, offline_board_message(b"\x01" * 32, 7, 13), signature)
    assert base64.b64encode(signature)  # a real 256-byte RSA signature
