"""The host-side JPKI driver: one code path for the virtual card and for a real card over PC/SC.

`JPKIReader(transport)` speaks the APDUs of DESIGN §5 over any `Transport` (anything with
`transmit(apdu: bytes) -> bytes` returning response data followed by SW1 SW2):

- `VirtualCardTransport(path)` puts a virtual card file in a virtual reader;
- `PcscTransport(reader_name=None)` talks to a real reader through pyscard (optional extra `pcsc`).

Card answers that are not success become exceptions: `PinIncorrect(tries_left)`, `PinLocked`,
`SecurityStatusNotSatisfied`, `FileNotFound` (and `NoUserPin` / `NoSignatureCertificate` for
cards without those files), all subclasses of `CardError(sw)`. Transport problems are
`TransportError` subclasses: `CardAbsent`, `ReaderNotFound`, `PcscUnavailable`.

The driver only ever selects the JPKI applet; it has no way to select any other applet.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import re
from pathlib import Path
from types import ModuleType
from typing import Any, Final, Protocol

from auth_mock import jpki
from auth_mock.card import CardFileError, CardRemoved, VirtualCard

_READ_CHUNK: Final = 256
_MAX_FILE_SIZE: Final = 0x7FFF


class Transport(Protocol):
    """A card in a reader: sends one command APDU, returns response data followed by SW1 SW2."""

    def transmit(self, apdu: bytes) -> bytes: ...


# -- errors -------------------------------------------------------------------------------------


class TransportError(Exception):
    """The reader could not exchange APDUs with a card."""


class CardAbsent(TransportError):
    """No card in the reader, or the card was taken out during the operation."""

    def __init__(self, message: str = "カードがリーダーに置かれていません") -> None:
        super().__init__(message)


class ReaderNotFound(TransportError):
    """No PC/SC reader (or none with the requested name) is connected."""


class PcscUnavailable(TransportError):
    """pyscard, the PC/SC binding, is not installed."""


class CardError(Exception):
    """The card answered with a status word other than 9000."""

    def __init__(self, sw: int, message: str | None = None) -> None:
        self.sw = sw
        super().__init__(message or f"カードがエラーを返しました (SW={sw:04X})")


class PinIncorrect(CardError):
    """A wrong PIN or password; `tries_left` more tries before it locks (at least 1)."""

    def __init__(self, tries_left: int, *, credential: str = "user_pin", sw: int | None = None) -> None:
        self.tries_left = tries_left
        self.credential = credential
        label = _CREDENTIAL_LABELS.get(credential, "暗証番号")
        super().__init__(
            sw if sw is not None else jpki.SW_TRIES_LEFT_BASE | tries_left,
            f"{label}が違います。あと{tries_left}回間違えるとロックされます",
        )


class PinLocked(CardError):
    """The PIN or password is locked (its counter is 0): only the city's counter can reset it.

    `sw` is 63C0 when this very try locked it, 6984 when it was locked already.
    """

    def __init__(self, *, credential: str = "user_pin", sw: int = jpki.SW_AUTHENTICATION_BLOCKED) -> None:
        self.credential = credential
        self.tries_left = 0
        label = _CREDENTIAL_LABELS.get(credential, "暗証番号")
        super().__init__(sw, f"{label}がロックされています。市役所の窓口で解除してください")


class SecurityStatusNotSatisfied(CardError):
    """The operation needs a PIN or password that was not verified in this session (6982)."""

    def __init__(self, sw: int = jpki.SW_SECURITY_STATUS_NOT_SATISFIED, message: str | None = None) -> None:
        super().__init__(sw, message or "暗証番号の入力が必要な操作です")


class FileNotFound(CardError):
    """The card has no such file or applet (6A82)."""

    def __init__(self, sw: int = jpki.SW_FILE_NOT_FOUND, message: str | None = None) -> None:
        super().__init__(sw, message or "カードに該当するファイルがありません")


class NoUserPin(FileNotFound):
    """The card has no user-authentication PIN (a face-recognition card)."""

    def __init__(self) -> None:
        super().__init__(message="このカードには暗証番号が設定されていません（顔認証マイナンバーカード）")


class NoSignatureCertificate(FileNotFound):
    """The card carries no signature certificate (a face-recognition card)."""

    def __init__(self) -> None:
        super().__init__(message="このカードには署名用電子証明書が搭載されていません")


_CREDENTIAL_LABELS: Final = {
    "user_pin": "利用者証明用暗証番号",
    "signature_password": "署名用電子証明書の暗証番号",
}


def raise_for_status(sw: int, *, credential: str | None = None) -> None:
    """Turn a status word into the matching exception; returns only for 9000."""
    if sw == jpki.SW_OK:
        return
    if sw & 0xFFF0 == jpki.SW_TRIES_LEFT_BASE and credential is not None:
        tries_left = sw & 0x000F
        if tries_left == 0:
            raise PinLocked(credential=credential, sw=sw)
        raise PinIncorrect(tries_left, credential=credential, sw=sw)
    if sw == jpki.SW_AUTHENTICATION_BLOCKED:
        raise PinLocked(credential=credential or "user_pin", sw=sw)
    if sw == jpki.SW_SECURITY_STATUS_NOT_SATISFIED:
        raise SecurityStatusNotSatisfied(sw)
    if sw == jpki.SW_FILE_NOT_FOUND:
        raise FileNotFound(sw)
    raise CardError(sw)


# -- transports ---------------------------------------------------------------------------------


class VirtualCardTransport:
    """A virtual reader holding the card file at `path` (loaded at the first APDU)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._card: VirtualCard | None = None

    def transmit(self, apdu: bytes) -> bytes:
        """Send one APDU; raises CardAbsent when the card file is missing or unreadable."""
        try:
            if self._card is None:
                self._card = VirtualCard.load(self.path)
            return self._card.transmit(apdu)
        except CardRemoved as error:
            self._card = None
            raise CardAbsent() from error
        except CardFileError as error:
            self._card = None
            raise CardAbsent(f"カードを読み取れません: {error}") from error

    def reset(self) -> None:
        """Take the card out and put it back: the next APDU starts a fresh card session."""
        self._card = None

    def close(self) -> None:
        self._card = None


def _import_pyscard() -> tuple[ModuleType, ModuleType]:
    try:
        system = importlib.import_module("smartcard.System")
        exceptions = importlib.import_module("smartcard.Exceptions")
    except ImportError as error:
        raise PcscUnavailable(
            "PC/SC を使うには pyscard が必要です: pip install 'taxi-vouchers[pcsc]'"
        ) from error
    return system, exceptions


class PcscTransport:
    """A real contact or contactless reader through PC/SC (pyscard, imported only when used).

    `reader_name` picks a reader whose name equals or contains it; None takes the first reader.
    Raises PcscUnavailable at construction if pyscard is not installed. The connection opens at the
    first APDU; T=0 answers (61xx, 6Cxx) are completed here so the driver only sees final answers.
    """

    def __init__(self, reader_name: str | None = None) -> None:
        self.reader_name = reader_name
        self._system, self._exceptions = _import_pyscard()
        self._connection: Any = None

    def _reader(self) -> Any:
        readers = list(self._system.readers())
        if not readers:
            raise ReaderNotFound("カードリーダーが接続されていません")
        if self.reader_name is None:
            return readers[0]
        for reader in readers:
            if str(reader) == self.reader_name:
                return reader
        for reader in readers:
            if self.reader_name in str(reader):
                return reader
        raise ReaderNotFound(f"カードリーダー「{self.reader_name}」が見つかりません")

    def _connect(self) -> Any:
        if self._connection is None:
            connection = self._reader().createConnection()
            try:
                connection.connect()
            except self._exceptions.NoCardException as error:
                raise CardAbsent() from error
            except self._exceptions.CardConnectionException as error:
                raise CardAbsent(f"カードに接続できません: {error}") from error
            self._connection = connection
        return self._connection

    def _exchange(self, apdu: bytes) -> tuple[bytes, int, int]:
        connection = self._connect()
        try:
            data, sw1, sw2 = connection.transmit(list(apdu))
        except self._exceptions.CardConnectionException as error:
            self.close()
            raise CardAbsent(f"カードとの通信が途切れました: {error}") from error
        return bytes(data), int(sw1), int(sw2)

    def transmit(self, apdu: bytes) -> bytes:
        data, sw1, sw2 = self._exchange(apdu)
        if sw1 == 0x6C and len(apdu) >= 5:  # wrong Le: the card says how many bytes it has
            data, sw1, sw2 = self._exchange(bytes(apdu[:-1]) + bytes([sw2]))
        collected = data
        while sw1 == 0x61:  # more response bytes waiting (T=0)
            data, sw1, sw2 = self._exchange(bytes([jpki.CLA_ISO, jpki.INS_GET_RESPONSE, 0, 0, sw2]))
            collected += data
        return collected + bytes([sw1, sw2])

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            # The card may be gone already; then there is nothing left to release.
            with contextlib.suppress(self._exceptions.CardConnectionException):
                connection.disconnect()


# -- the driver ---------------------------------------------------------------------------------


_SIGNATURE_PASSWORD = re.compile(r"[A-Z0-9]{6,16}")


def sha256_digest_info(message: bytes) -> bytes:
    """The DER DigestInfo of SHA-256(message), which the card pads and signs (PKCS#1 v1.5)."""
    return jpki.SHA256_DIGEST_INFO_PREFIX + hashlib.sha256(message).digest()


class JPKIReader:
    """Reads certificates and makes signatures with the JPKI applet of a My Number card.

    The applet is selected at the first operation; `select_applet()` starts a new session, which
    forgets every PIN verified so far.
    """

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self._applet_selected = False

    # -- low level --

    def _send(self, apdu: bytes) -> tuple[bytes, int]:
        response = self.transport.transmit(apdu)
        if len(response) < 2:
            raise TransportError("カードの応答が短すぎます")
        return response[:-2], int.from_bytes(response[-2:], "big")

    def select_applet(self) -> None:
        """Select the JPKI applet (a new card session); raises FileNotFound if the card lacks it."""
        _, sw = self._send(bytes([0x00, jpki.INS_SELECT, 0x04, 0x0C, len(jpki.JPKI_AID)]) + jpki.JPKI_AID)
        self._applet_selected = False
        raise_for_status(sw)
        self._applet_selected = True

    def _ensure_applet(self) -> None:
        if not self._applet_selected:
            self.select_applet()

    def _select_ef(self, fid: int) -> int:
        self._ensure_applet()
        _, sw = self._send(bytes([0x00, jpki.INS_SELECT, 0x02, 0x0C, 0x02]) + fid.to_bytes(2, "big"))
        return sw

    def _select_ef_or_raise(self, fid: int) -> None:
        raise_for_status(self._select_ef(fid))

    def _read_binary(self, offset: int, length: int) -> tuple[bytes, int]:
        return self._send(
            bytes([0x00, jpki.INS_READ_BINARY, (offset >> 8) & 0x7F, offset & 0xFF, length % 256])
        )

    def _read_der_file(self, fid: int) -> bytes:
        """Read a DER object (a certificate) from an EF, stopping at the end of the object, as a real
        card's certificate EF is larger than the certificate it holds."""
        self._select_ef_or_raise(fid)
        first, sw = self._read_binary(0, _READ_CHUNK)
        raise_for_status(sw)
        total = _der_total_length(first)
        content = bytearray(first)
        while len(content) < total:
            chunk, sw = self._read_binary(len(content), min(_READ_CHUNK, total - len(content)))
            raise_for_status(sw)
            if not chunk:
                raise CardError(sw, "証明書の読み取りが途中で終わりました")
            content += chunk
        return bytes(content[:total])

    def _read_whole_file(self, fid: int) -> bytes:
        self._select_ef_or_raise(fid)
        content = bytearray()
        while len(content) <= _MAX_FILE_SIZE:
            chunk, sw = self._read_binary(len(content), _READ_CHUNK)
            if sw == jpki.SW_OFFSET_OUT_OF_FILE and content:
                break
            raise_for_status(sw)
            content += chunk
            if len(chunk) < _READ_CHUNK:
                break
        return bytes(content)

    def _verify(self, fid: int, secret: str, credential: str) -> None:
        self._select_ef_or_raise(fid)
        _, sw = self._send(bytes([0x00, jpki.INS_VERIFY, 0x00, 0x80, len(secret)]) + secret.encode("ascii"))
        raise_for_status(sw, credential=credential)

    def _tries_left(self, fid: int) -> int:
        self._select_ef_or_raise(fid)
        _, sw = self._send(bytes([0x00, jpki.INS_VERIFY, 0x00, 0x80]))
        if sw & 0xFFF0 == jpki.SW_TRIES_LEFT_BASE:
            return sw & 0x000F
        if sw == jpki.SW_AUTHENTICATION_BLOCKED:
            return 0
        raise_for_status(sw)
        raise CardError(sw, "カードが試行回数を返しませんでした")

    def _sign_digest_info(self, key_fid: int, digest_info: bytes) -> bytes:
        self._select_ef_or_raise(key_fid)
        data, sw = self._send(
            bytes([jpki.CLA_PROPRIETARY, jpki.INS_COMPUTE_SIGNATURE, 0x00, 0x80, len(digest_info)])
            + digest_info
            + b"\x00"
        )
        raise_for_status(sw)
        if len(data) != jpki.RSA_MODULUS_BYTES:
            raise CardError(sw, "カードの署名の長さが正しくありません")
        return data

    # -- user authentication (利用者証明用) --

    def read_token_info(self) -> str:
        """The applet's token label (e.g. JPKIAPICCTOKEN2), without padding."""
        return self._read_whole_file(jpki.EF_TOKEN_INFO).decode("ascii", errors="replace").strip()

    def read_user_certificate(self) -> bytes:
        """The user-authentication certificate (DER); readable without PIN."""
        return self._read_der_file(jpki.EF_USER_CERTIFICATE)

    def read_user_ca_certificate(self) -> bytes:
        """The CA certificate that issued the user-authentication certificate (DER)."""
        return self._read_der_file(jpki.EF_USER_CA_CERTIFICATE)

    def has_user_pin(self) -> bool:
        """Whether the card has a user PIN; False for face-recognition cards."""
        sw = self._select_ef(jpki.EF_USER_PIN)
        if sw == jpki.SW_FILE_NOT_FOUND:
            return False
        raise_for_status(sw)
        return True

    def user_pin_tries_left(self) -> int:
        """Tries left for the user PIN (0 when locked); costs no try. Raises NoUserPin without a PIN."""
        if not self.has_user_pin():
            raise NoUserPin()
        return self._tries_left(jpki.EF_USER_PIN)

    def verify_user_pin(self, pin: str) -> None:
        """Verify the 4-digit user PIN for this session.

        Raises ValueError for a PIN that is not 4 digits (no try is spent), PinIncorrect(tries_left),
        PinLocked (on the try that locks it and afterwards), NoUserPin on a face-recognition card.
        """
        if len(pin) != 4 or not pin.isascii() or not pin.isdigit():
            raise ValueError("利用者証明用暗証番号は数字4桁です")
        if not self.has_user_pin():
            raise NoUserPin()
        self._verify(jpki.EF_USER_PIN, pin, "user_pin")

    def sign_with_user_key(self, message: bytes, pin: str | None = None) -> bytes:
        """Sign SHA-256(message) with the user-authentication key (PKCS#1 v1.5, 256 bytes).

        Verifies `pin` first when given; otherwise the PIN must have been verified in this session.
        Raises SecurityStatusNotSatisfied when it was not (always on a face-recognition card), plus
        the errors of verify_user_pin.
        """
        if pin is not None:
            self.verify_user_pin(pin)
        return self._sign_digest_info(jpki.EF_USER_KEY, sha256_digest_info(message))

    # -- signature (署名用) --

    def signature_password_tries_left(self) -> int:
        """Tries left for the signature password (0 when locked); raises NoSignatureCertificate."""
        sw = self._select_ef(jpki.EF_SIGNATURE_PASSWORD)
        if sw == jpki.SW_FILE_NOT_FOUND:
            raise NoSignatureCertificate()
        raise_for_status(sw)
        return self._tries_left(jpki.EF_SIGNATURE_PASSWORD)

    def verify_signature_password(self, password: str) -> None:
        """Verify the signature password (6-16 of A-Z, 0-9; lower case is taken as upper case).

        Raises ValueError for a malformed password (no try spent), PinIncorrect(tries_left) with
        credential "signature_password", PinLocked, NoSignatureCertificate on a card without one.
        """
        password = password.upper()
        if not _SIGNATURE_PASSWORD.fullmatch(password):
            raise ValueError("署名用電子証明書の暗証番号は英大文字と数字の6〜16文字です")
        sw = self._select_ef(jpki.EF_SIGNATURE_PASSWORD)
        if sw == jpki.SW_FILE_NOT_FOUND:
            raise NoSignatureCertificate()
        raise_for_status(sw)
        self._verify(jpki.EF_SIGNATURE_PASSWORD, password, "signature_password")

    def read_signature_certificate(self, password: str) -> bytes:
        """The signature certificate (DER) carrying the holder's four facts; needs the password."""
        self.verify_signature_password(password)
        return self._read_der_file(jpki.EF_SIGNATURE_CERTIFICATE)

    def read_signature_ca_certificate(self) -> bytes:
        """The CA certificate that issued the signature certificate (DER); raises NoSignatureCertificate."""
        try:
            return self._read_der_file(jpki.EF_SIGNATURE_CA_CERTIFICATE)
        except FileNotFound as error:
            raise NoSignatureCertificate() from error

    def sign_with_signature_key(self, message: bytes, password: str) -> bytes:
        """Sign SHA-256(message) with the signature key after verifying the password."""
        self.verify_signature_password(password)
        return self._sign_digest_info(jpki.EF_SIGNATURE_KEY, sha256_digest_info(message))


def _der_total_length(header: bytes) -> int:
    """Length of the whole DER object (tag, length and content) that starts `header`."""
    if len(header) < 2 or header[0] != 0x30:
        raise CardError(jpki.SW_OK, "ファイルの内容が証明書ではありません")
    first = header[1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    if count == 0 or count > 2 or len(header) < 2 + count:
        raise CardError(jpki.SW_OK, "証明書の長さを読み取れません")
    length = int.from_bytes(header[2 : 2 + count], "big")
    total = 2 + count + length
    if total > _MAX_FILE_SIZE:
        raise CardError(jpki.SW_OK, "証明書が大きすぎます")
    return total
