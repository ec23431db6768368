"""The reader bridge: the counter PC's card-reader agent as a small local HTTP service (DESIGN §5).

The staff pages run in a browser, which cannot talk to a card reader. On a real counter PC a local agent
does that; this is its stand-in. It listens on 127.0.0.1 only and answers the staff page's origin only
(CORS for that origin, and any request that carries another `Origin` is refused, so no other web site
can drive the card). The PIN and the password travel from the page to this service and from here only
to the card: they are never logged, stored, or echoed back.

    GET  /reader                      which card is on the reader, whether it has a PIN, tries left
    GET  /reader/cards                (mock) the card files that can be put on the reader
    POST /reader/insert {card}        (mock) put one of them on the reader
    POST /reader/eject                (mock) take the card off
    GET  /card/user-certificate       user-authentication certificate and its CA (no PIN)
    GET  /card/pin-status             {has_user_pin, tries_left}: costs no try
    POST /card/user-signature         {message, pin} -> {signature}: the challenge signed with the PIN
    POST /card/signature-certificate  {password} -> the signature certificate (four facts) and its CA
    POST /card/signature              {message, password} -> {signature} by the signature key
    POST /card/reset-pin              {new_pin?}: the counter unlocks a locked PIN (through the card)
    POST /card/reset-password         {new_password?}: the counter unlocks the signature password

`message` is base64 of the exact bytes the API handed out with its challenge; certificates and
signatures are base64 DER. Errors are RFC 9457 problem details with a stable `code`: card.absent,
pin.wrong (with tries_left), pin.locked, pin.malformed, password.wrong, password.locked,
password.malformed, card.no_pin (face-recognition card), card.no_signature_certificate, card.error,
reader.unavailable, origin.forbidden, request.malformed, card.unknown.

Only the JPKI applet is ever selected: every card operation goes through auth_mock.reader.JPKIReader.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from flask import Flask, Response, json, request

from auth_mock.card import CardFileError, VirtualCard
from auth_mock.reader import (
    CardAbsent,
    CardError,
    JPKIReader,
    NoSignatureCertificate,
    NoUserPin,
    PinIncorrect,
    PinLocked,
    Transport,
    TransportError,
    VirtualCardTransport,
)

MAX_MESSAGE_BYTES: Final = 1024
_CARD_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,120}")

# (Japanese, English): what the clerk and the resident read.
MESSAGES: Final[dict[str, tuple[str, str]]] = {
    "card.absent": (
        "カードがリーダーに置かれていません。カードをリーダーに置いてください。",
        "No card on the reader. Please place the card on the reader.",
    ),
    "card.unknown": ("そのカードは見つかりません。", "No such card."),
    "pin.wrong": (
        "暗証番号が違います。あと{tries_left}回間違えるとロックされます。",
        "Wrong PIN. {tries_left} tries left before it locks.",
    ),
    "pin.locked": (
        "暗証番号がロックされています。窓口で暗証番号を再設定できます。",
        "The PIN is locked. It can be reset at the counter.",
    ),
    "pin.malformed": ("暗証番号は数字4桁です。", "The PIN is 4 digits."),
    "password.wrong": (
        "署名用パスワードが違います。あと{tries_left}回間違えるとロックされます。",
        "Wrong signature password. {tries_left} tries left before it locks.",
    ),
    "password.locked": (
        "署名用パスワードがロックされています。窓口で再設定できます。",
        "The signature password is locked. It can be reset at the counter.",
    ),
    "password.malformed": (
        "署名用パスワードは英大文字と数字の6〜16文字です。",
        "The signature password is 6 to 16 capital letters and digits.",
    ),
    "card.no_pin": (
        "顔認証マイナンバーカードです(暗証番号がありません)。職員が本人確認をします。",
        "A face-recognition card (no PIN). Staff check the holder in person.",
    ),
    "card.no_signature_certificate": (
        "このカードには署名用電子証明書がありません。職員が本人確認をします。",
        "This card has no signature certificate. Staff check the holder in person.",
    ),
    "card.error": (
        "カードを読み取れませんでした。カードを置き直してください。",
        "The card could not be read. Please place it again.",
    ),
    "reader.unavailable": (
        "カードリーダーを使えません。接続を確かめてください。",
        "The card reader is not available.",
    ),
    "origin.forbidden": ("この画面からは使えません。", "Not allowed from this page."),
    "request.malformed": ("リクエストの形式が正しくありません。", "The request is malformed."),
}


class BridgeProblem(Exception):
    """A refusal the bridge reports as problem JSON."""

    def __init__(self, status: int, code: str, **params: Any) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.params = params


class ReaderSlot:
    """The mock's card reader: empty, or holding one virtual card file.

    `card_dir` holds the card files that can be put on the reader (by file name); `insert` also accepts
    a path anywhere, for tests and demos that make their own cards. Thread-safe.
    """

    def __init__(self, card_dir: Path | None = None, card: Path | None = None) -> None:
        self.card_dir = Path(card_dir) if card_dir is not None else None
        self._card = Path(card) if card is not None else None
        self._lock = threading.Lock()

    def available(self) -> list[str]:
        """The names of the card files in `card_dir` (none without a directory)."""
        if self.card_dir is None or not self.card_dir.is_dir():
            return []
        return sorted(p.name for p in self.card_dir.glob("*.json") if p.is_file() and p.name != "index.json")

    def insert(self, card: str | Path) -> Path:
        """Put a card on the reader: a file name from `card_dir`, or a path. Raises LookupError."""
        path = Path(card)
        if not path.is_absolute():
            name = str(card)
            if self.card_dir is None or not _CARD_NAME.fullmatch(name) or name not in self.available():
                raise LookupError(name)
            path = self.card_dir / name
        if not path.is_file():
            raise LookupError(str(card))
        with self._lock:
            self._card = path
        return path

    def eject(self) -> None:
        with self._lock:
            self._card = None

    @property
    def card(self) -> Path | None:
        with self._lock:
            return self._card

    def transport(self) -> Transport:
        """A fresh card session with the card on the reader; raises CardAbsent when there is none."""
        card = self.card
        if card is None:
            raise CardAbsent()
        return VirtualCardTransport(card)

    def virtual_card(self) -> VirtualCard:
        """The card itself, for the counter's privileged operations (PIN reset)."""
        card = self.card
        if card is None:
            raise CardAbsent()
        try:
            return VirtualCard.load(card)
        except CardFileError as error:
            raise CardAbsent() from error


def _language() -> str:
    best = request.accept_languages.best_match(["ja", "en"], default="ja")
    return best or "ja"


def problem(status: int, code: str, **params: Any) -> Response:
    ja, en = MESSAGES.get(code, (code, code))
    text = en if _language() == "en" else ja
    try:
        title = text.format(**params)
    except (KeyError, IndexError, ValueError):
        title = text
    body = {"type": f"https://taxi-vouchers.example/problems/{code}", "title": title, "status": status}
    body.update({"code": code, **params})
    return Response(json.dumps(body, ensure_ascii=False), status=status, mimetype="application/problem+json")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if body is None and not request.get_data():
        return {}
    if not isinstance(body, dict):
        raise BridgeProblem(400, "request.malformed")
    return body


def _message(body: dict[str, Any]) -> bytes:
    value = body.get("message")
    if not isinstance(value, str) or len(value) > MAX_MESSAGE_BYTES * 2:
        raise BridgeProblem(400, "request.malformed")
    try:
        message = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as error:
        raise BridgeProblem(400, "request.malformed") from error
    if not message or len(message) > MAX_MESSAGE_BYTES:
        raise BridgeProblem(400, "request.malformed")
    return message


def _secret(body: dict[str, Any], name: str, code: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value or len(value) > 16:
        raise BridgeProblem(400, code)
    return value


def create_bridge_app(
    slot: ReaderSlot | Path | None = None,
    *,
    allowed_origin: str | None = None,
    transport_factory: Callable[[], Transport] | None = None,
) -> Flask:
    """The bridge as a WSGI app.

    `slot` is the mock reader (a ReaderSlot, or a directory of card files to build one over);
    `allowed_origin` is the staff page's origin (e.g. http://127.0.0.1:8000), the only one answered;
    `transport_factory` replaces the mock reader with another transport (a PC/SC reader), in which case
    the mock-only endpoints (cards, insert, eject, resets) report reader.unavailable.
    """
    reader_slot = slot if isinstance(slot, ReaderSlot) else ReaderSlot(slot)
    open_transport = transport_factory or reader_slot.transport
    card_lock = threading.RLock()  # one card, one operation at a time
    app = Flask("auth_mock.bridge")
    app.config["MAX_CONTENT_LENGTH"] = 16 * 1024
    app.extensions["reader_slot"] = reader_slot

    @contextmanager
    def card() -> Iterator[JPKIReader]:
        """A card session; the driver's exceptions become problems with stable codes."""
        with card_lock:
            try:
                transport = open_transport()
                yield JPKIReader(transport)
            except CardAbsent as error:
                raise BridgeProblem(409, "card.absent") from error
            except NoUserPin as error:
                raise BridgeProblem(422, "card.no_pin") from error
            except NoSignatureCertificate as error:
                raise BridgeProblem(422, "card.no_signature_certificate") from error
            except PinLocked as error:
                code = "password.locked" if error.credential == "signature_password" else "pin.locked"
                raise BridgeProblem(423, code, tries_left=0) from error
            except PinIncorrect as error:
                code = "password.wrong" if error.credential == "signature_password" else "pin.wrong"
                raise BridgeProblem(422, code, tries_left=error.tries_left) from error
            except CardError as error:
                raise BridgeProblem(502, "card.error", sw=f"{error.sw:04X}") from error
            except TransportError as error:
                raise BridgeProblem(503, "reader.unavailable") from error

    def mock_slot() -> ReaderSlot:
        if transport_factory is not None:
            raise BridgeProblem(503, "reader.unavailable")
        return reader_slot

    @app.before_request
    def _origin_check() -> Response | None:
        origin = request.headers.get("Origin")
        if origin is not None and origin != allowed_origin:
            return problem(403, "origin.forbidden")
        if request.method == "OPTIONS":
            return Response(status=204)
        return None

    @app.after_request
    def _cors(response: Response) -> Response:
        origin = request.headers.get("Origin")
        if origin is not None and origin == allowed_origin:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = "Content-Type, Accept-Language"
            response.headers["Access-Control-Max-Age"] = "600"
            if request.headers.get("Access-Control-Request-Private-Network") == "true":
                response.headers["Access-Control-Allow-Private-Network"] = "true"
        response.headers["Vary"] = "Origin"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(BridgeProblem)
    def _problem(error: BridgeProblem) -> Response:
        return problem(error.status, error.code, **error.params)

    @app.errorhandler(404)
    def _not_found(_error: Exception) -> Response:
        return problem(404, "request.malformed")

    @app.errorhandler(405)
    def _not_allowed(_error: Exception) -> Response:
        return problem(405, "request.malformed")

    @app.errorhandler(413)
    def _too_large(_error: Exception) -> Response:
        return problem(413, "request.malformed")

    @app.get("/reader")
    def reader_status() -> Any:
        status: dict[str, Any] = {
            "card_present": False,
            "card": None,
            "has_user_pin": None,
            "user_pin_tries_left": None,
        }
        if transport_factory is None:
            present = reader_slot.card
            status["card"] = present.name if present is not None else None
        try:
            with card() as reader:
                reader.read_user_certificate()
                status["card_present"] = True
                status["has_user_pin"] = reader.has_user_pin()
                if status["has_user_pin"]:
                    status["user_pin_tries_left"] = reader.user_pin_tries_left()
        except BridgeProblem as error:
            if error.code != "card.absent":
                raise
            status["card"] = None
        return status

    @app.get("/reader/cards")
    def reader_cards() -> Any:
        return {"cards": mock_slot().available()}

    @app.post("/reader/insert")
    def reader_insert() -> Any:
        name = _body().get("card")
        if not isinstance(name, str) or not name:
            raise BridgeProblem(400, "request.malformed")
        slot_ = mock_slot()
        # Only names from the card directory: a page must not point the reader at arbitrary paths.
        if name not in slot_.available():
            raise BridgeProblem(404, "card.unknown")
        try:
            inserted = slot_.insert(name)
        except LookupError as error:
            raise BridgeProblem(404, "card.unknown") from error
        return {"card_present": True, "card": inserted.name}

    @app.post("/reader/eject")
    def reader_eject() -> Any:
        mock_slot().eject()
        return {"card_present": False, "card": None}

    @app.get("/card/user-certificate")
    def user_certificate() -> Any:
        with card() as reader:
            certificate = reader.read_user_certificate()
            chain = [reader.read_user_ca_certificate()]
        return {"certificate": _b64(certificate), "chain": [_b64(c) for c in chain]}

    @app.get("/card/pin-status")
    def pin_status() -> Any:
        with card() as reader:
            if not reader.has_user_pin():
                return {"has_user_pin": False, "tries_left": None}
            return {"has_user_pin": True, "tries_left": reader.user_pin_tries_left()}

    @app.post("/card/user-signature")
    def user_signature() -> Any:
        body = _body()
        message = _message(body)
        pin = _secret(body, "pin", "pin.malformed")
        if len(pin) != 4 or not pin.isascii() or not pin.isdigit():
            raise BridgeProblem(400, "pin.malformed")
        with card() as reader:
            signature = reader.sign_with_user_key(message, pin)
        return {"signature": _b64(signature)}

    def _password(body: dict[str, Any]) -> str:
        password = _secret(body, "password", "password.malformed").upper()
        if not re.fullmatch(r"[A-Z0-9]{6,16}", password):
            raise BridgeProblem(400, "password.malformed")
        return password

    @app.post("/card/signature-certificate")
    def signature_certificate() -> Any:
        password = _password(_body())
        with card() as reader:
            certificate = reader.read_signature_certificate(password)
            chain = [reader.read_signature_ca_certificate()]
        return {"certificate": _b64(certificate), "chain": [_b64(c) for c in chain]}

    @app.post("/card/signature")
    def signature() -> Any:
        body = _body()
        message = _message(body)
        password = _password(body)
        with card() as reader:
            signed = reader.sign_with_signature_key(message, password)
        return {"signature": _b64(signed)}

    @app.post("/card/reset-pin")
    def reset_pin() -> Any:
        new_pin = _body().get("new_pin")
        if new_pin is not None and (
            not isinstance(new_pin, str)
            or len(new_pin) != 4
            or not new_pin.isascii()
            or not new_pin.isdigit()
        ):
            raise BridgeProblem(400, "pin.malformed")
        slot_ = mock_slot()
        with card_lock:
            virtual = _load(slot_)
            try:
                virtual.reset_user_pin(new_pin)
            except ValueError as error:
                raise BridgeProblem(422, "card.no_pin") from error
            tries_left = virtual.user_pin_tries_left
        return {"has_user_pin": True, "tries_left": tries_left}

    @app.post("/card/reset-password")
    def reset_password() -> Any:
        new_password = _body().get("new_password")
        if new_password is not None:
            if not isinstance(new_password, str) or not re.fullmatch(r"[A-Z0-9]{6,16}", new_password.upper()):
                raise BridgeProblem(400, "password.malformed")
            new_password = new_password.upper()
        slot_ = mock_slot()
        with card_lock:
            virtual = _load(slot_)
            try:
                virtual.reset_signature_password(new_password)
            except ValueError as error:
                raise BridgeProblem(422, "card.no_signature_certificate") from error
            tries_left = virtual.signature_password_tries_left
        return {"tries_left": tries_left}

    return app


def _load(slot: ReaderSlot) -> VirtualCard:
    try:
        return slot.virtual_card()
    except CardAbsent as error:
        raise BridgeProblem(409, "card.absent") from error
