"""bench/identity: how close a full card check comes to a bare RSA-2048 verification.

A card check is what the API does at every boarding: the certificate's chain (cached after the first
time), its validity dates, its revocation status (from the cache the OCSP answer filled), and the card's
PKCS#1 v1.5 signature over a fresh challenge. The floor is `public_key.verify(...)` alone, on the same
signatures, in the same process, interleaved in rounds so both see the same machine.

    .venv/bin/python -m bench.identity [--seconds 6] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import secrets
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from auth_mock.issuer import CardHolder, Issuer
from auth_mock.issuer_http import create_issuer_app
from auth_mock.reader import JPKIReader, VirtualCardTransport
from voucher_api.services.identity import CardVerifier
from voucher_api.services.revocation import OcspCrlChecker

PIN = "2580"
PASSWORD = "BENCH2026"  # a throwaway mock card made for this run
NOW = datetime(2026, 10, 15, 1, 0, tzinfo=UTC)


def rate(work: Callable[[int], None], seconds: float) -> float:
    """Calls per second of `work(i)` over about `seconds`."""
    done, start = 0, time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        for _ in range(200):
            work(done)
            done += 1
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=6.0, help="per measurement and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--signatures", type=int, default=256)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        issuer = Issuer.create(
            Path(tmp) / "issuer", base_url="http://127.0.0.1:9", now=datetime(2026, 4, 1, tzinfo=UTC)
        )
        holder = CardHolder(
            "尾花沢",
            "花子",
            "オバナザワ",
            "ハナコ",
            "female",
            date(1945, 6, 1),
            "山形県尾花沢市",
            "062120",
            "062120-0000001",
        )
        card_path = Path(tmp) / "card.json"
        issuer.issue_card(
            holder, pin=PIN, password=PASSWORD, out=card_path, now=datetime(2026, 4, 1, tzinfo=UTC)
        )
        reader = JPKIReader(VirtualCardTransport(card_path))
        certificate, chain = reader.read_user_certificate(), (reader.read_user_ca_certificate(),)
        messages = [secrets.token_bytes(64) for _ in range(args.signatures)]
        signatures = [reader.sign_with_user_key(m, PIN) for m in messages]

        issuer_app = create_issuer_app(issuer, clock=lambda: NOW)
        checker = OcspCrlChecker(httpx.Client(transport=httpx.WSGITransport(app=issuer_app)))
        verifier = CardVerifier.from_pem(issuer.root_certificate_pem_path.read_bytes(), checker)
        card = verifier.verify_certificate(certificate, chain, NOW)  # warms the chain and revocation caches
        public_key = card.public_key
        n = len(messages)

        def card_check(i: int) -> None:
            checked = verifier.verify_certificate(certificate, chain, NOW)
            verifier.verify_signature(checked, messages[i % n], signatures[i % n])

        def bare_verify(i: int) -> None:
            public_key.verify(signatures[i % n], messages[i % n], padding.PKCS1v15(), hashes.SHA256())

        cards, bares = [], []
        for _ in range(args.rounds):
            bares.append(rate(bare_verify, args.seconds))
            cards.append(rate(card_check, args.seconds))

    card_rate, bare_rate = max(cards), max(bares)
    print(
        f"bench/identity: {os.cpu_count()} cores, {args.rounds} rounds of {args.seconds:.0f} s, best of each"
    )
    print(f"  card checks (chain cached + dates + revocation cached + signature): {card_rate:10,.0f} /s")
    print(f"  bare RSA-2048 PKCS#1 v1.5 verifications (floor):                    {bare_rate:10,.0f} /s")
    print(f"  ratio card/bare: {card_rate / bare_rate:.2f}")


if __name__ == "__main__":
    main()
