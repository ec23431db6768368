"""`mock-card bridge`: run the counter's reader bridge (auth_mock.bridge) on this machine.

mock-card bridge [--host 127.0.0.1] [--port 8765] [--cards var/cards] [--origin URL] [--insert CARD]
"""

from __future__ import annotations

import os
from pathlib import Path

import click

DEFAULT_PORT = 8765
DEFAULT_CARDS_DIR = "var/cards"
DEFAULT_ORIGIN = "http://127.0.0.1:8000"


@click.command(name="bridge")
@click.option("--host", default="127.0.0.1", show_default=True, help="待ち受けるアドレス(この端末のみ)")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int)
@click.option(
    "--cards",
    "cards_dir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="MOCK_CARDS_DIR",
    default=DEFAULT_CARDS_DIR,
    show_default=True,
    help="リーダーに置ける模擬カードのディレクトリ",
)
@click.option(
    "--origin",
    envvar="STAFF_PAGE_ORIGIN",
    default=DEFAULT_ORIGIN,
    show_default=True,
    help="職員画面のオリジン(これ以外の画面からの要求は断ります)",
)
@click.option("--insert", "insert", default=None, help="最初からリーダーに置いておくカード(ファイル名)")
def bridge(host: str, port: int, cards_dir: Path, origin: str, insert: str | None) -> None:
    """窓口端末のカードリーダー連携(模擬)を起動します。"""
    from werkzeug.serving import run_simple

    from auth_mock.bridge import ReaderSlot, create_bridge_app

    if host not in ("127.0.0.1", "localhost", "::1"):
        raise click.BadParameter(
            "カードリーダー連携はこの端末(127.0.0.1)でだけ待ち受けます", param_hint="--host"
        )
    slot = ReaderSlot(cards_dir)
    if insert:
        try:
            slot.insert(insert)
        except LookupError as error:
            raise click.ClickException(f"カードが見つかりません: {insert}") from error
    app = create_bridge_app(slot, allowed_origin=origin.rstrip("/"))
    click.echo(f"カードリーダー連携: http://{host}:{port}/reader (職員画面 {origin}, PID {os.getpid()})")
    run_simple(host, port, app, threaded=True)
