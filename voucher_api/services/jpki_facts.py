"""The four facts (基本4情報) of a JPKI signature certificate, read by the relying party.

They sit in subjectAltName otherName entries under 1.2.392.200149.8.5.5.1–6, each a DER UTF8String:
name, name alternative, sex (ISO/IEC 5218 code), birth date (YYYYMMDD), address, address alternative.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from cryptography import x509

OID_PREFIX = "1.2.392.200149.8.5.5."
FIELDS = {
    "1": "name",
    "2": "name_alternative",
    "3": "sex",
    "4": "birth_date",
    "5": "address",
    "6": "address_alternative",
}
SEX_CODES = {"1": "male", "2": "female", "9": "other"}


@dataclass(frozen=True)
class FourFacts:
    name: str
    sex: str
    birth_date: date
    address: str


def _utf8_string(der: bytes) -> str:
    if len(der) < 2 or der[0] != 0x0C:
        raise ValueError("not a UTF8String")
    length, offset = der[1], 2
    if length & 0x80:
        count = length & 0x7F
        length, offset = int.from_bytes(der[2 : 2 + count], "big"), 2 + count
    value = der[offset : offset + length]
    if len(value) != length:
        raise ValueError("truncated UTF8String")
    return value.decode("utf-8")


def read_four_facts(certificate: x509.Certificate) -> FourFacts:
    """Decode the facts; ValueError when the certificate is not a signature certificate."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as exc:
        raise ValueError("no subjectAltName: not a signature certificate") from exc
    values: dict[str, str] = {}
    for other in san.get_values_for_type(x509.OtherName):
        oid = other.type_id.dotted_string
        if oid.startswith(OID_PREFIX) and oid[len(OID_PREFIX) :] in FIELDS:
            values[FIELDS[oid[len(OID_PREFIX) :]]] = _utf8_string(other.value)
    try:
        born = values["birth_date"]
        return FourFacts(
            name=values["name"],
            sex=SEX_CODES[values["sex"]],
            birth_date=date(int(born[0:4]), int(born[4:6]), int(born[6:8])),
            address=values["address"],
        )
    except (KeyError, ValueError) as exc:
        raise ValueError("the four facts are incomplete") from exc
