"""The systems the city does not own, served together for the embedded default: the card issuer's CRL,
OCSP and CA certificates at `/`, and the resident registry's feed at `/registry`.

The issuer follows the registry's change feed before every CRL and OCSP answer, so a death or a change of
the four facts recorded in the registry (by any process) revokes the certificates it must
(auth_mock.registry_revocations).

    python -m auth_mock.server --port 8001 --issuer-dir var/issuer --registry var/registry.sqlite3
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import click
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import run_simple

from auth_mock.issuer import Issuer
from auth_mock.issuer_http import create_issuer_app
from auth_mock.registry import Registry
from auth_mock.registry_http import create_registry_app
from auth_mock.registry_revocations import RegistryFollower


def create_mock_services(
    issuer_dir: Path, registry_path: Path, *, crl_lag: timedelta = timedelta(0)
) -> DispatcherMiddleware:
    """One WSGI application for the issuer (at /) and the registry (at /registry); the issuer follows
    the registry's changes before each CRL/OCSP answer."""
    issuer = Issuer.load(issuer_dir)
    registry = Registry.open(registry_path)
    follower = RegistryFollower(issuer, registry)
    return DispatcherMiddleware(
        create_issuer_app(issuer, crl_lag=crl_lag, refresh=follower.follow),
        {"/registry": create_registry_app(registry)},
    )


@click.command(help="模擬の発行者(CRL・OCSP)と住民基本台帳を HTTP で配信します")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8001, show_default=True, type=int)
@click.option("--issuer-dir", default="var/issuer", show_default=True, type=click.Path(path_type=Path))
@click.option(
    "--registry",
    "registry_path",
    default="var/registry.sqlite3",
    show_default=True,
    type=click.Path(path_type=Path),
)
@click.option("--crl-lag", default=0.0, show_default=True, type=float, help="失効が CRL に載るまでの秒数")
def main(host: str, port: int, issuer_dir: Path, registry_path: Path, crl_lag: float) -> None:
    app = create_mock_services(issuer_dir, registry_path, crl_lag=timedelta(seconds=crl_lag))
    run_simple(host, port, app, threaded=True, use_reloader=False)


if __name__ == "__main__":
    main()
