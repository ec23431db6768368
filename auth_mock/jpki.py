"""Constants of the JPKI applet that the virtual card and the host-side driver share (DESIGN §5).

Only the JPKI applet is named here. The card's other applets are deliberately absent: the project
never selects them, and the virtual card does not have them.
"""

from __future__ import annotations

from typing import Final

JPKI_AID: Final = bytes.fromhex("D392F000260100000001")

# Elementary files inside the JPKI applet.
EF_TOKEN_INFO: Final = 0x0006
EF_USER_CERTIFICATE: Final = 0x000A
EF_USER_CA_CERTIFICATE: Final = 0x000B
EF_USER_KEY: Final = 0x0017
EF_USER_PIN: Final = 0x0018
EF_SIGNATURE_CERTIFICATE: Final = 0x0001
EF_SIGNATURE_CA_CERTIFICATE: Final = 0x0002
EF_SIGNATURE_KEY: Final = 0x001A
EF_SIGNATURE_PASSWORD: Final = 0x001B

USER_PIN_MAX_TRIES: Final = 3
SIGNATURE_PASSWORD_MAX_TRIES: Final = 5

# What the token-info EF holds on a real card: an ASCII label padded with spaces to 32 bytes.
TOKEN_INFO: Final = b"JPKIAPICCTOKEN2".ljust(32, b" ")

# Instruction bytes.
CLA_ISO: Final = 0x00
CLA_PROPRIETARY: Final = 0x80
INS_SELECT: Final = 0xA4
INS_READ_BINARY: Final = 0xB0
INS_VERIFY: Final = 0x20
INS_COMPUTE_SIGNATURE: Final = 0x2A
INS_GET_RESPONSE: Final = 0xC0

# Status words.
SW_OK: Final = 0x9000
SW_WRONG_LENGTH: Final = 0x6700
SW_FILE_STRUCTURE_MISMATCH: Final = 0x6981
SW_SECURITY_STATUS_NOT_SATISFIED: Final = 0x6982
SW_AUTHENTICATION_BLOCKED: Final = 0x6984
SW_NO_CURRENT_EF: Final = 0x6986
SW_FILE_NOT_FOUND: Final = 0x6A82
SW_WRONG_P1_P2: Final = 0x6A86
SW_OFFSET_OUT_OF_FILE: Final = 0x6B00
SW_INS_NOT_SUPPORTED: Final = 0x6D00
SW_CLA_NOT_SUPPORTED: Final = 0x6E00
SW_TRIES_LEFT_BASE: Final = 0x63C0

# DER prefix of a DigestInfo for SHA-256: SEQUENCE { SEQUENCE { OID 2.16.840.1.101.3.4.2.1, NULL },
# OCTET STRING (32 bytes) }. The digest follows it.
SHA256_DIGEST_INFO_PREFIX: Final = bytes.fromhex("3031300d060960864801650304020105000420")

RSA_MODULUS_BYTES: Final = 256
