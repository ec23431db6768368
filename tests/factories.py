"""Plain factory functions: each takes the session and returns what it made (flushed, not committed)."""

from __future__ import annotations

import base64
import itertools
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from voucher_api.models import (
    BindingMethod,
    District,
    Driver,
    Entitlement,
    Municipality,
    Operator,
    Program,
    ProgramExclusion,
    Resident,
    ResidentStatus,
    StaffRole,
    Vehicle,
)
from voucher_api.services import entitlements, identity, staff, terminals
from voucher_api.services.program_rules import validate_rules

NOW = datetime(2026, 10, 15, 1, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
# Distinctive card secrets, so the privacy guard can prove they never reach a log or the database.
CARD_PIN = "4739"
CARD_PASSWORD = "QZ7K2M9"
_seq = itertools.count(1)


def municipality(session: Session, code: str = "062120", name: str = "尾花沢市") -> Municipality:
    from sqlalchemy import select

    existing = session.scalar(select(Municipality).where(Municipality.code == code))
    if existing is not None:
        return existing
    mun = Municipality(code=code, name=name, name_kana="オバナザワシ", prefecture="山形県", created_at=NOW)
    session.add(mun)
    session.flush()
    for dcode, dname in (("01", "尾花沢"), ("02", "宮沢"), ("03", "玉野"), ("04", "常盤"), ("05", "福原")):
        session.add(District(municipality_id=mun.id, code=dcode, name=dname, name_kana=""))
    session.flush()
    return mun


def district(session: Session, mun: Municipality, code: str) -> District:
    from sqlalchemy import select

    found = session.scalar(select(District).where(District.municipality_id == mun.id, District.code == code))
    assert found is not None
    return found


def staff_user(
    session: Session, mun: Municipality, *roles: StaffRole, username: str | None = None, **kw: Any
) -> Any:
    return staff.create_staff(
        session,
        municipality_id=mun.id,
        username=username or f"staff{next(_seq)}",
        display_name="窓口 太郎",
        password=PASSWORD,
        roles=list(roles) or [StaffRole.COUNTER],
        now=NOW,
        **kw,
    )


def resident(
    session: Session,
    mun: Municipality,
    *,
    birth_date: date = date(1945, 6, 1),
    car_licence: str = "returned",
    district_code: str = "01",
    disability: list[dict[str, str]] | None = None,
    status: ResidentStatus = ResidentStatus.RESIDENT,
    given_name: str = "花子",
) -> Resident:
    n = next(_seq)
    person = Resident(
        municipality_id=mun.id,
        registry_id=f"{mun.code}-{n:07d}",
        household_id=f"H{n:07d}",
        family_name="尾花沢",
        given_name=given_name,
        family_name_kana="オバナザワ",
        given_name_kana="ハナコ",
        sex="female",
        birth_date=birth_date,
        address="山形県尾花沢市若葉町一丁目1番1号",
        district_id=district(session, mun, district_code).id,
        car_licence=car_licence,
        disability_certificates=disability or [],
        status=status,
        synced_at=NOW,
    )
    session.add(person)
    session.flush()
    return person


ELDERLY_RULES: dict[str, Any] = {
    "eligibility": [
        {"type": "min_age", "years": 75},
        {"type": "car_licence", "states": ["none", "returned"]},
    ],
    "subsidy": {"formula": "percent_capped", "percent": 50, "cap_per_ride": 1000},
    "grant": {"unit": "ride", "amount": 24},
    "limits": {"per_day": 2},
    "options": {},
}


def program(
    session: Session,
    mun: Municipality,
    *,
    code: str | None = None,
    rules: dict[str, Any] | None = None,
    excludes: list[Program] | None = None,
    fiscal_year: int = 2026,
) -> Program:
    validated = validate_rules(rules or ELDERLY_RULES)
    prog = Program(
        municipality_id=mun.id,
        code=code or f"prog{next(_seq)}",
        name="高齢者おもいやりタクシー",
        name_en="Elderly taxi subsidy",
        fiscal_year=fiscal_year,
        valid_from=date(fiscal_year, 4, 1),
        valid_to=date(fiscal_year + 1, 3, 31),
        created_at=NOW,
        **validated,
    )
    session.add(prog)
    session.flush()
    for other in excludes or []:
        session.add(ProgramExclusion(program_id=prog.id, excluded_program_id=other.id))
        session.add(ProgramExclusion(program_id=other.id, excluded_program_id=prog.id))
    session.flush()
    return prog


def entitlement(
    session: Session, person: Resident, prog: Program, *, balance: int | None = None
) -> Entitlement:
    ent = entitlements.grant(
        session, resident_id=person.id, program=prog, application_id=None, actor="test", now=NOW
    )
    if balance is not None and balance != ent.balance:
        from voucher_api.models import LedgerKind

        entitlements.change_balance(
            session,
            entitlement_id=ent.id,
            amount=balance - ent.balance,
            kind=LedgerKind.ADJUSTMENT,
            actor="test",
            now=NOW,
            require_active=False,
        )
        session.refresh(ent)
    return ent


def operator(session: Session, mun: Municipality, code: str | None = None) -> Operator:
    op = Operator(
        municipality_id=mun.id,
        code=code or f"OP{next(_seq):02d}",
        name="尾花沢タクシー株式会社",
        name_kana="オバナザワタクシー(カ",
        bank_code="0122",
        branch_code="001",
        account_type="ordinary",
        account_number="1234567",
        account_holder_kana="オバナザワタクシー(カ",
        created_at=NOW,
    )
    session.add(op)
    session.flush()
    return op


def vehicle(session: Session, op: Operator) -> Vehicle:
    v = Vehicle(operator_id=op.id, registration=f"山形 500 あ {next(_seq):02d}-{next(_seq):02d}", label="")
    session.add(v)
    session.flush()
    return v


def driver(session: Session, operator_id: int, code: str = "D01", name: str = "運転 一郎") -> Driver:
    d = Driver(operator_id=operator_id, code=code, name=name, active=True)
    session.add(d)
    session.flush()
    return d


class TerminalDevice:
    """A terminal's side: its key, its id, and helpers to sign in and number its records."""

    def __init__(self, terminal_id: int, key: Ed25519PrivateKey) -> None:
        self.terminal_id = terminal_id
        self.key = key
        self._sequence = itertools.count(1)

    def next_sequence(self) -> int:
        return next(self._sequence)

    def assertion(self, now: datetime) -> str:
        claims = {
            "iss": f"terminal:{self.terminal_id}",
            "sub": f"terminal:{self.terminal_id}",
            "aud": "voucher-api/terminal-token",
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(seconds=60)).timestamp()),
            "jti": f"j{next(_seq)}",
        }
        return jwt.encode(claims, self.key, algorithm="EdDSA")

    def token(self, client: FlaskClient, now: datetime) -> str:
        r = client.post("/api/v1/auth/terminal-token", json={"assertion": self.assertion(now)})
        assert r.status_code == 200, r.get_json()
        return str(r.get_json()["access_token"])


def public_key_b64(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def enrolled_terminal(session: Session, mun: Municipality, v: Vehicle) -> TerminalDevice:
    created = terminals.create_terminal(
        session, vehicle_id=v.id, municipality_id=mun.id, actor="test", now=NOW, ttl=timedelta(days=1)
    )
    key = Ed25519PrivateKey.generate()
    terminals.enrol(session, code=created.enrolment_code, public_key_b64=public_key_b64(key), now=NOW)
    return TerminalDevice(created.terminal.id, key)


def staff_token(client: FlaskClient, username: str) -> str:
    r = client.post("/api/v1/auth/token", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.get_json()
    return str(r.get_json()["access_token"])


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


# --- cards ---------------------------------------------------------------------------------------


def card_reader(card_path: Path) -> Any:
    from auth_mock.reader import JPKIReader, VirtualCardTransport

    return JPKIReader(VirtualCardTransport(card_path))


def card_proof(
    card_path: Path, *, message: bytes | None, nonce: str | None, pin: str = CARD_PIN
) -> dict[str, Any]:
    """What a terminal or the counter sends: the certificate, its CA, and the signature over the challenge."""
    reader = card_reader(card_path)
    proof: dict[str, Any] = {
        "certificate": base64.b64encode(reader.read_user_certificate()).decode(),
        "chain": [base64.b64encode(reader.read_user_ca_certificate()).decode()],
        "nonce": nonce,
        "signature": None,
    }
    if message is not None:
        proof["signature"] = base64.b64encode(reader.sign_with_user_key(message, pin)).decode()
    return proof


def bind_card(session: Session, verifier: Any, person: Resident, card_path: Path, staff_id: int) -> Any:
    """Bind a card directly through the service (the API path is tested separately)."""
    reader = card_reader(card_path)
    verified = verifier.verify_certificate(
        reader.read_user_certificate(), [reader.read_user_ca_certificate()], NOW
    )
    return identity.bind_card(
        session,
        resident_id=person.id,
        municipality_id=person.municipality_id,
        card=verified,
        method=BindingMethod.PIN_SIGNATURE,
        staff_id=staff_id,
        now=NOW,
    )
