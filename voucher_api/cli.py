"""The `voucher-api` command: migrations, the demo city, staff accounts, terminal codes, settlement,
registry sync.

Settings are read from the environment inside each command (never at import time). Messages are in
Japanese, the language of the people who run the system.
"""

from __future__ import annotations

import getpass
import re
from datetime import date, timedelta
from pathlib import Path

import click
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from auth_mock.registry import Registry, RegistryError
from voucher_api import demo
from voucher_api import migrate as migrations
from voucher_api.clock import JST, SystemClock
from voucher_api.config import Settings
from voucher_api.db import make_engine, make_session_factory
from voucher_api.models import Municipality, Operator, StaffRole, Vehicle
from voucher_api.services import residents, staff, terminals
from voucher_api.services.errors import DomainError

_PERIOD = re.compile(r"^(\d{4})-(\d{2})$")


def _session_factory(settings: Settings) -> sessionmaker[Session]:
    return make_session_factory(make_engine(settings.database_url))


def _municipality_id(session: Session, code: str) -> int:
    found = session.scalar(select(Municipality.id).where(Municipality.code == code))
    if found is None:
        raise click.ClickException(f"地方公共団体コード {code} の市町村が登録されていません")
    return found


def _period(text: str) -> date:
    match = _PERIOD.match(text.strip())
    if match is None or not 1 <= int(match.group(2)) <= 12:
        raise click.BadParameter("対象月は YYYY-MM の形で指定してください(例: 2026-10)")
    return date(int(match.group(1)), int(match.group(2)), 1)


def _cli_actor() -> str:
    """Who runs a command, for the audit trail: the operating-system account (cli when unknown)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (e.g. some containers)
        return "cli"
    return f"cli:{user}"[:64]


def _roles(text: str) -> list[StaffRole]:
    roles: list[StaffRole] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            roles.append(StaffRole(part))
        except ValueError:
            known = ", ".join(r.value for r in StaffRole)
            raise click.BadParameter(f"役割 {part!r} はありません(使える役割: {known})") from None
    if not roles:
        raise click.BadParameter("役割を1つ以上指定してください")
    return roles


@click.group(help="電子タクシー券システム(voucher API)の管理コマンド")
def main() -> None:
    """The command group; each command reads its settings from the environment."""


@main.command(help="データベースを最新の形にします(Alembic の upgrade head)")
def migrate() -> None:
    settings = Settings.from_env()
    migrations.upgrade(settings.database_url)
    click.echo("データベースを最新の状態にしました")


@main.command("seed-demo", help="デモ用の市(尾花沢市)を作成します。作成済みなら何もしません")
@click.option("--cards", default=12, show_default=True, type=click.IntRange(0, 200), help="仮想カードの枚数")
@click.option("--size", default=14_000, show_default=True, type=click.IntRange(1, 200_000), help="人口")
@click.option(
    "--issuer-url",
    default=demo.DEFAULT_ISSUER_URL,
    envvar="MOCK_ISSUER_URL",
    show_default=True,
    help="カード発行者(CRL・OCSP)の URL(環境変数 MOCK_ISSUER_URL でも指定可)",
)
@click.option("--no-migrate", is_flag=True, help="先にマイグレーションを実行しない")
def seed_demo(cards: int, size: int, issuer_url: str, no_migrate: bool) -> None:
    settings = Settings.from_env()
    if not no_migrate:
        migrations.upgrade(settings.database_url)
    summary = demo.seed_demo(
        settings,
        var_dir=settings.var_dir,
        clock=SystemClock(),
        cards=cards,
        size=size,
        issuer_base_url=issuer_url,
    )
    text = "\n".join(summary.lines())
    click.echo(text)
    # The start command prints this file again once every service is up.
    (settings.var_dir / "demo-summary.txt").write_text(text + "\n", encoding="utf-8")


@main.command("create-staff", help="職員アカウントを作成します")
@click.option("--username", required=True, help="ログイン名")
@click.option("--password", prompt="パスワード", hide_input=True, confirmation_prompt=True, help="パスワード")
@click.option("--roles", required=True, help="役割(カンマ区切り): counter, finance, admin など")
@click.option("--municipality-code", default=demo.MUNICIPALITY_CODE, show_default=True)
@click.option("--display-name", default=None, help="表示名(省略時はログイン名)")
@click.option("--operator-code", default=None, help="operator_admin の場合: 事業者コード(例: OP01)")
def create_staff(
    username: str,
    password: str,
    roles: str,
    municipality_code: str,
    display_name: str | None,
    operator_code: str | None,
) -> None:
    role_list = _roles(roles)
    if len(password) < 8:
        raise click.BadParameter("パスワードは8文字以上にしてください", param_hint="--password")
    settings = Settings.from_env()
    clock = SystemClock()
    factory = _session_factory(settings)
    try:
        with factory() as session, session.begin():
            municipality_id = _municipality_id(session, municipality_code)
            operator_id = None
            if operator_code is not None:
                operator_id = session.scalar(
                    select(Operator.id).where(
                        Operator.municipality_id == municipality_id, Operator.code == operator_code
                    )
                )
                if operator_id is None:
                    raise click.ClickException(f"事業者コード {operator_code} の事業者がありません")
            elif StaffRole.OPERATOR_ADMIN in role_list:
                raise click.BadParameter("operator_admin には --operator-code が必要です")
            user = staff.create_staff(
                session,
                municipality_id=municipality_id,
                username=username,
                display_name=display_name or username,
                password=password,
                roles=role_list,
                now=clock.now(),
                operator_id=operator_id,
                actor=_cli_actor(),
            )
            user_id = user.id
    except IntegrityError:
        raise click.ClickException(f"ログイン名 {username} はすでに使われています") from None
    click.echo(f"職員アカウント {username}(ID {user_id})を作成しました")


@main.command("terminal-code", help="車載端末を作成し、1回限りの登録コードを表示します")
@click.option("--operator", "operator_code", required=True, help="事業者コード(例: OP01)")
@click.option(
    "--vehicle", "vehicle_ref", required=True, help="車両: 表示名(例: 1号車)、登録番号、または車両 ID"
)
@click.option("--municipality-code", default=demo.MUNICIPALITY_CODE, show_default=True)
@click.option("--code-only", is_flag=True, help="登録コードだけを出力する(スクリプト用)")
def terminal_code(operator_code: str, vehicle_ref: str, municipality_code: str, code_only: bool) -> None:
    """What an operator admin gets from POST /terminals, for whoever runs the installation."""
    settings = Settings.from_env()
    now = SystemClock().now()
    factory = _session_factory(settings)
    with factory() as session, session.begin():
        municipality_id = _municipality_id(session, municipality_code)
        operator = session.scalar(
            select(Operator).where(
                Operator.municipality_id == municipality_id, Operator.code == operator_code
            )
        )
        if operator is None:
            raise click.ClickException(f"事業者コード {operator_code} の事業者がありません")
        ref = vehicle_ref.strip()
        matches = [Vehicle.label == ref, Vehicle.registration == ref]
        if ref.isdigit():
            matches.append(Vehicle.id == int(ref))
        found = session.scalars(
            select(Vehicle).where(Vehicle.operator_id == operator.id, or_(*matches)).order_by(Vehicle.id)
        ).all()
        if not found:
            raise click.ClickException(f"{operator.name}に車両 {ref} はありません")
        if len(found) > 1:
            raise click.ClickException(
                f"車両 {ref} に当てはまる車両が{len(found)}台あります。登録番号か車両 ID で指定してください"
            )
        vehicle = found[0]
        created = terminals.create_terminal(
            session,
            vehicle_id=vehicle.id,
            municipality_id=municipality_id,
            actor=_cli_actor(),
            now=now,
            ttl=timedelta(seconds=settings.enrolment_code_ttl_seconds),
        )
        terminal_id, code = created.terminal.id, created.enrolment_code
        expires = now + timedelta(seconds=settings.enrolment_code_ttl_seconds)
        where = " ".join(part for part in (operator.name, vehicle.label, vehicle.registration) if part)
    if code_only:
        click.echo(code)
        return
    click.echo(f"車載端末(端末番号 {terminal_id})を作成しました: {where}")
    click.echo(f"登録コード: {code}({expires.astimezone(JST):%Y年%m月%d日 %H:%M} まで、1回だけ使えます)")
    click.echo(f"端末で実行: driver-terminal enrol --api {settings.public_base_url} --code {code}")


@main.command("terminal-revoke", help="紛失・盗難の車載端末を使えなくします(新しいトークンを出さない)")
@click.argument("terminal_id", type=click.IntRange(1))
@click.option("--reason", required=True, help="理由(監査記録に残ります。例: 車両盗難)")
@click.option("--municipality-code", default=demo.MUNICIPALITY_CODE, show_default=True)
def terminal_revoke(terminal_id: int, reason: str, municipality_code: str) -> None:
    settings = Settings.from_env()
    factory = _session_factory(settings)
    try:
        with factory() as session, session.begin():
            terminal = terminals.revoke_terminal(
                session,
                terminal_id=terminal_id,
                municipality_id=_municipality_id(session, municipality_code),
                actor=_cli_actor(),
                reason=reason,
                now=SystemClock().now(),
            )
            status = terminal.status.value
    except DomainError as exc:
        raise click.ClickException(exc.message()) from exc
    click.echo(
        f"車載端末(端末番号 {terminal_id})を使えなくしました(状態 {status})。"
        f"今持っているトークンは最長 {settings.terminal_token_ttl_seconds} 秒で切れます。"
        "送信されていない記録はその端末にしかありません。"
    )


@main.command(help="月次精算を実行します(既定はワーカーに依頼。--sync でこのプロセスで実行)")
@click.option("--period", required=True, help="対象月 YYYY-MM")
@click.option("--municipality-code", default=demo.MUNICIPALITY_CODE, show_default=True)
@click.option("--sync", "run_here", is_flag=True, help="ワーカーを使わず、このプロセスで実行する")
def settle(period: str, municipality_code: str, run_here: bool) -> None:
    month = _period(period)
    settings = Settings.from_env()
    clock = SystemClock()
    factory = _session_factory(settings)
    # settlement depends on voucher_api, not the reverse: imported here, when the command runs.
    from settlement import service as settlement_service
    from settlement import tasks as settlement_tasks

    label = f"{month:%Y年%m月}"
    try:
        if run_here:
            run = settlement_tasks.run_period_now(
                factory, municipality_code, month, _cli_actor(), clock=clock, trigger="cli"
            )
            click.echo(f"{label}の精算が終わりました(実行 ID {run.id}、状態 {run.status.value})")
            return
        with factory() as session, session.begin():
            municipality_id = _municipality_id(session, municipality_code)
            queued = settlement_service.start_run(
                session,
                municipality_id=municipality_id,
                period=month,
                trigger="cli",
                requested_by=_cli_actor(),
                now=clock.now(),
            )
            run_id = queued.id
    except DomainError as exc:
        raise click.ClickException(exc.message()) from exc
    from voucher_api.tasks_client import CeleryTaskSender

    # The worker consumes CELERY_QUEUE only: send there, as the API and beat do.
    try:
        task_id = CeleryTaskSender(settings.celery_broker_url, settings.celery_queue).send(
            settlement_tasks.CLOSE_PERIOD, args=[str(run_id)]
        )
    except Exception as exc:  # any broker failure: the run must not hold the month's lock (as the API)
        with factory() as session, session.begin():
            settlement_service.fail_run(
                session, run_id=run_id, error=settlement_service.NOT_SENT, now=clock.now()
            )
        raise click.ClickException(
            f"{label}の精算をワーカーに依頼できませんでした(ブローカー {type(exc).__name__})。"
            "実行は失敗として記録したので、ブローカーを確かめてからもう一度実行できます。"
            "ワーカーなしで今ここで締めるには --sync を付けてください。"
        ) from exc
    click.echo(f"{label}の精算をワーカーに依頼しました(実行 ID {run_id}、タスク {task_id})")


@main.command("sync-registry", help="住民基本台帳の変更を住民データに反映します(通常は変更フィードを追う)")
@click.option("--municipality-code", default=demo.MUNICIPALITY_CODE, show_default=True)
@click.option("--full", is_flag=True, help="変更フィードではなく台帳ファイル全体を取り込む(初回の一括登録)")
@click.option(
    "--registry",
    "registry_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="--full のときの台帳ファイル(省略時は VOUCHER_VAR_DIR/registry.sqlite3)",
)
def sync_registry(municipality_code: str, full: bool, registry_path: Path | None) -> None:
    settings = Settings.from_env()
    factory = _session_factory(settings)
    if not full:
        if not settings.registry_url:
            raise click.ClickException("REGISTRY_URL が設定されていません(一括取り込みは --full)")
        client = residents.HttpRegistryClient(settings.registry_url)
        with factory() as session, session.begin():
            applied = residents.follow_changes(
                session, client, municipality_code=municipality_code, now=SystemClock().now()
            )
        click.echo(f"住民基本台帳の変更を {len(applied):,}件 反映しました")
        return
    path = registry_path or settings.var_dir / "registry.sqlite3"
    try:
        registry = Registry.open(path)
    except (FileNotFoundError, RegistryError) as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        people = list(registry.iter_people(municipality_code=municipality_code))
    finally:
        registry.close()
    with factory() as session, session.begin():
        municipality_id = _municipality_id(session, municipality_code)
        result = demo.sync_residents(
            session, municipality_id=municipality_id, people=people, now=SystemClock().now()
        )
    click.echo(
        f"住民データを同期しました: 追加 {result.inserted:,}人、更新 {result.updated:,}人、"
        f"変更なし {result.unchanged:,}人"
    )
