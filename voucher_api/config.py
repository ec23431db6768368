"""Settings, read from the environment only when a factory asks for them."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

DEFAULT_VAR_DIR = Path("var")


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


@dataclass(frozen=True)
class Settings:
    """Every knob of the system. The README's configuration table lists the same names."""

    database_url: str
    celery_broker_url: str
    jwt_secret: str
    celery_queue: str = "celery"
    celery_result_backend: str | None = None
    var_dir: Path = DEFAULT_VAR_DIR
    access_token_ttl_seconds: int = 900
    terminal_token_ttl_seconds: int = 900
    challenge_ttl_seconds: int = 120
    board_challenge_ttl_seconds: int = 600
    enrolment_code_ttl_seconds: int = 86_400
    card_trust_anchor_path: Path | None = None
    ocsp_timeout_seconds: float = 2.0
    revocation_cache_seconds: int = 300
    registry_url: str | None = None
    snapshot_signing_key_path: Path | None = None
    snapshot_valid_hours: int = 24
    public_base_url: str = "http://127.0.0.1:8000"
    card_bridge_url: str = "http://127.0.0.1:8765"
    log_level: str = "INFO"
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Build settings from environment variables (embedded defaults when unset)."""
        env = dict(os.environ if env is None else env)
        var_dir = Path(env.get("VOUCHER_VAR_DIR", str(DEFAULT_VAR_DIR)))
        database_url = env.get("DATABASE_URL") or f"sqlite:///{(var_dir / 'voucher.sqlite3').resolve()}"
        broker = env.get("CELERY_BROKER_URL") or f"sqla+sqlite:///{(var_dir / 'broker.sqlite3').resolve()}"
        jwt_secret = env.get("JWT_SECRET") or _dev_secret(var_dir)
        anchor = env.get("CARD_TRUST_ANCHOR")
        return cls(
            database_url=database_url,
            celery_broker_url=broker,
            celery_queue=env.get("CELERY_QUEUE") or "celery",
            celery_result_backend=env.get("CELERY_RESULT_BACKEND") or None,
            jwt_secret=jwt_secret,
            var_dir=var_dir,
            access_token_ttl_seconds=_int(env, "ACCESS_TOKEN_TTL", 900),
            terminal_token_ttl_seconds=_int(env, "TERMINAL_TOKEN_TTL", 900),
            challenge_ttl_seconds=_int(env, "CHALLENGE_TTL", 120),
            board_challenge_ttl_seconds=_int(env, "BOARD_CHALLENGE_TTL", 600),
            enrolment_code_ttl_seconds=_int(env, "ENROLMENT_CODE_TTL", 86_400),
            card_trust_anchor_path=Path(anchor) if anchor else var_dir / "issuer" / "root-ca.pem",
            ocsp_timeout_seconds=float(env.get("OCSP_TIMEOUT", "2.0")),
            revocation_cache_seconds=_int(env, "REVOCATION_CACHE_SECONDS", 300),
            registry_url=env.get("REGISTRY_URL") or None,
            snapshot_signing_key_path=Path(
                env.get("SNAPSHOT_SIGNING_KEY") or var_dir / "snapshot-signing-key.pem"
            ),
            snapshot_valid_hours=_int(env, "SNAPSHOT_VALID_HOURS", 24),
            public_base_url=env.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000"),
            card_bridge_url=env.get("CARD_BRIDGE_URL") or "http://127.0.0.1:8765",
            log_level=env.get("LOG_LEVEL", "INFO"),
        )

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def _dev_secret(var_dir: Path) -> str:
    """A per-installation secret for the embedded default, kept in var/ (never committed).

    Production sets JWT_SECRET; several gunicorn processes then share it.
    """
    path = var_dir / "jwt-secret"
    if path.exists():
        return path.read_text().strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process of the same installation won the race
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value
