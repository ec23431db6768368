"""`mock-card`: issue and manage virtual My Number cards for residents of the mock registry.

    mock-card init [--base-url URL]
    mock-card issue --out PATH --pin PIN --password PW [--kind KIND] [--resident ID | --holder-json FILE]
    mock-card list [--resident ID] [--json]
    mock-card show CARD [--json]
    mock-card revoke CARD --reason loss|death|fact_change
    mock-card lock CARD
    mock-card unlock CARD [--new-pin PIN] [--password [--new-password PW]]     (alias: reset-pin)
    mock-card expire CARD
    mock-card serve [--host H] [--port P] [--crl-lag SECONDS]   (follows the registry when it exists)
    mock-card follow-registry      revoke what the registry's changes (deaths, moves, names) make untrue

CARD is a card id (`card-…`), the path of a card file, or (for `revoke`) a certificate serial.
The issuer directory comes from `--issuer-dir` / MOCK_ISSUER_DIR (default var/issuer), the resident
registry from `--registry` / MOCK_REGISTRY_PATH (default var/registry.sqlite3).
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import click
from cryptography import x509

from auth_mock.card import CardFileError, VirtualCard
from auth_mock.issuer import (
    JAPAN,
    CardHolder,
    CardKind,
    Clock,
    IssuedCard,
    Issuer,
    IssuerError,
    RevocationReason,
    UnknownCard,
    certificate_serial_hex,
    certified_facts,
    system_clock,
)
from auth_mock.reader import (
    JPKIReader,
    NoSignatureCertificate,
    NoUserPin,
    TransportError,
    VirtualCardTransport,
)

if TYPE_CHECKING:
    from auth_mock.registry_revocations import RegistryFollower

DEFAULT_ISSUER_DIR = "var/issuer"
DEFAULT_REGISTRY_PATH = "var/registry.sqlite3"
DEFAULT_BASE_URL = "http://127.0.0.1:8081"


class RegistryLike(Protocol):
    """The part of auth_mock.registry.Registry the CLI uses."""

    def get(self, registry_id: str) -> Any: ...

    def eligible_candidates(self, limit: int) -> list[Any]: ...


def open_mock_registry(path: Path) -> RegistryLike:
    """Open the colleague-written registry (auth_mock.registry.Registry.open); imported when needed."""
    if not path.exists():
        raise click.ClickException(f"住民基本台帳がありません: {path}（先に住民データを生成してください）")
    module = importlib.import_module("auth_mock.registry")
    registry: RegistryLike = module.Registry.open(path)
    return registry


@dataclass
class CliEnvironment:
    """What the CLI takes from the outside world; tests pass their own through `obj=`."""

    clock: Clock = system_clock
    open_registry: Callable[[Path], RegistryLike] = open_mock_registry


@dataclass
class _State:
    environment: CliEnvironment
    issuer_dir: Path
    registry_path: Path
    fixed_now: datetime | None = None
    _issuer: Issuer | None = field(default=None, repr=False)

    def now(self) -> datetime:
        return self.fixed_now if self.fixed_now is not None else self.environment.clock()

    def issuer(self) -> Issuer:
        if self._issuer is None:
            try:
                self._issuer = Issuer.load(self.issuer_dir, clock=self.now)
            except FileNotFoundError as error:
                raise click.ClickException(str(error)) from error
        return self._issuer


@contextmanager
def _opened_registry(open_registry: Callable[[Path], RegistryLike], path: Path) -> Iterator[RegistryLike]:
    registry = open_registry(path)
    try:
        yield registry
    finally:
        close = getattr(registry, "close", None)
        if callable(close):
            close()


def _parse_now(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as error:
        raise click.BadParameter(f"ISO 8601 の日時で指定してください: {value}") from error
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=JAPAN)


def _japan_time(moment: datetime) -> str:
    return moment.astimezone(JAPAN).strftime("%Y-%m-%d %H:%M（日本時間）")


@click.group(help="仮想マイナンバーカードと模擬発行者（CA・CRL・OCSP）を操作します。")
@click.option(
    "--issuer-dir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="MOCK_ISSUER_DIR",
    default=DEFAULT_ISSUER_DIR,
    show_default=True,
    help="発行者（CA）のディレクトリ",
)
@click.option(
    "--registry",
    "registry_path",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="MOCK_REGISTRY_PATH",
    default=DEFAULT_REGISTRY_PATH,
    show_default=True,
    help="住民基本台帳（模擬）のファイル",
)
@click.option("--now", "now_text", default=None, help="この日時として操作する（ISO 8601、デモ・試験用）")
@click.pass_context
def main(ctx: click.Context, issuer_dir: Path, registry_path: Path, now_text: str | None) -> None:
    environment = ctx.obj if isinstance(ctx.obj, CliEnvironment) else CliEnvironment()
    ctx.obj = _State(environment, issuer_dir, registry_path, _parse_now(now_text))


def _state(ctx: click.Context) -> _State:
    state = ctx.find_object(_State)
    if state is None:  # pragma: no cover - main always sets it
        raise click.ClickException("内部エラー: 状態がありません")
    return state


@main.command()
@click.option(
    "--base-url",
    envvar="MOCK_ISSUER_BASE_URL",
    default=DEFAULT_BASE_URL,
    show_default=True,
    help="CRL・OCSP を配信する URL（証明書に書き込まれます）",
)
@click.pass_context
def init(ctx: click.Context, base_url: str) -> None:
    """発行者（ルート CA と中間 CA）を作成します。"""
    state = _state(ctx)
    try:
        issuer = Issuer.create(state.issuer_dir, base_url=base_url, now=state.now(), clock=state.now)
    except FileExistsError as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"発行者を作成しました: {issuer.directory}")
    click.echo(f"信頼するルート証明書: {issuer.root_certificate_pem_path}")


def _holder_from_json(path: Path) -> CardHolder:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return CardHolder(
            family_name=str(data["family_name"]),
            given_name=str(data["given_name"]),
            family_name_kana=str(data.get("family_name_kana", "")),
            given_name_kana=str(data.get("given_name_kana", "")),
            sex=str(data["sex"]),
            birth_date=date.fromisoformat(str(data["birth_date"])),
            address=str(data["address"]),
            municipality_code=str(data["municipality_code"]),
            registry_id=str(data["registry_id"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise click.ClickException(f"住民情報の JSON を読めません: {path}: {error}") from error


def _pick_eligible_resident(registry: RegistryLike, issuer: Issuer) -> CardHolder:
    """The first eligible resident who has no card from this issuer yet."""
    holding = {card.registry_id for card in issuer.list_cards()}
    limit = 50
    while True:
        candidates = registry.eligible_candidates(limit=limit)
        for person in candidates:
            if person.registry_id not in holding:
                return CardHolder.from_person(person)
        if len(candidates) < limit:
            raise click.ClickException("カードを持っていない対象住民が見つかりません")
        limit *= 4


def issue_card_file(
    issuer_dir: Path,
    *,
    out: Path,
    pin: str | None,
    password: str | None,
    kind: str = "standard",
    resident_id: str | None = None,
    holder_json: Path | None = None,
    registry_path: Path = Path(DEFAULT_REGISTRY_PATH),
    base_url: str = DEFAULT_BASE_URL,
    now: datetime,
    clock: Clock | None = None,
    open_registry: Callable[[Path], RegistryLike] = open_mock_registry,
) -> IssuedCard:
    """What `mock-card issue` does, callable from Python (the demo makes its cards with it).

    Opens the issuer in `issuer_dir` (creating it at `base_url` when missing), takes the holder's facts
    from the registry at `registry_path` (the resident `resident_id`, or the first eligible resident
    without a card) or from `holder_json`, and writes the card file to `out`.
    Raises click.BadParameter for an unknown kind, click.UsageError for missing secrets or both holder
    sources, and click.ClickException for an unknown resident, a bad PIN/password/holder or an existing
    file.
    """
    try:
        card_kind = CardKind.parse(kind)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--kind") from error
    if card_kind.has_pin and (pin is None or password is None):
        raise click.UsageError("このカードの種類には --pin と --password が必要です")
    if resident_id is not None and holder_json is not None:
        raise click.UsageError("--resident と --holder-json は同時に指定できません")
    issuer = Issuer.open_or_create(issuer_dir, base_url=base_url, now=now, clock=clock or (lambda: now))
    if holder_json is not None:
        holder = _holder_from_json(holder_json)
    else:
        with _opened_registry(open_registry, registry_path) as registry:
            if resident_id is not None:
                person = registry.get(resident_id)
                if person is None:
                    raise click.ClickException(f"住民が見つかりません: {resident_id}")
                holder = CardHolder.from_person(person)
            else:
                holder = _pick_eligible_resident(registry, issuer)
    try:
        return issuer.issue_card(holder, pin=pin, password=password, kind=card_kind.value, out=out, now=now)
    except (ValueError, FileExistsError) as error:
        raise click.ClickException(str(error)) from error


def _card_as_json(card: IssuedCard, now: datetime) -> dict[str, Any]:
    data = card.to_json()
    data["status"] = card.status(now)
    data["revocations"] = [revocation.to_json() for revocation in card.revocations]
    return data


def _echo_issued(card: IssuedCard, now: datetime) -> None:
    click.echo(f"カードを発行しました: {card.card_id}")
    click.echo(f"  住民: {card.registry_id}（団体コード {card.municipality_code}）")
    click.echo(f"  種類: {card.kind.value}  状態: {card.status(now)}")
    click.echo(f"  有効期限: {_japan_time(card.not_after)}")
    click.echo(f"  カードファイル: {card.path}")


@main.command()
@click.option(
    "--out", type=click.Path(path_type=Path, dir_okay=False), required=True, help="カードファイルの保存先"
)
@click.option("--pin", default=None, help="利用者証明用暗証番号（数字4桁）")
@click.option("--password", default=None, help="署名用電子証明書の暗証番号（英大文字・数字 6〜16文字）")
@click.option(
    "--kind",
    default="standard",
    show_default=True,
    help="standard / face-recognition / expired / revoked / locked",
)
@click.option(
    "--resident", "resident_id", default=None, help="住民基本台帳の識別子（省略時は対象住民から選ぶ）"
)
@click.option(
    "--holder-json",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="住民基本台帳の代わりに使う住民情報（JSON）",
)
@click.option(
    "--base-url",
    envvar="MOCK_ISSUER_BASE_URL",
    default=DEFAULT_BASE_URL,
    show_default=True,
    help="発行者がまだ無いときに作成する発行者の URL",
)
@click.option("--json", "as_json", is_flag=True, help="JSON で出力")
@click.pass_context
def issue(
    ctx: click.Context,
    out: Path,
    pin: str | None,
    password: str | None,
    kind: str,
    resident_id: str | None,
    holder_json: Path | None,
    base_url: str,
    as_json: bool,
) -> None:
    """住民にカードを発行し、カードファイルを書き出します。"""
    state = _state(ctx)
    now = state.now()
    card = issue_card_file(
        state.issuer_dir,
        out=out,
        pin=pin,
        password=password,
        kind=kind,
        resident_id=resident_id,
        holder_json=holder_json,
        registry_path=state.registry_path,
        base_url=base_url,
        now=now,
        clock=state.now,
        open_registry=state.environment.open_registry,
    )
    if as_json:
        click.echo(json.dumps(_card_as_json(card, now), ensure_ascii=False, indent=1))
    else:
        _echo_issued(card, now)


def _resolve_card(issuer: Issuer, reference: str) -> IssuedCard:
    card = issuer.get_card(reference)
    if card is not None:
        return card
    path = Path(reference)
    if path.is_file():
        try:
            card_id = VirtualCard.load(path).card_id
        except CardFileError as error:
            raise click.ClickException(str(error)) from error
        card = issuer.get_card(card_id)
        if card is not None:
            return card
    raise click.ClickException(f"カードが見つかりません: {reference}")


def _parse_serial(reference: str) -> int | None:
    text = reference.strip().replace(":", "")
    try:
        if text.lower().startswith("0x"):
            return int(text, 16)
        if ":" in reference:
            return int(text, 16)
        return int(text, 10)
    except ValueError:
        return None


@main.command(name="list")
@click.option("--resident", "resident_id", default=None, help="この住民のカードだけ")
@click.option("--json", "as_json", is_flag=True, help="JSON で出力")
@click.pass_context
def list_cards(ctx: click.Context, resident_id: str | None, as_json: bool) -> None:
    """発行したカードの一覧を表示します。"""
    state = _state(ctx)
    issuer = state.issuer()
    now = state.now()
    cards = issuer.cards_of(resident_id) if resident_id is not None else issuer.list_cards()
    if as_json:
        click.echo(json.dumps([_card_as_json(card, now) for card in cards], ensure_ascii=False, indent=1))
        return
    if not cards:
        click.echo("発行したカードはありません")
        return
    for card in cards:
        click.echo(
            f"{card.card_id}  住民 {card.registry_id}  {card.kind.value:<16}  {card.status(now):<8}"
            f"  期限 {_japan_time(card.not_after)}  {card.path}"
        )


def _live_counters(path: Path) -> dict[str, int | str | None]:
    """Read the try counters through the reader driver, as a counter terminal would."""
    reader = JPKIReader(VirtualCardTransport(path))
    counters: dict[str, int | str | None] = {}
    try:
        try:
            counters["user_pin_tries_left"] = reader.user_pin_tries_left()
        except NoUserPin:
            counters["user_pin_tries_left"] = None
        try:
            counters["signature_password_tries_left"] = reader.signature_password_tries_left()
        except NoSignatureCertificate:
            counters["signature_password_tries_left"] = None
    except TransportError as error:
        counters["error"] = str(error)
    return counters


@main.command()
@click.argument("card_reference", metavar="CARD")
@click.option("--json", "as_json", is_flag=True, help="JSON で出力")
@click.pass_context
def show(ctx: click.Context, card_reference: str, as_json: bool) -> None:
    """カードの詳細（証明書、失効、暗証番号の残り回数）を表示します。"""
    state = _state(ctx)
    issuer = state.issuer()
    now = state.now()
    card = _resolve_card(issuer, card_reference)
    data = _card_as_json(card, now)
    data.update(_live_counters(card.path))
    try:
        signature_der = VirtualCard.load(card.path).signature_certificate_der
    except CardFileError:
        signature_der = None
    if signature_der is not None:
        facts = certified_facts(x509.load_der_x509_certificate(signature_der))
        data["certified_facts"] = {
            "name": facts.name,
            "sex": facts.sex,
            "birth_date": facts.birth_date.isoformat(),
            "address": facts.address,
        }
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=1))
        return
    _echo_issued_details(card, now, data)


def _echo_issued_details(card: IssuedCard, now: datetime, data: dict[str, Any]) -> None:
    click.echo(f"カード {card.card_id}")
    click.echo(f"  住民: {card.registry_id}（団体コード {card.municipality_code}）")
    click.echo(f"  種類: {card.kind.value}  状態: {card.status(now)}")
    click.echo(f"  発行: {_japan_time(card.issued_at)}  有効期限: {_japan_time(card.not_after)}")
    click.echo(f"  利用者証明用証明書 シリアル: {certificate_serial_hex(card.user_cert_serial)}")
    if card.sign_cert_serial is not None:
        click.echo(f"  署名用証明書 シリアル: {certificate_serial_hex(card.sign_cert_serial)}")
    else:
        click.echo("  署名用証明書: なし（顔認証マイナンバーカード）")
    for revocation in card.revocations:
        label = "利用者証明用" if revocation.certificate.value == "user" else "署名用"
        click.echo(f"  失効: {label} 理由 {revocation.reason.value} {_japan_time(revocation.revoked_at)}")
    if "error" in data:
        click.echo(f"  カード: {data['error']}")
    else:
        pin = data.get("user_pin_tries_left")
        click.echo(f"  利用者証明用暗証番号: {'なし' if pin is None else f'残り {pin} 回'}")
        password = data.get("signature_password_tries_left")
        click.echo(f"  署名用暗証番号: {'なし' if password is None else f'残り {password} 回'}")
    facts = data.get("certified_facts")
    if facts is not None:
        click.echo(
            f"  基本4情報: {facts['name']} / {facts['sex']} / {facts['birth_date']} / {facts['address']}"
        )
    click.echo(f"  カードファイル: {card.path}")


@main.command()
@click.argument("card_reference", metavar="CARD")
@click.option(
    "--reason",
    type=click.Choice([reason.value for reason in RevocationReason]),
    required=True,
    help="loss（紛失）/ death（死亡）/ fact_change（基本4情報の変更、署名用のみ）",
)
@click.pass_context
def revoke(ctx: click.Context, card_reference: str, reason: str) -> None:
    """カード（または証明書シリアル）の電子証明書を失効させます。"""
    state = _state(ctx)
    issuer = state.issuer()
    target: str | int
    if issuer.get_card(card_reference) is not None:
        target = card_reference
    elif Path(card_reference).is_file():
        target = _resolve_card(issuer, card_reference).card_id
    else:
        serial = _parse_serial(card_reference)
        target = serial if serial is not None else card_reference
    try:
        revocations = issuer.revoke(target, reason, state.now())
    except (UnknownCard, ValueError) as error:
        raise click.ClickException(str(error)) from error
    if not revocations:
        click.echo("既に失効しています")
    for revocation in revocations:
        label = "利用者証明用" if revocation.certificate.value == "user" else "署名用"
        click.echo(
            f"失効しました: {revocation.card_id} {label} シリアル {certificate_serial_hex(revocation.serial)}"
        )


@main.command()
@click.argument("card_reference", metavar="CARD")
@click.pass_context
def lock(ctx: click.Context, card_reference: str) -> None:
    """利用者証明用暗証番号をロックします（3回誤入力した状態にする）。"""
    card = _resolve_card(_state(ctx).issuer(), card_reference)
    try:
        VirtualCard.load(card.path).lock_user_pin()
    except (CardFileError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"暗証番号をロックしました: {card.card_id}")


@main.command()
@click.argument("card_reference", metavar="CARD")
@click.option("--new-pin", default=None, help="新しい利用者証明用暗証番号（数字4桁）")
@click.option("--password", "signature_password", is_flag=True, help="署名用暗証番号のロックを解除する")
@click.option("--new-password", default=None, help="新しい署名用暗証番号（--password と共に）")
@click.pass_context
def unlock(
    ctx: click.Context,
    card_reference: str,
    new_pin: str | None,
    signature_password: bool,
    new_password: str | None,
) -> None:
    """窓口と同じく暗証番号のロックを解除します（試行回数を戻し、必要なら再設定）。"""
    card = _resolve_card(_state(ctx).issuer(), card_reference)
    if new_password is not None and not signature_password:
        raise click.UsageError("--new-password は --password と共に指定してください")
    try:
        virtual_card = VirtualCard.load(card.path)
        if signature_password:
            virtual_card.reset_signature_password(new_password)
            click.echo(f"署名用暗証番号のロックを解除しました: {card.card_id}")
        else:
            virtual_card.reset_user_pin(new_pin)
            click.echo(f"利用者証明用暗証番号のロックを解除しました: {card.card_id}")
    except (CardFileError, ValueError) as error:
        raise click.ClickException(str(error)) from error


main.add_command(unlock, name="reset-pin")


@main.command()
@click.argument("card_reference", metavar="CARD")
@click.pass_context
def expire(ctx: click.Context, card_reference: str) -> None:
    """カードの電子証明書を有効期限切れにします（5年前に発行したものとして署名し直す）。"""
    state = _state(ctx)
    issuer = state.issuer()
    card = _resolve_card(issuer, card_reference)
    try:
        updated = issuer.expire_card(card.card_id, now=state.now())
    except (CardFileError, IssuerError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"有効期限切れにしました: {updated.card_id}（期限 {_japan_time(updated.not_after)}）")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8081, show_default=True, type=int)
@click.option(
    "--crl-lag",
    default=0.0,
    show_default=True,
    type=float,
    envvar="MOCK_CRL_LAG_SECONDS",
    help="失効が CRL に載るまでの秒数",
)
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, crl_lag: float) -> None:
    """CRL・OCSP・CA 証明書を HTTP で配信します。"""
    from werkzeug.serving import run_simple

    from auth_mock.issuer_http import create_issuer_app

    state = _state(ctx)
    issuer = state.issuer()
    refresh: Callable[[], object] | None = None
    if state.registry_path.is_file():
        follower = _follower(state, issuer)
        refresh = follower.follow
        click.echo(f"住民基本台帳の異動に従って失効させます: {state.registry_path}")
    app = create_issuer_app(issuer, crl_lag=timedelta(seconds=crl_lag), clock=state.now, refresh=refresh)
    click.echo(f"CRL・OCSP を配信します: http://{host}:{port}/  (PID {os.getpid()})")
    run_simple(host, port, app, threaded=True)


def _follower(state: _State, issuer: Issuer) -> RegistryFollower:
    from auth_mock.registry import Registry, RegistryError
    from auth_mock.registry_revocations import RegistryFollower

    try:
        registry = Registry.open(state.registry_path)
    except (FileNotFoundError, RegistryError) as error:
        raise click.ClickException(str(error)) from error
    return RegistryFollower(issuer, registry, clock=state.now)


@main.command(name="follow-registry")
@click.pass_context
def follow_registry(ctx: click.Context) -> None:
    """住民基本台帳の異動（死亡・転居・氏名変更など）を読み、失効すべき電子証明書を失効させます。"""
    state = _state(ctx)
    follower = _follower(state, state.issuer())
    try:
        revocations = follower.follow()
    finally:
        close = getattr(follower.registry, "close", None)
        if callable(close):
            close()
    for revocation in revocations:
        label = "利用者証明用" if revocation.certificate.value == "user" else "署名用"
        click.echo(
            f"失効しました: {revocation.card_id} {label} 理由 {revocation.reason.value}"
            f" シリアル {certificate_serial_hex(revocation.serial)}"
        )
    click.echo(
        f"住民基本台帳の異動を反映しました（失効 {len(revocations)}件、異動番号 {follower.cursor()} まで）"
    )


main.add_command(importlib.import_module("auth_mock.bridge_cli").bridge)
