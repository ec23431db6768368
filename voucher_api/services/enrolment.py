"""Enrolment at the counter: who the card belongs to, then the user certificate is bound.

By signature certificate: the card's four facts, authenticated by the password, are matched against the
registry; the user certificate (PIN) is proven over the same challenge and bound. By staff attestation:
for face-recognition cards and forgotten passwords, a staff member vouches after an in-person check and the
user certificate is bound on their word, which is recorded.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from sqlalchemy import select
from sqlalchemy.orm import Session

from voucher_api.models import BindingMethod, CardBinding, Resident, ResidentStatus
from voucher_api.services import audit
from voucher_api.services.errors import NotFound, Refused, Unauthorized
from voucher_api.services.identity import CardProof, CardVerifier, bind_card, consume_challenge
from voucher_api.services.jpki_facts import FourFacts, read_four_facts

ATTESTATION_REASONS = ("face_recognition_card", "forgotten_password", "password_locked")


@dataclass(frozen=True)
class Enrolment:
    resident: Resident
    binding: CardBinding
    facts_checked: tuple[str, ...]


def _fold(text: str) -> str:
    """Compare names and addresses as a clerk would: width-folded, without spaces."""
    return unicodedata.normalize("NFKC", text).replace(" ", "").replace("\u3000", "")


def match_resident(session: Session, municipality_id: int, facts: FourFacts) -> Resident:
    """The registry person the four facts describe.

    Raises NotFound('resident.not_found') when nobody has that name and birth date, and
    Refused('enrolment.facts_mismatch', mismatched=[...]) when the sex or address differ.
    """
    candidates = session.scalars(
        select(Resident).where(
            Resident.municipality_id == municipality_id, Resident.birth_date == facts.birth_date
        )
    ).all()
    named = [r for r in candidates if _fold(r.family_name + r.given_name) == _fold(facts.name)]
    if not named:
        raise NotFound(
            "resident.not_found", detail_ja="カードの氏名・生年月日に一致する住民が見つかりません。"
        )
    mismatched: list[str] = []
    for person in named:
        mismatched = []
        if person.sex != facts.sex:
            mismatched.append("sex")
        if _fold(person.address) != _fold(facts.address):
            mismatched.append("address")
        if not mismatched:
            if person.status is not ResidentStatus.RESIDENT:
                raise Refused("resident.not_resident")
            return person
    raise Refused("enrolment.facts_mismatch", mismatched=mismatched)


def enrol_by_signature_certificate(
    session: Session,
    verifier: CardVerifier,
    *,
    user_proof: CardProof,
    signature_certificate: bytes,
    signature_chain: tuple[bytes, ...],
    signature: bytes,
    municipality_id: int,
    staff_id: int,
    now: datetime,
    replace_existing: bool = False,
) -> Enrolment:
    """Verify both certificates over one staff challenge, match the four facts, bind the user certificate."""
    if user_proof.nonce is None or user_proof.signature is None:
        raise Refused("card.tap_not_allowed")
    message = consume_challenge(
        session,
        verifier.challenge_key,
        nonce=user_proof.nonce,
        purpose="enrol",
        context=f"staff:{staff_id}",
        now=now,
    )
    user_card = verifier.verify_certificate(user_proof.certificate, user_proof.chain, now)
    verifier.verify_signature(user_card, message, user_proof.signature)
    sign_card = verifier.verify_certificate(signature_certificate, signature_chain, now)
    verifier.verify_signature(sign_card, message, signature)
    try:
        facts = read_four_facts(sign_card.certificate)
    except ValueError as exc:
        raise Refused("card.malformed") from exc
    if _issuer_key(sign_card.issuer_certificate) != _issuer_key(user_card.issuer_certificate):
        raise Unauthorized("signature.invalid")  # the two certificates must come from one card's issuer
    resident = match_resident(session, municipality_id, facts)
    binding = bind_card(
        session,
        resident_id=resident.id,
        municipality_id=municipality_id,
        card=user_card,
        method=BindingMethod.SIGNATURE_CERTIFICATE,
        staff_id=staff_id,
        now=now,
        replace_existing=replace_existing,
    )
    return Enrolment(resident, binding, ("name", "birth_date", "sex", "address"))


def enrol_by_staff_attestation(
    session: Session,
    verifier: CardVerifier,
    *,
    resident_id: int,
    certificate: bytes,
    chain: tuple[bytes, ...],
    reason: str,
    municipality_id: int,
    staff_id: int,
    now: datetime,
    replace_existing: bool = False,
) -> Enrolment:
    """Bind a card on a staff member's in-person check (recorded with who, why and when)."""
    if reason not in ATTESTATION_REASONS:
        raise Refused("validation", field="reason")
    card = verifier.verify_certificate(certificate, chain, now)
    binding = bind_card(
        session,
        resident_id=resident_id,
        municipality_id=municipality_id,
        card=card,
        method=BindingMethod.STAFF_ATTESTED,
        staff_id=staff_id,
        now=now,
        replace_existing=replace_existing,
    )
    audit.record(
        session,
        at=now,
        actor=f"staff:{staff_id}",
        action="card.attested",
        entity_type="card_binding",
        entity_id=binding.id,
        municipality_id=municipality_id,
        details={"resident_id": resident_id, "reason": reason},
    )
    resident = session.get(Resident, resident_id)
    assert resident is not None  # bind_card checked it
    return Enrolment(resident, binding, ())


def _issuer_key(cert: x509.Certificate) -> bytes:
    return cert.subject.public_bytes()
