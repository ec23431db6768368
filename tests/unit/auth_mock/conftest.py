"""Shared fixtures for auth_mock: one issuer and one card of each kind per test session.

RSA key generation is the slow part, so the cards are made once; a test that changes a card works
on its own copy of the card file (`card_copy`), and a test that revokes works on its own copy of the
issuer directory (`own_issuer`).
"""

from __future__ import annotations

import shutil
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from auth_mock.card import VirtualCard
from auth_mock.issuer import CardHolder, CardKind, IssuedCard, Issuer
from auth_mock.reader import PcscTransport, Transport, VirtualCardTransport

NOW = datetime(2025, 6, 2, 1, 30, tzinfo=UTC)  # 10:30 in Japan
BASE_URL = "http://127.0.0.1:8081"
PIN = "1234"
PASSWORD = "OBANA2025"


def make_holder(**overrides: Any) -> CardHolder:
    facts: dict[str, Any] = {
        "family_name": "尾花沢",
        "given_name": "花子",
        "family_name_kana": "オバナザワ",
        "given_name_kana": "ハナコ",
        "sex": "female",
        "birth_date": date(1948, 9, 10),
        "address": "山形県尾花沢市若葉町一丁目1番1号",
        "municipality_code": "062120",
        "registry_id": "R-0001",
    }
    facts.update(overrides)
    return CardHolder(**facts)


@dataclass(frozen=True)
class Pki:
    directory: Path
    issuer: Issuer
    cards: dict[CardKind, IssuedCard]


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    issuer = Issuer.create(directory / "issuer", base_url=BASE_URL, now=NOW, clock=lambda: NOW)
    cards = {}
    for number, kind in enumerate(CardKind, start=1):
        holder = make_holder(registry_id=f"R-{number:04d}")
        cards[kind] = issuer.issue_card(
            holder, pin=PIN, password=PASSWORD, kind=kind.value, out=directory / f"{kind.value}.card", now=NOW
        )
    return Pki(directory, issuer, cards)


@pytest.fixture
def card_copy(pki: Pki, tmp_path: Path) -> Callable[[CardKind], Path]:
    """A private copy of the session's card of a kind, free to lock, unlock or wear out."""

    def copy(kind: CardKind) -> Path:
        target = tmp_path / f"own-{kind.value}.card"
        shutil.copyfile(pki.cards[kind].path, target)
        return target

    return copy


@pytest.fixture
def own_issuer(pki: Pki, tmp_path: Path) -> Issuer:
    """A private copy of the session issuer (same CA keys and cards), free to revoke in."""
    target = tmp_path / "issuer"
    shutil.copytree(pki.issuer.directory, target)
    return Issuer.load(target, clock=lambda: NOW)


# -- PC/SC faked at the transport boundary: a stand-in for pyscard's modules -------------------------


class FakeNoCardException(Exception):
    pass


class FakeCardConnectionException(Exception):
    pass


class FakeConnection:
    """pyscard's CardConnection over a virtual card; `t0` answers like a T=0 card (61xx + GET RESPONSE)."""

    def __init__(self, card_path: Path, *, t0: bool) -> None:
        self.card_path = card_path
        self.t0 = t0
        self.card: VirtualCard | None = None
        self.pending = b""
        self.sent: list[bytes] = []

    def connect(self) -> None:
        if not self.card_path.exists():
            raise FakeNoCardException("no card")
        self.card = VirtualCard.load(self.card_path)

    def transmit(self, apdu: list[int]) -> tuple[list[int], int, int]:
        if self.card is None:
            raise FakeCardConnectionException("not connected")
        command = bytes(apdu)
        self.sent.append(command)
        if self.t0 and command[1] == 0xC0:
            chunk, self.pending = self.pending[: command[4] or 256], self.pending[command[4] or 256 :]
            status = [0x61, min(len(self.pending), 255)] if self.pending else [0x90, 0x00]
            return list(chunk), status[0], status[1]
        response = self.card.transmit(command)
        data, sw1, sw2 = response[:-2], response[-2], response[-1]
        if self.t0 and data:
            self.pending = data
            return [], 0x61, min(len(data), 255)
        return list(data), sw1, sw2

    def disconnect(self) -> None:
        self.card = None


class FakeReader:
    def __init__(self, name: str, card_path: Path, *, t0: bool) -> None:
        self.name = name
        self.card_path = card_path
        self.t0 = t0
        self.connections: list[FakeConnection] = []

    def createConnection(self) -> FakeConnection:  # noqa: N802 - pyscard's name
        connection = FakeConnection(self.card_path, t0=self.t0)
        self.connections.append(connection)
        return connection

    def __str__(self) -> str:
        return self.name


@pytest.fixture
def fake_pcsc(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[FakeReader]]:
    """Install a fake `smartcard` package whose readers hold the given card files."""
    installed: list[FakeReader] = []
    system = types.ModuleType("smartcard.System")
    system.readers = lambda: list(installed)  # type: ignore[attr-defined]
    exceptions = types.ModuleType("smartcard.Exceptions")
    exceptions.NoCardException = FakeNoCardException  # type: ignore[attr-defined]
    exceptions.CardConnectionException = FakeCardConnectionException  # type: ignore[attr-defined]
    package = types.ModuleType("smartcard")
    monkeypatch.setitem(sys.modules, "smartcard", package)
    monkeypatch.setitem(sys.modules, "smartcard.System", system)
    monkeypatch.setitem(sys.modules, "smartcard.Exceptions", exceptions)

    def insert(*card_paths: Path, t0: bool = False) -> list[FakeReader]:
        for path in card_paths:
            installed.append(FakeReader(f"Fake PC/SC Reader {len(installed)}", path, t0=t0))
        return installed

    return insert


@pytest.fixture(params=["virtual", "pcsc", "pcsc_t0"])
def connect(
    request: pytest.FixtureRequest, fake_pcsc: Callable[..., list[FakeReader]]
) -> Iterator[Callable[[Path], Transport]]:
    """The same card file behind each transport: the virtual reader and PC/SC (T=1 and T=0)."""
    opened: list[PcscTransport] = []

    def open_transport(path: Path) -> Transport:
        if request.param == "virtual":
            return VirtualCardTransport(path)
        readers = fake_pcsc(path, t0=request.param == "pcsc_t0")
        transport = PcscTransport(readers[-1].name)
        opened.append(transport)
        return transport

    yield open_transport
    for transport in opened:
        transport.close()
