"""A fresh database and a small city in it, made with the project's own services.

The city: one municipality (尾花沢市, 062120), an admin, one `percent_capped` program (50 % up to
¥1,000, granted in rides, enough that nobody runs out), one operator, one vehicle and one enrolled
terminal per client, and a few residents with entitlements and bound virtual cards issued by
auth_mock's issuer.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from auth_mock.card import load_card_image
from auth_mock.issuer import CardHolder, Issuer
from auth_mock.reader import JPKIReader, VirtualCardTransport
from bench.rides.loadgen import CardCredentials
from voucher_api.clock import fiscal_year_of, japan_date
from voucher_api.models import (
    BindingMethod,
    Municipality,
    Operator,
    Program,
    Resident,
    ResidentStatus,
    StaffRole,
    Vehicle,
)
from voucher_api.services import entitlements, identity, staff, terminals
from voucher_api.services.program_rules import validate_rules

MUNICIPALITY_CODE = "062120"
CARD_PIN = "1234"
CARD_PASSWORD = "BENCH2026"  # of a throwaway virtual card
MIN_GRANT = 100_000

_GIVEN_NAMES = ("花子", "太郎", "ハル", "清", "トメ", "正雄", "キヨ", "勇", "ミツ", "茂", "フミ", "實")
_FAMILY_NAMES = ("尾花沢", "鈴木", "佐藤", "高橋", "大山", "荒木")


def _driver_url(url: str) -> str:
    return "postgresql+psycopg://" + url.split("://", 1)[1] if url.startswith("postgresql://") else url


def create_database(admin_url: str, name: str) -> str:
    """Create database `name` next to the one `admin_url` names (dropping a leftover of the same name).

    Returns the new database's URL in the same form as `admin_url`.
    """
    admin = create_engine(_driver_url(admin_url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, name: str) -> None:
    """Drop database `name`, closing whatever connections are left."""
    admin = create_engine(_driver_url(admin_url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@dataclass(frozen=True)
class IssuedCardFile:
    """A virtual card file, the holder it was issued to, and what the load generator needs of it."""

    path: Path
    holder: CardHolder
    credentials: CardCredentials
    certificate_der: bytes
    ca_certificate_der: bytes


def holder_for(index: int) -> CardHolder:
    """A made-up resident of 尾花沢市 aged about 80 (registry id only; never an individual number)."""
    return CardHolder(
        family_name=_FAMILY_NAMES[index % len(_FAMILY_NAMES)],
        given_name=_GIVEN_NAMES[index % len(_GIVEN_NAMES)],
        family_name_kana="ベンチ",
        given_name_kana="ジョウシャ",
        sex="female" if index % 2 == 0 else "male",
        birth_date=date(1940 + index % 10, 1 + index % 12, 1 + index % 28),
        address=f"山形県尾花沢市若葉町一丁目{index + 1}番1号",
        municipality_code=MUNICIPALITY_CODE,
        registry_id=f"{MUNICIPALITY_CODE}-B{index + 1:06d}",
    )


def issue_cards(issuer: Issuer, directory: Path, count: int, *, now: datetime) -> list[IssuedCardFile]:
    """Issue `count` standard cards and read each once through the JPKI reader driver.

    Also checks that signing with the key taken from the card file gives exactly the card's own
    signature, so the load generator's shortcut cannot drift from what a card would send.
    Raises RuntimeError if it does not.
    """
    cards = []
    for index in range(count):
        holder = holder_for(index)
        out = directory / f"card-{index + 1:03d}.json"
        issuer.issue_card(holder, pin=CARD_PIN, password=CARD_PASSWORD, out=out, now=now)
        reader = JPKIReader(VirtualCardTransport(out))
        certificate = reader.read_user_certificate()
        ca_certificate = reader.read_user_ca_certificate()
        key_pem = load_card_image(out).user.private_key_pem
        probe = b"bench-rides probe " + secrets.token_bytes(16)
        key = serialization.load_pem_private_key(key_pem, password=None)
        if not isinstance(key, rsa.RSAPrivateKey) or key.sign(
            probe, padding.PKCS1v15(), hashes.SHA256()
        ) != reader.sign_with_user_key(probe, CARD_PIN):
            raise RuntimeError(f"the key in {out.name} does not sign as the card does")
        cards.append(
            IssuedCardFile(
                path=out,
                holder=holder,
                credentials=CardCredentials(
                    certificate_b64=base64.b64encode(certificate).decode(),
                    chain_b64=(base64.b64encode(ca_certificate).decode(),),
                    private_key_pem=key_pem,
                ),
                certificate_der=certificate,
                ca_certificate_der=ca_certificate,
            )
        )
    return cards


@dataclass(frozen=True)
class SeededTerminal:
    terminal_id: int
    private_key: bytes  # raw Ed25519, 32 bytes


@dataclass(frozen=True)
class SeededCity:
    municipality_id: int
    program_id: int
    terminals: list[SeededTerminal]
    entitlement_ids: list[int]  # one per card, in the order of the cards


def _raw_private(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def _raw_public_b64(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def seed_city(
    session: Session,
    *,
    cards: list[IssuedCardFile],
    terminal_count: int,
    root_pem: bytes,
    grant_amount: int,
    now: datetime,
) -> SeededCity:
    """Create the city, its program, terminals and riders through the services; commits at the end.

    Raises the services' errors (e.g. card.unknown_issuer when `root_pem` is not the cards' root).
    """
    municipality = Municipality(
        code=MUNICIPALITY_CODE,
        name="尾花沢市",
        name_kana="オバナザワシ",
        prefecture="山形県",
        created_at=now,
    )
    session.add(municipality)
    session.flush()
    admin = staff.create_staff(
        session,
        municipality_id=municipality.id,
        username="bench-admin",
        display_name="ベンチ 管理者",
        password=secrets.token_urlsafe(24),
        roles=[StaffRole.ADMIN],
        now=now,
    )
    actor = f"staff:{admin.id}"
    fiscal_year = fiscal_year_of(japan_date(now))
    rules = validate_rules(
        {
            "eligibility": [{"type": "min_age", "years": 75}],
            "subsidy": {"formula": "percent_capped", "percent": 50, "cap_per_ride": 1000},
            "grant": {"unit": "ride", "amount": max(MIN_GRANT, grant_amount)},
            "limits": {},
            "options": {},
        }
    )
    program = Program(
        municipality_id=municipality.id,
        code="bench-elderly",
        name="高齢者おもいやりタクシー（ベンチ）",
        name_en="Elderly taxi subsidy (benchmark)",
        fiscal_year=fiscal_year,
        valid_from=date(fiscal_year, 4, 1),
        valid_to=date(fiscal_year + 1, 3, 31),
        created_at=now,
        **rules,
    )
    session.add(program)
    operator = Operator(
        municipality_id=municipality.id,
        code="BENCH",
        name="尾花沢ベンチ交通株式会社",
        name_kana="オバナザワベンチコウツウ(カ",
        bank_code="0001",
        branch_code="001",
        account_type="ordinary",
        account_number="1234567",
        account_holder_kana="オバナザワベンチコウツウ(カ",
        created_at=now,
    )
    session.add(operator)
    session.flush()

    seeded_terminals = []
    for index in range(terminal_count):
        vehicle = Vehicle(
            operator_id=operator.id, registration=f"山形 500 べ {index + 1:04d}", label=f"{index + 1}号車"
        )
        session.add(vehicle)
        session.flush()
        created = terminals.create_terminal(
            session,
            vehicle_id=vehicle.id,
            municipality_id=municipality.id,
            actor=actor,
            now=now,
            ttl=timedelta(hours=1),
        )
        key = Ed25519PrivateKey.generate()
        terminals.enrol(session, code=created.enrolment_code, public_key_b64=_raw_public_b64(key), now=now)
        seeded_terminals.append(SeededTerminal(created.terminal.id, _raw_private(key)))

    verifier = identity.CardVerifier.from_pem(root_pem)
    entitlement_ids = []
    for card in cards:
        holder = card.holder
        resident = Resident(
            municipality_id=municipality.id,
            registry_id=holder.registry_id,
            household_id=f"H{holder.registry_id[-6:]}",
            family_name=holder.family_name,
            given_name=holder.given_name,
            family_name_kana=holder.family_name_kana,
            given_name_kana=holder.given_name_kana,
            sex=holder.sex,
            birth_date=holder.birth_date,
            address=holder.address,
            car_licence="returned",
            disability_certificates=[],
            status=ResidentStatus.RESIDENT,
            synced_at=now,
        )
        session.add(resident)
        session.flush()
        entitlement = entitlements.grant(
            session, resident_id=resident.id, program=program, application_id=None, actor=actor, now=now
        )
        verified = verifier.verify_certificate(card.certificate_der, [card.ca_certificate_der], now)
        identity.bind_card(
            session,
            resident_id=resident.id,
            municipality_id=municipality.id,
            card=verified,
            method=BindingMethod.PIN_SIGNATURE,
            staff_id=admin.id,
            now=now,
        )
        entitlement_ids.append(entitlement.id)
    session.commit()
    return SeededCity(municipality.id, program.id, seeded_terminals, entitlement_ids)
