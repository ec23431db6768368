"""Guard: no code path sends, or even names, the AID of the text-input-assist applet.

That applet holds the 12-digit individual number, which this project never reads (DESIGN §4, §5).
Every APDU that reaches a card during the reader operations and the `mock-card` flows is recorded
and checked, and the source tree outside tests/ is searched for the AID in its usual spellings.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from auth_mock import jpki
from auth_mock.card import VirtualCard
from auth_mock.cli import CliEnvironment, main
from auth_mock.issuer import CardKind, Issuer
from auth_mock.reader import CardError, JPKIReader, Transport
from tests.unit.auth_mock.conftest import NOW, PASSWORD, PIN, make_holder

TEXT_INPUT_ASSIST_AID = bytes.fromhex("D3921000310001010408")
REPOSITORY = Path(__file__).resolve().parents[3]
SKIPPED_DIRECTORIES = {
    ".git",
    ".venv",
    "venv",
    "tests",
    "var",
    "node_modules",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
    "build",
    "dist",
}
PROSE_SUFFIXES = {".md", ".rst"}  # documentation may explain the rule in words; code may not name the AID


@pytest.fixture
def sent_to_cards(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every APDU any virtual card receives, whichever transport carried it."""
    recorded: list[bytes] = []
    original = VirtualCard.transmit

    def recording(self: VirtualCard, apdu: bytes) -> bytes:
        recorded.append(bytes(apdu))
        return original(self, apdu)

    monkeypatch.setattr(VirtualCard, "transmit", recording)
    return recorded


def assert_only_jpki_is_selected(apdus: list[bytes]) -> None:
    assert apdus, "nothing was sent: the guard would prove nothing"
    for apdu in apdus:
        assert TEXT_INPUT_ASSIST_AID not in apdu
        if apdu[:3] == b"\x00\xa4\x04":  # SELECT by AID
            assert apdu[5:] == jpki.JPKI_AID


READER_OPERATIONS: dict[str, Callable[[JPKIReader], Any]] = {
    "select_applet": lambda reader: reader.select_applet(),
    "read_token_info": lambda reader: reader.read_token_info(),
    "read_user_certificate": lambda reader: reader.read_user_certificate(),
    "read_user_ca_certificate": lambda reader: reader.read_user_ca_certificate(),
    "has_user_pin": lambda reader: reader.has_user_pin(),
    "user_pin_tries_left": lambda reader: reader.user_pin_tries_left(),
    "verify_user_pin": lambda reader: reader.verify_user_pin(PIN),
    "sign_with_user_key": lambda reader: reader.sign_with_user_key(b"challenge", pin=PIN),
    "signature_password_tries_left": lambda reader: reader.signature_password_tries_left(),
    "verify_signature_password": lambda reader: reader.verify_signature_password(PASSWORD),
    "read_signature_certificate": lambda reader: reader.read_signature_certificate(PASSWORD),
    "read_signature_ca_certificate": lambda reader: reader.read_signature_ca_certificate(),
    "sign_with_signature_key": lambda reader: reader.sign_with_signature_key(b"document", PASSWORD),
}


def test_guard_covers_every_public_reader_operation() -> None:
    public = {
        name for name, _ in inspect.getmembers(JPKIReader, inspect.isfunction) if not name.startswith("_")
    }
    assert public == set(READER_OPERATIONS)


def test_no_reader_operation_sends_the_text_input_assist_aid(
    sent_to_cards: list[bytes], connect: Callable[[Path], Transport], card_copy: Callable[[CardKind], Path]
) -> None:
    for kind in CardKind:
        reader = JPKIReader(connect(card_copy(kind)))
        for operation in READER_OPERATIONS.values():
            # Face-recognition and locked cards refuse some operations; what was sent still counts.
            with contextlib.suppress(CardError):
                operation(reader)
    assert_only_jpki_is_selected(sent_to_cards)


def test_no_mock_card_flow_sends_the_text_input_assist_aid(
    sent_to_cards: list[bytes], own_issuer: Issuer, tmp_path: Path
) -> None:
    holder = tmp_path / "holder.json"
    facts = make_holder(registry_id="R-GUARD")
    holder.write_text(
        json.dumps({**facts.__dict__, "birth_date": facts.birth_date.isoformat()}, ensure_ascii=False),
        encoding="utf-8",
    )
    environment = CliEnvironment(clock=lambda: NOW)
    out = tmp_path / "guard.card"

    def run(*args: str) -> str:
        result = CliRunner().invoke(
            main, ["--issuer-dir", str(own_issuer.directory), *args], obj=environment, catch_exceptions=False
        )
        assert result.exit_code == 0, result.output
        return result.output

    issued = json.loads(
        run(
            "issue",
            "--out",
            str(out),
            "--pin",
            PIN,
            "--password",
            PASSWORD,
            "--holder-json",
            str(holder),
            "--json",
        )
    )
    card_id = issued["card_id"]
    for args in (
        ("show", card_id),
        ("lock", card_id),
        ("show", card_id),
        ("unlock", card_id),
        ("unlock", card_id, "--password"),
        ("expire", card_id),
        ("revoke", card_id, "--reason", "loss"),
        ("list",),
        ("show", str(out), "--json"),
    ):
        run(*args)
    assert_only_jpki_is_selected(sent_to_cards)


# -- the source tree --


def _spellings() -> list[str]:
    return [
        TEXT_INPUT_ASSIST_AID.hex(),  # after separators and 0x / \x prefixes are dropped
        ",".join(str(byte) for byte in TEXT_INPUT_ASSIST_AID),  # a list of decimal ints, spaces dropped
        repr(TEXT_INPUT_ASSIST_AID)[2:-1].lower(),  # a bytes literal, where 0x31 shows as "1"
    ]


def names_the_aid(text: str) -> bool:
    lowered = text.lower()
    compact = re.sub(r"\s", "", lowered)
    hex_only = re.sub(r"[^0-9a-f]", "", compact.replace("0x", "").replace("\\x", ""))
    hex_aid, decimal_aid, literal_aid = _spellings()
    return hex_aid in hex_only or decimal_aid in compact or literal_aid in lowered


def source_files(root: Path) -> list[Path]:
    found = []
    for path in root.rglob("*"):
        relative = path.relative_to(root).parts
        if any(part in SKIPPED_DIRECTORIES or part.endswith(".egg-info") for part in relative):
            continue
        if path.is_file() and path.suffix not in PROSE_SUFFIXES and path.stat().st_size < 5_000_000:
            found.append(path)
    return found


@pytest.mark.parametrize(
    "spelling",
    [
        'AID = bytes.fromhex("D3921000310001010408")',
        "aid = 'd3 92 10 00 31 00 01 01 04 08'",
        "[0xD3, 0x92, 0x10, 0x00, 0x31, 0x00, 0x01, 0x01, 0x04, 0x08]",
        "[211, 146, 16, 0, 49, 0, 1, 1, 4, 8]",
        'b"\\xd3\\x92\\x10\\x001\\x00\\x01\\x01\\x04\\x08"',
        "const AID = 'D3:92:10:00:31:00:01:01:04:08';",
    ],
)
def test_the_source_search_recognises_the_usual_spellings(spelling: str) -> None:
    assert names_the_aid(spelling)


def test_the_source_search_leaves_the_jpki_aid_alone() -> None:
    assert not names_the_aid(f'JPKI_AID = bytes.fromhex("{jpki.JPKI_AID.hex().upper()}")')


def test_no_source_outside_tests_names_the_text_input_assist_aid() -> None:
    scanned = source_files(REPOSITORY)
    assert REPOSITORY / "auth_mock" / "reader.py" in scanned
    offenders = [
        str(path.relative_to(REPOSITORY))
        for path in scanned
        if b"\x00" not in (content := path.read_bytes())[:4096]
        and names_the_aid(content.decode("utf-8", "ignore"))
    ]
    assert offenders == []
