"""The terminal's Ed25519 key: made once, owner-only, never replaced; the client assertion's claims."""

from __future__ import annotations

import stat
from datetime import datetime
from pathlib import Path

import jwt
import pytest

from driver_terminal.keys import (
    KEY_FILENAME,
    KeyExists,
    KeyMissing,
    KeyUnprotected,
    KeyUnreadable,
    data_dir_from,
    generate_key,
    load_key,
    load_or_generate_key,
)
from tests.unit.driver_terminal.fakes import NOW, terminal_key


def test_new_key_is_written_readable_by_its_owner_only(tmp_path: Path) -> None:
    generate_key(tmp_path / "terminal")
    assert stat.S_IMODE((tmp_path / "terminal" / KEY_FILENAME).stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "terminal").stat().st_mode) & 0o077 == 0


def test_existing_key_is_never_replaced(tmp_path: Path) -> None:
    first = generate_key(tmp_path)
    with pytest.raises(KeyExists):
        generate_key(tmp_path)
    assert load_key(tmp_path).public_key_b64() == first.public_key_b64()


def test_the_same_key_comes_back_after_a_restart(tmp_path: Path) -> None:
    made = load_or_generate_key(tmp_path)
    assert load_or_generate_key(tmp_path).public_key_b64() == made.public_key_b64()


def test_key_that_others_can_read_is_refused(tmp_path: Path) -> None:
    generate_key(tmp_path)
    (tmp_path / KEY_FILENAME).chmod(0o644)
    with pytest.raises(KeyUnprotected, match="chmod 600"):
        load_key(tmp_path)


def test_missing_key_says_the_terminal_is_not_enrolled(tmp_path: Path) -> None:
    with pytest.raises(KeyMissing, match="登録"):
        load_key(tmp_path)


def test_file_that_is_not_an_ed25519_key_is_reported(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILENAME
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    path.chmod(0o600)
    with pytest.raises(KeyUnreadable):
        load_key(tmp_path)


def test_public_key_is_raw_32_bytes_in_base64url_without_padding() -> None:
    encoded = terminal_key().public_key_b64()
    assert len(encoded) == 43
    assert set(encoded) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_assertion_carries_the_contracts_claims_and_lives_60_seconds() -> None:
    key = terminal_key()
    assertion = key.assertion(12, NOW)
    assert jwt.get_unverified_header(assertion)["alg"] == "EdDSA"
    claims = jwt.decode(
        assertion,
        key.private_key.public_key(),
        algorithms=["EdDSA"],
        audience="voucher-api/terminal-token",
        options={"verify_exp": False, "verify_iat": False},
    )
    assert (claims["iss"], claims["sub"]) == ("terminal:12", "terminal:12")
    assert claims["iat"] == int(NOW.timestamp())
    assert claims["exp"] - claims["iat"] == 60
    assert claims["jti"]


def test_every_assertion_has_its_own_jti() -> None:
    key = terminal_key()
    first, second = (jwt.decode(key.assertion(1, NOW), options={"verify_signature": False}) for _ in range(2))
    assert first["jti"] != second["jti"]


def test_assertion_refuses_a_time_without_a_zone() -> None:
    with pytest.raises(ValueError, match="timezone"):
        terminal_key().assertion(1, datetime(2026, 10, 15, 10, 0))  # noqa: DTZ001 -- the point of the test


def test_data_dir_comes_from_the_option_then_the_environment_then_the_default() -> None:
    assert data_dir_from("/opt/t", {"TERMINAL_DATA_DIR": "/env"}) == Path("/opt/t")
    assert data_dir_from(None, {"TERMINAL_DATA_DIR": "/env"}) == Path("/env")
    assert data_dir_from(None, {}) == Path("var/terminal")
