"""Where the kiosk finds the rider's card: a real PC/SC reader, or (development, demos, tests) a virtual
reader holding one virtual card file at a time."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Final, Protocol

from auth_mock import reader as jpki_reader
from driver_terminal.card import CardReader, open_virtual_card

_CARD_NAME: Final = re.compile(r"[A-Za-z0-9_.-]{1,80}\.json")


class CardSlot(Protocol):
    """The reader as the kiosk sees it: a card on it, or none."""

    def card(self) -> CardReader | None: ...


class VirtualCardSlot:
    """A virtual reader: `insert` puts a card file on it, `eject` takes it away. Thread-safe."""

    def __init__(self, card_dir: Path | None = None) -> None:
        self.card_dir = card_dir
        self._path: Path | None = None
        self._lock = threading.Lock()

    def insert(self, card: str | Path) -> Path:
        """Put a card on the reader: a file name in `card_dir`, or a path. Raises LookupError."""
        path = Path(card)
        if not path.is_absolute():
            if self.card_dir is None or not _CARD_NAME.fullmatch(str(card)):
                raise LookupError(str(card))
            path = self.card_dir / str(card)
        if not path.is_file():
            raise LookupError(str(card))
        with self._lock:
            self._path = path
        return path

    def eject(self) -> None:
        with self._lock:
            self._path = None

    @property
    def path(self) -> Path | None:
        with self._lock:
            return self._path

    def card(self) -> CardReader | None:
        path = self.path
        return None if path is None else open_virtual_card(path)


class PcscCardSlot:
    """The first PC/SC reader (pyscard, the `pcsc` extra); a card is there when it answers."""

    def __init__(self, reader_name: str | None = None) -> None:
        self.reader_name = reader_name

    def card(self) -> CardReader | None:
        try:
            transport = jpki_reader.PcscTransport(self.reader_name)
            reader = jpki_reader.JPKIReader(transport)
            reader.read_user_ca_certificate()
        except (jpki_reader.TransportError, jpki_reader.CardError):
            return None
        return reader
