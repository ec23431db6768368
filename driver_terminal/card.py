"""The rider's My Number card, read through auth_mock's host-side JPKI driver.

Only the JPKI applet is ever used: `JPKIReader` selects nothing else, and this module reaches the card
through it alone. Nothing here reads, keeps or sends the individual number; the user-authentication
certificate carries none (its subject is an opaque serial).

The card's own errors become `CardProblem`s with a sentence for the rider in Japanese (or English).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from auth_mock import reader as jpki_reader
from driver_terminal.client import CardProof, Challenge, ChallengePurpose

PIN_LENGTH = 4


class CardReader(Protocol):
    """The part of `auth_mock.reader.JPKIReader` a terminal needs."""

    def read_user_certificate(self) -> bytes: ...

    def read_user_ca_certificate(self) -> bytes: ...

    def has_user_pin(self) -> bool: ...

    def sign_with_user_key(self, message: bytes, pin: str | None = None) -> bytes: ...


def open_virtual_card(path: Path) -> CardReader:
    """A virtual card file in a virtual reader (the development and test stand-in for a real reader)."""
    return jpki_reader.JPKIReader(jpki_reader.VirtualCardTransport(path))


class CardProblem(Exception):
    """The card could not give a proof. `code` is stable; `message(lang)` is for the rider."""

    code = "card.problem"
    ja = "カードを確認できませんでした。"
    en = "The card could not be checked."

    def message(self, lang: str = "ja") -> str:
        return self.en if lang == "en" else self.ja


class CardUnreadable(CardProblem):
    """No card on the reader, taken away too early, or it answered in a way we cannot use."""

    code = "card.unreadable"
    ja = "カードを読み取れませんでした。カードをもう一度しっかりかざしてください。"
    en = "The card could not be read. Please hold it on the reader again."


class PinMalformed(CardProblem):
    """The PIN is not four digits; the card was not asked, so no try was spent."""

    code = "pin.malformed"
    ja = "暗証番号は数字4桁です。"
    en = "The PIN is four digits."


class PinRequired(CardProblem):
    """A boarding needs the PIN unless the program allows a tap."""

    code = "pin.required"
    ja = "暗証番号(数字4桁)を入力してください。"
    en = "Please enter the 4-digit PIN."


class WrongPin(CardProblem):
    """The card refused the PIN; `tries_left` more wrong tries lock it."""

    code = "pin.incorrect"

    def __init__(self, tries_left: int) -> None:
        super().__init__(f"wrong PIN, {tries_left} tries left")
        self.tries_left = tries_left

    def message(self, lang: str = "ja") -> str:
        if lang == "en":
            return f"Wrong PIN. {self.tries_left} more wrong tries will lock it."
        return f"暗証番号が違います。あと{self.tries_left}回間違えるとロックされます。"


class PinLocked(CardProblem):
    """The user PIN is locked; only the city's counter can reset it."""

    code = "pin.locked"
    ja = "暗証番号がロックされています。市役所の窓口で解除してください。"
    en = "The PIN is locked. It can be reset at the city hall counter."


class CardHasNoPin(CardProblem):
    """A face-recognition card: it has no PIN, so it cannot sign a boarding."""

    code = "card.no_pin"
    ja = "このカードには暗証番号がありません(顔認証カード)。市役所の窓口にご相談ください。"
    en = "This card has no PIN (a face-recognition card). Please ask at the city hall counter."


@contextmanager
def _card_errors() -> Iterator[None]:
    """Turn the driver's exceptions into CardProblems (the order matters: subclasses first)."""
    try:
        yield
    except jpki_reader.PinIncorrect as error:
        raise WrongPin(error.tries_left) from error
    except jpki_reader.PinLocked as error:
        raise PinLocked() from error
    except jpki_reader.NoUserPin as error:
        raise CardHasNoPin() from error
    except (jpki_reader.CardError, jpki_reader.TransportError) as error:
        raise CardUnreadable(str(error)) from error


def read_certificates(reader: CardReader) -> CardProof:
    """The certificate part of a proof (no PIN needed). Raises CardUnreadable."""
    with _card_errors():
        return CardProof(
            certificate=reader.read_user_certificate(), chain=(reader.read_user_ca_certificate(),)
        )


def check_pin_format(pin: str) -> None:
    """Refuse a PIN that is not 4 ASCII digits before it reaches the card. Raises PinMalformed."""
    if len(pin) != PIN_LENGTH or not pin.isascii() or not pin.isdigit():
        raise PinMalformed()


def prove_with_pin(
    reader: CardReader, challenge: Challenge, pin: str, *, certificates: CardProof | None = None
) -> CardProof:
    """Sign the challenge's message with the user key after the PIN (DESIGN §5).

    Raises PinMalformed (no try spent), WrongPin(tries_left), PinLocked, CardHasNoPin, CardUnreadable,
    ValueError for a challenge that is not for boarding.
    """
    if challenge.purpose is not ChallengePurpose.BOARD:
        raise ValueError("a terminal signs boarding challenges only")
    check_pin_format(pin)
    base = certificates or read_certificates(reader)
    with _card_errors():
        if not reader.has_user_pin():
            raise CardHasNoPin()
        signature = reader.sign_with_user_key(challenge.message, pin)
    return CardProof(
        certificate=base.certificate, chain=base.chain, nonce=challenge.nonce, signature=signature
    )


def sign_for_offline(reader: CardReader, message: bytes, pin: str) -> bytes:
    """The card's user-key signature over a message the terminal made itself (an offline boarding binds
    the terminal's nonce to its record number; DESIGN §7).

    Raises PinMalformed (no try spent), WrongPin(tries_left), PinLocked, CardHasNoPin, CardUnreadable.
    """
    check_pin_format(pin)
    with _card_errors():
        if not reader.has_user_pin():
            raise CardHasNoPin()
        return reader.sign_with_user_key(message, pin)


def prove_by_tap(reader: CardReader) -> CardProof:
    """A PIN-less tap: the certificate only (the API accepts it only where the program allows).

    Raises CardUnreadable.
    """
    return read_certificates(reader)
