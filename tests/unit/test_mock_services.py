from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
from cryptography import x509

from auth_mock.issuer import Issuer
from auth_mock.registry import Registry
from auth_mock.server import create_mock_services


def test_issuer_and_registry_are_served_on_one_port(tmp_path: Path) -> None:
    Issuer.create(tmp_path / "issuer", base_url="http://127.0.0.1:8001", now=datetime(2026, 4, 1, tzinfo=UTC))
    Registry.generate(tmp_path / "registry.sqlite3", size=50, seed=1).close()
    app = create_mock_services(tmp_path / "issuer", tmp_path / "registry.sqlite3")
    client = httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://mock")

    crl = client.get("/crl/062120.crl")
    assert crl.status_code == 200
    assert x509.load_der_x509_crl(crl.content).issuer
    changes = client.get("/registry/changes", params={"after": 0})
    assert changes.status_code == 200
    assert changes.json()["changes"] == []
