"""`driver-terminal`: the in-car terminal from the command line (Japanese by default, `--lang en`).

    driver-terminal enrol --api URL --code CODE
    driver-terminal board --card PATH [--pin PIN | --tap] [--driver CODE] [--trip REF]
    driver-terminal fare RIDE_ID AMOUNT
    driver-terminal void RIDE_ID --reason TEXT
    driver-terminal ride RIDE_ID
    driver-terminal resend          (re-send boardings that got no answer, same number and key)
    driver-terminal journal         (this terminal's recent boardings)
    driver-terminal status          (who this terminal is; is the server reachable; what waits to be sent)
    driver-terminal snapshot        (fetch and check the signed snapshot for working offline)
    driver-terminal sync            (send the records made offline; show the API's answer to each)
    driver-terminal kiosk           (serve the touch screen to the in-car browser)

`board` tries the API first; when it cannot be reached and a valid snapshot is on the device, the
boarding is accepted offline within the program's offline limits and kept, signed, until `sync`
(`--offline` skips the API). A boarding kept offline is shown as pending, not as confirmed.

The data directory (key, identity, sequence numbers, journal) comes from `--data-dir`, else
$TERMINAL_DATA_DIR, else var/terminal. Without `--pin` or `--tap`, `board` asks for the PIN without
echoing it.

Exit status: 0 done; 1 refused (by the server, the card or the offline rules); 2 wrong usage; 3 no answer
from the server (a boarding is then kept and can be re-sent; records wait for the next sync); 4 this
terminal is not set up (not enrolled, key problem).
"""

from __future__ import annotations

import functools
import re
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar, cast
from zoneinfo import ZoneInfo

import click
import httpx

from driver_terminal.card import CardProblem, CardReader, check_pin_format, open_virtual_card
from driver_terminal.client import (
    ApiError,
    ApiUnreachable,
    Clock,
    EntitlementUnit,
    RetryPolicy,
    Ride,
    RideStatus,
    UnexpectedResponse,
    system_clock,
)
from driver_terminal.keys import DATA_DIR_ENV, DEFAULT_DATA_DIR, TerminalKeyError
from driver_terminal.messages import rider_message, sync_explanation
from driver_terminal.snapshot import OfflineRefusal, SnapshotInvalid
from driver_terminal.store import JournalState, StoreError
from driver_terminal.terminal import (
    BoardingUnanswered,
    NotEnrolled,
    RideFacts,
    RideRefused,
    Terminal,
    enrol_terminal,
)

JAPAN = ZoneInfo("Asia/Tokyo")
LANGUAGES = ("ja", "en")
MAX_METER_FARE = 1_000_000

EXIT_REFUSED = 1
EXIT_UNANSWERED = 3
EXIT_NOT_SET_UP = 4

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class TerminalEnvironment:
    """What the CLI takes from the outside world; tests pass their own through `obj=`."""

    http: httpx.Client | None = None
    clock: Clock = system_clock
    sleep: Callable[[float], None] = time.sleep
    open_card: Callable[[Path], CardReader] = open_virtual_card
    retry: RetryPolicy | None = None


@dataclass
class _State:
    environment: TerminalEnvironment
    data_dir: Path
    lang: str

    def terminal(self, lang: str) -> Terminal:
        env = self.environment
        return Terminal.open(
            self.data_dir, http=env.http, clock=env.clock, sleep=env.sleep, lang=lang, retry=env.retry
        )


def say(lang: str, ja: str, en: str) -> str:
    return en if lang == "en" else ja


# -- presentation ---------------------------------------------------------------------------------


def yen(amount: int, lang: str) -> str:
    return f"¥{amount:,}" if lang == "en" else f"{amount:,}円"


def balance_text(unit: EntitlementUnit, balance: int, lang: str) -> str:
    if unit is EntitlementUnit.YEN:
        return yen(balance, lang)
    if unit is EntitlementUnit.TICKET:
        return say(lang, f"{balance}枚", f"{balance} ticket{'s' if balance != 1 else ''}")
    return say(lang, f"{balance}回", f"{balance} ride{'s' if balance != 1 else ''}")


def age_band_text(age_band: str, lang: str) -> str:
    """The API says "80代"; in English that is "80s"."""
    if lang == "en":
        match = re.fullmatch(r"(\d+)代", age_band)
        if match:
            return f"{match.group(1)}s"
    return age_band


def japan_time(instant: datetime, lang: str) -> str:
    local = instant.astimezone(JAPAN)
    if lang == "en":
        return local.strftime("%Y-%m-%d %H:%M (Japan time)")
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"


STATUS_TEXT = {
    RideStatus.BOARDED: ("乗車中", "on board"),
    RideStatus.COMPLETED: ("降車済み(料金確定)", "completed (fare recorded)"),
    RideStatus.VOIDED: ("取り消し済み", "voided"),
}

# Five rows of block "pixels"; each pixel is printed two characters wide so the digits look square.
_GLYPHS: dict[str, tuple[str, ...]] = {
    "0": ("###", "# #", "# #", "# #", "###"),
    "1": (" # ", "## ", " # ", " # ", "###"),
    "2": ("###", "  #", "###", "#  ", "###"),
    "3": ("###", "  #", "###", "  #", "###"),
    "4": ("# #", "# #", "###", "  #", "  #"),
    "5": ("###", "#  ", "###", "  #", "###"),
    "6": ("###", "#  ", "###", "# #", "###"),
    "7": ("###", "  #", "  #", "  #", "  #"),
    "8": ("###", "# #", "###", "# #", "###"),
    "9": ("###", "# #", "###", "  #", "###"),
    ",": ("  ", "  ", "  ", " #", "# "),
    "¥": ("#   #", " # # ", "#####", "  #  ", "  #  "),
}


def big_amount(amount: int) -> list[str]:
    """The amount as five lines of large block characters, e.g. for ¥920 a banner the rider can read
    from the back seat."""
    text = f"¥{amount:,}"
    rows = []
    for row in range(5):
        cells = [_GLYPHS[char][row].replace("#", "██").replace(" ", "  ") for char in text]
        rows.append("  ".join(cells).rstrip())
    return rows


def describe_boarding(ride: Ride, lang: str) -> list[str]:
    lines = [
        say(
            lang,
            f"乗車を受け付けました（乗車番号 {ride.ride_id}）",
            f"Boarding accepted (ride {ride.ride_id})",
        )
    ]
    if ride.replayed:
        lines.append(
            say(
                lang,
                "※ すでに記録されていた乗車です（二重には記録されていません）",
                "Note: this ride was already recorded (it was not recorded twice)",
            )
        )
    lines += _ride_facts(ride, lang)
    return lines


def _ride_facts(ride: Ride | RideFacts, lang: str, *, provisional: bool = False) -> list[str]:
    unit = (
        EntitlementUnit(ride.unit)
        if ride.unit in {u.value for u in EntitlementUnit}
        else EntitlementUnit.RIDE
    )
    balance = "-" if ride.balance is None else balance_text(unit, ride.balance, lang)
    rows = [
        (say(lang, "お名前", "Name"), say(lang, f"{ride.given_name} 様", ride.given_name)),
        (say(lang, "年代", "Age band"), age_band_text(ride.age_band, lang)),
        (say(lang, "制度", "Program"), ride.program_name),
        (
            say(lang, "残り(仮)", "Balance (provisional)") if provisional else say(lang, "残り", "Balance"),
            balance,
        ),
    ]
    width = max(len(label) for label, _ in rows) + 1
    pad = "　" if lang == "ja" else " "  # full-width space keeps Japanese labels aligned
    return [f"  {label}{pad * (width - len(label))}{value}" for label, value in rows]


def describe_kept_boarding(facts: RideFacts, lang: str, *, already: bool) -> list[str]:
    """A boarding accepted offline (pending until sync), or a card already on board in this car."""
    if already:
        head = say(
            lang,
            f"この方はすでに乗車中です（通し番号 {facts.sequence}）。二重には記録していません。",
            f"This rider is already on board (sequence {facts.sequence}); nothing was recorded twice.",
        )
        return [head, *_ride_facts(facts, lang, provisional=not facts.confirmed)]
    return [
        say(
            lang,
            f"オフラインで受け付けました（未送信・通し番号 {facts.sequence}）",
            f"Accepted offline (pending, sequence {facts.sequence})",
        ),
        say(
            lang,
            "※ まだサーバーで確定していません。通信が戻ったら `driver-terminal sync` で送信してください。",
            "Note: not confirmed by the server yet. Run `driver-terminal sync` when the connection is back.",
        ),
        *_ride_facts(facts, lang, provisional=True),
    ]


def describe_fare(ride: Ride, lang: str) -> list[str]:
    if ride.rider_share is None or ride.meter_fare is None:
        raise UnexpectedResponse("the ride has no fare split")
    rule = "=" * 44
    lines = [rule, say(lang, "  お客様のお支払い", "  The rider pays"), ""]
    lines += ["  " + row for row in big_amount(ride.rider_share)]
    lines += [
        "",
        say(
            lang, f"  お支払い: {yen(ride.rider_share, lang)}", f"  Rider pays: {yen(ride.rider_share, lang)}"
        ),
        rule,
        say(
            lang,
            f"  メーター料金 {yen(ride.meter_fare, lang)} − 助成 {yen(ride.subsidy or 0, lang)}",
            f"  Meter fare {yen(ride.meter_fare, lang)} − subsidy {yen(ride.subsidy or 0, lang)}",
        ),
    ]
    if ride.replayed:
        lines.append(
            say(lang, "  ※ この料金はすでに記録されています", "  Note: this fare was already recorded")
        )
    return lines


def describe_ride(ride: Ride, lang: str) -> list[str]:
    ja, en = STATUS_TEXT[ride.status]
    lines = [
        say(lang, f"乗車番号 {ride.ride_id}: {ja}", f"Ride {ride.ride_id}: {en}"),
        say(
            lang,
            f"  乗車時刻 {japan_time(ride.boarded_at, lang)}",
            f"  Boarded {japan_time(ride.boarded_at, lang)}",
        ),
    ]
    lines += _ride_facts(ride, lang)
    if ride.meter_fare is not None:
        lines += [
            say(
                lang,
                f"  メーター料金 {yen(ride.meter_fare, lang)}",
                f"  Meter fare {yen(ride.meter_fare, lang)}",
            ),
            say(lang, f"  助成 {yen(ride.subsidy or 0, lang)}", f"  Subsidy {yen(ride.subsidy or 0, lang)}"),
            say(
                lang,
                f"  お支払い {yen(ride.rider_share or 0, lang)}",
                f"  Rider paid {yen(ride.rider_share or 0, lang)}",
            ),
        ]
    return lines


# -- errors ---------------------------------------------------------------------------------------


def _fail(lines: list[str], code: int) -> NoReturn:
    for line in lines:
        click.echo(line, err=True)
    raise click.exceptions.Exit(code)


def _api_error_lines(error: ApiError, lang: str) -> list[str]:
    lines = [error.title]
    for name, problems in error.field_errors.items():
        text = "; ".join(str(p) for p in problems) if isinstance(problems, list) else str(problems)
        lines.append(f"  {name}: {text}")
    lines.append(say(lang, f"（コード: {error.code}）", f"(code: {error.code})"))
    return lines


def _unreachable_lines(lang: str) -> list[str]:
    return [
        say(
            lang,
            "サーバーに接続できませんでした。通信状態を確認して、もう一度お試しください。",
            "Could not reach the server. Check the connection and try again.",
        )
    ]


def friendly(fn: F) -> F:
    """Every failure becomes a sentence for the driver and an exit status (see the module docstring)."""

    @functools.wraps(fn)
    def inner(*args: Any, **kwargs: Any) -> Any:
        lang = _lang(kwargs.get("lang"))
        try:
            return fn(*args, **kwargs)
        except BoardingUnanswered as error:
            _fail(
                [
                    say(
                        lang,
                        f"乗車の記録を確認できませんでした（端末通し番号 {error.entry.sequence}）。"
                        "まだ乗車扱いにしないでください。",
                        f"The boarding could not be confirmed (terminal sequence {error.entry.sequence}). "
                        "Do not treat the rider as boarded yet.",
                    ),
                    say(
                        lang,
                        "通信が戻ったら `driver-terminal resend` で同じ番号のまま再送してください。",
                        "When the connection is back, run `driver-terminal resend` to send it again.",
                    ),
                ],
                EXIT_UNANSWERED,
            )
        except ApiError as error:
            if error.is_refusal:
                _fail(_api_error_lines(error, lang), EXIT_REFUSED)
            _fail(_api_error_lines(error, lang), EXIT_UNANSWERED)
        except ApiUnreachable:
            _fail(_unreachable_lines(lang), EXIT_UNANSWERED)
        except UnexpectedResponse:
            _fail(
                [
                    say(
                        lang,
                        "サーバーの応答を理解できませんでした。",
                        "The server's answer could not be understood.",
                    )
                ],
                EXIT_UNANSWERED,
            )
        except CardProblem as error:
            _fail([error.message(lang)], EXIT_REFUSED)
        except OfflineRefusal as error:
            _fail([rider_message(error.code, lang, **error.params)], EXIT_REFUSED)
        except RideRefused as error:
            _fail([rider_message(error.code, lang)], EXIT_REFUSED)
        except SnapshotInvalid:
            _fail(
                [
                    say(
                        lang,
                        "オフライン用データの署名を確認できませんでした。保存していません。",
                        "The offline snapshot's signature could not be verified; it was not kept.",
                    )
                ],
                EXIT_REFUSED,
            )
        except NotEnrolled as error:
            _fail(
                [
                    say(
                        lang,
                        str(error),
                        f"This terminal is not enrolled yet ({error.data_dir}). Run `driver-terminal enrol` "
                        "first.",
                    )
                ],
                EXIT_NOT_SET_UP,
            )
        except (TerminalKeyError, StoreError) as error:
            _fail([str(error)], EXIT_NOT_SET_UP)

    return cast(F, inner)


# -- parameters -----------------------------------------------------------------------------------


class YenAmount(click.ParamType[int]):
    """Yen as a driver types it: 1840, 1,840, ¥1,840, 1840円, or in full-width digits."""

    name = "yen"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            amount = value
        else:
            text = unicodedata.normalize("NFKC", str(value)).strip()
            text = text.removeprefix("¥").removesuffix("円").replace(",", "").strip()
            if not text.isascii() or not text.isdigit():
                self.fail(f"金額は数字で入力してください（例: 1840）: {value}", param, ctx)
            amount = int(text)
        if amount > MAX_METER_FARE:
            self.fail(f"金額は {MAX_METER_FARE:,}円までです: {value}", param, ctx)
        return amount


class RideId(click.ParamType[int]):
    name = "ride_id"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        text = unicodedata.normalize("NFKC", str(value)).strip()
        if not text.isascii() or not text.isdigit() or int(text) < 1:
            self.fail(f"乗車番号は数字で入力してください: {value}", param, ctx)
        return int(text)


def _lang(command_lang: str | None) -> str:
    if command_lang:
        return command_lang
    ctx = click.get_current_context(silent=True)
    state = ctx.find_object(_State) if ctx is not None else None
    return state.lang if state is not None else "ja"


lang_option = click.option(
    "--lang",
    type=click.Choice(LANGUAGES),
    default=None,
    help="表示言語 / display language (ja, en)",
)


# -- commands -------------------------------------------------------------------------------------


@click.group(help="車載端末（タクシー利用券） / in-car terminal for taxi vouchers")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar=DATA_DIR_ENV,
    default=DEFAULT_DATA_DIR,
    show_default=True,
    help="端末の鍵・番号・記録を置く場所 / where the key, numbers and journal are kept",
)
@lang_option
@click.pass_context
def main(ctx: click.Context, data_dir: Path, lang: str | None) -> None:
    environment = ctx.obj if isinstance(ctx.obj, TerminalEnvironment) else TerminalEnvironment()
    ctx.obj = _State(environment, data_dir, lang or "ja")


@main.command(help="端末を登録する / enrol this terminal with a one-time code")
@click.option("--api", "api_url", required=True, help="API の URL (例: https://taxi.example.jp)")
@click.option("--code", required=True, help="登録コード (例: ABCD-EFGH-JKLM)")
@lang_option
@click.pass_obj
@friendly
def enrol(state: _State, api_url: str, code: str, lang: str | None) -> None:
    lang = _lang(lang)
    env = state.environment
    try:
        identity = enrol_terminal(
            state.data_dir,
            api_url,
            code,
            http=env.http,
            clock=env.clock,
            sleep=env.sleep,
            lang=lang,
            retry=env.retry,
        )
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--api") from error
    click.echo(
        say(
            lang,
            f"端末を登録しました（端末番号 {identity.terminal_id}、車両 {identity.vehicle_id}）",
            f"Terminal enrolled (terminal {identity.terminal_id}, vehicle {identity.vehicle_id})",
        )
    )


@main.command(help="乗車を記録する / board a rider with their card")
@click.option("--card", "card_path", required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--pin", default=None, help="利用者証明用暗証番号(4桁) / the card's 4-digit PIN")
@click.option("--tap", is_flag=True, help="暗証番号なし(制度が認める場合のみ) / PIN-less tap")
@click.option("--driver", "driver_code", default=None, help="運転者コード / driver code")
@click.option("--trip", "trip_ref", default=None, help="相乗りの共通番号 / shared-ride reference")
@click.option(
    "--offline", is_flag=True, help="サーバーに問い合わせずに受け付ける / decide offline, from the snapshot"
)
@lang_option
@click.pass_obj
@friendly
def board(
    state: _State,
    card_path: Path,
    pin: str | None,
    tap: bool,
    driver_code: str | None,
    trip_ref: str | None,
    offline: bool,
    lang: str | None,
) -> None:
    lang = _lang(lang)
    if pin is not None and tap:
        raise click.UsageError(
            say(lang, "--pin と --tap は同時に使えません。", "Use --pin or --tap, not both.")
        )
    if pin is None and not tap:
        pin = click.prompt(say(lang, "暗証番号(4桁)", "PIN (4 digits)"), hide_input=True)
    if pin is not None:
        check_pin_format(pin)
    with state.terminal(lang) as terminal:
        card = state.environment.open_card(card_path)
        boarding = terminal.board(
            card, pin=pin, driver_code=driver_code, trip_ref=trip_ref, online=not offline
        )
        lines = (
            describe_boarding(boarding.ride, lang)
            if boarding.ride is not None
            else describe_kept_boarding(boarding.facts, lang, already=boarding.already_on_board)
        )
    for line in lines:
        click.echo(line)


@main.command(help="降車時の料金を入力する / enter the meter fare at alighting")
@click.argument("ride_id", type=RideId())
@click.argument("amount", type=YenAmount())
@lang_option
@click.pass_obj
@friendly
def fare(state: _State, ride_id: int, amount: int, lang: str | None) -> None:
    lang = _lang(lang)
    with state.terminal(lang) as terminal:
        ride = terminal.set_fare(ride_id, amount)
    for line in describe_fare(ride, lang):
        click.echo(line)


@main.command(help="乗車を取り消す / void a ride")
@click.argument("ride_id", type=RideId())
@click.option("--reason", required=True, help="取り消しの理由 / why")
@lang_option
@click.pass_obj
@friendly
def void(state: _State, ride_id: int, reason: str, lang: str | None) -> None:
    lang = _lang(lang)
    if not reason.strip():
        raise click.BadParameter(
            say(lang, "理由を入力してください。", "Give a reason."), param_hint="--reason"
        )
    with state.terminal(lang) as terminal:
        ride = terminal.void(ride_id, reason)
    click.echo(
        say(
            lang,
            f"乗車番号 {ride.ride_id} を取り消しました。残り: {balance_text(ride.unit, ride.balance, lang)}",
            f"Ride {ride.ride_id} voided. Balance: {balance_text(ride.unit, ride.balance, lang)}",
        )
    )


@main.command(help="乗車の状態を見る / show a ride")
@click.argument("ride_id", type=RideId())
@lang_option
@click.pass_obj
@friendly
def ride(state: _State, ride_id: int, lang: str | None) -> None:
    lang = _lang(lang)
    with state.terminal(lang) as terminal:
        found = terminal.look_up(ride_id)
    for line in describe_ride(found, lang):
        click.echo(line)


@main.command(help="応答のなかった乗車を再送する / re-send unanswered boardings")
@lang_option
@click.pass_obj
@friendly
def resend(state: _State, lang: str | None) -> None:
    lang = _lang(lang)
    with state.terminal(lang) as terminal:
        outcomes = terminal.resend_unanswered()
    if not outcomes:
        click.echo(say(lang, "再送する乗車はありません。", "Nothing to re-send."))
        return
    unanswered = 0
    for outcome in outcomes:
        number = outcome.entry.sequence
        if outcome.ride is not None:
            click.echo(
                say(
                    lang,
                    f"通し番号 {number}: 記録されました"
                    f"（乗車番号 {outcome.ride.ride_id}、{outcome.ride.given_name} 様）",
                    f"Sequence {number}: recorded (ride {outcome.ride.ride_id}, {outcome.ride.given_name})",
                )
            )
        elif outcome.refusal is not None:
            click.echo(
                say(lang, f"通し番号 {number}: 記録されませんでした", f"Sequence {number}: not recorded")
                + f" — {outcome.refusal.title}"
            )
        else:
            unanswered += 1
            click.echo(
                say(lang, f"通し番号 {number}: まだ応答がありません", f"Sequence {number}: still no answer")
            )
    if unanswered:
        raise click.exceptions.Exit(EXIT_UNANSWERED)


JOURNAL_TEXT = {
    JournalState.SENDING: ("応答待ち", "awaiting answer"),
    JournalState.BOARDED: ("乗車中", "on board"),
    JournalState.COMPLETED: ("降車済み", "completed"),
    JournalState.VOIDED: ("取り消し", "voided"),
    JournalState.REFUSED: ("記録されず", "refused"),
}


@main.command(help="この端末の乗車記録 / this terminal's recent boardings")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@lang_option
@click.pass_obj
@friendly
def journal(state: _State, limit: int, lang: str | None) -> None:
    lang = _lang(lang)
    with state.terminal(lang) as terminal:
        entries = terminal.store.entries(limit)
    if not entries:
        click.echo(say(lang, "記録はまだありません。", "No boardings yet."))
        return
    for entry in entries:
        ja, en = JOURNAL_TEXT[entry.state]
        ride_part = f" #{entry.ride_id}" if entry.ride_id is not None else ""
        code = (entry.answer or {}).get("code") if entry.state is JournalState.REFUSED else None
        click.echo(
            f"{entry.sequence:>6}  {japan_time(entry.created_at, lang)}  {say(lang, ja, en)}{ride_part}"
            + (f"  ({code})" if code else "")
        )


@main.command(help="端末の状態 / this terminal and the server")
@lang_option
@click.pass_obj
@friendly
def status(state: _State, lang: str | None) -> None:
    lang = _lang(lang)
    with state.terminal(lang) as terminal:
        identity = terminal.identity
        click.echo(
            say(
                lang,
                f"端末番号 {identity.terminal_id}（車両 {identity.vehicle_id}）",
                f"Terminal {identity.terminal_id} (vehicle {identity.vehicle_id})",
            )
        )
        click.echo(f"API: {identity.api_url}")
        click.echo(
            say(
                lang,
                f"次の通し番号: {terminal.store.next_sequence()}",
                f"Next sequence: {terminal.store.next_sequence()}",
            )
        )
        summary = terminal.status()
        if summary.unanswered:
            click.echo(
                say(
                    lang,
                    f"応答待ちの乗車: {summary.unanswered}件",
                    f"Unanswered boardings: {summary.unanswered}",
                )
            )
        click.echo(
            say(
                lang,
                f"未送信の記録: {summary.pending_records}件",
                f"Records waiting to be sent: {summary.pending_records}",
            )
        )
        if summary.needing_attention:
            click.echo(
                say(
                    lang,
                    f"確認が必要な記録: {summary.needing_attention}件（`driver-terminal sync` で内容を表示）",
                    f"Records needing your attention: {summary.needing_attention}"
                    " (see `driver-terminal sync`)",
                )
            )
        click.echo(
            _snapshot_line(
                summary.snapshot_fetched_at, summary.snapshot_valid_until, summary.snapshot_usable, lang
            )
        )
        if summary.last_sync_at is not None:
            click.echo(
                say(
                    lang,
                    f"最後の送信: {japan_time(summary.last_sync_at, lang)}",
                    f"Last sync: {japan_time(summary.last_sync_at, lang)}",
                )
            )
        try:
            health = terminal.client.health()
        except ApiUnreachable:
            _fail(_unreachable_lines(lang), EXIT_UNANSWERED)
    if health.ok:
        click.echo(say(lang, "サーバー: 正常", "Server: OK"))
    else:
        click.echo(
            say(lang, f"サーバー: 一部停止中（{health.status}）", f"Server: degraded ({health.status})")
        )


def _snapshot_line(fetched: datetime | None, valid_until: datetime | None, usable: bool, lang: str) -> str:
    if fetched is None:
        return say(lang, "オフライン用データ: なし", "Offline snapshot: none")
    if valid_until is None:
        return say(lang, "オフライン用データ: 署名を確認できません", "Offline snapshot: signature not valid")
    state = say(lang, "有効", "valid") if usable else say(lang, "期限切れ", "expired")
    got, until = japan_time(fetched, lang), japan_time(valid_until, lang)
    return say(
        lang,
        f"オフライン用データ: {got} 取得、{until} まで（{state}）",
        f"Offline snapshot: fetched {got}, until {until} ({state})",
    )


@main.command(help="オフライン用データを取得する / fetch the signed snapshot for offline work")
@lang_option
@click.pass_obj
@friendly
def snapshot(state: _State, lang: str | None) -> None:
    lang = _lang(lang)
    with state.terminal(lang) as terminal:
        fresh = terminal.refresh_snapshot()
    until = japan_time(fresh.valid_until, lang)
    cards, programs, revoked = len(fresh.bindings), len(fresh.programs), len(fresh.revoked_serials)
    click.echo(
        say(
            lang,
            f"オフライン用データを取得しました（署名確認済み、{until} まで有効）",
            f"Snapshot fetched and verified (valid until {until})",
        )
    )
    click.echo(
        say(
            lang,
            f"  登録カード {cards}件、制度 {programs}件、失効証明書 {revoked}件",
            f"  {cards} bound cards, {programs} programs, {revoked} revoked certificates",
        )
    )


SYNC_STATUS_TEXT = {
    "accepted": ("受付", "accepted"),
    "duplicate": ("受付済み(重複なし)", "already received"),
    "conflict": ("要確認", "needs review"),
    "rejected": ("記録できず", "rejected"),
}


@main.command(help="オフラインの記録を送信する / send the records made offline")
@lang_option
@click.pass_obj
@friendly
def sync(state: _State, lang: str | None) -> None:
    lang = _lang(lang)
    with state.terminal(lang) as terminal:
        terminal.tell_shifts()
        resent = terminal.resend_unanswered()
        report = terminal.sync()
    for outcome in resent:
        if outcome.ride is not None:
            click.echo(
                say(
                    lang,
                    f"通し番号 {outcome.entry.sequence}: 応答のなかった乗車が記録されました"
                    f"（乗車番号 {outcome.ride.ride_id}）",
                    f"Sequence {outcome.entry.sequence}: the unanswered boarding is recorded "
                    f"(ride {outcome.ride.ride_id})",
                )
            )
        elif outcome.refusal is not None:
            click.echo(
                say(
                    lang,
                    f"通し番号 {outcome.entry.sequence}: 応答のなかった乗車は記録されませんでした",
                    f"Sequence {outcome.entry.sequence}: the unanswered boarding was not recorded",
                )
                + f" — {outcome.refusal.title}"
            )
    if report.sent == 0:
        click.echo(say(lang, "送信する記録はありません。", "Nothing to send."))
    else:
        counts = "、".join(
            f"{say(lang, ja, en)} {report.count(status)}"
            for status, (ja, en) in SYNC_STATUS_TEXT.items()
            if report.count(status)
        )
        click.echo(say(lang, f"{report.sent}件を送信しました: {counts}", f"Sent {report.sent}: {counts}"))
    for record in report.needing_attention:
        explanation = sync_explanation(record.status.value, lang)
        heading, advice = explanation if explanation is not None else ("", "")
        click.echo(
            say(lang, f"通し番号 {record.sequence}: {heading}", f"Sequence {record.sequence}: {heading}")
            + (f" — {record.title}" if record.title else "")
        )
        click.echo(f"  {advice}")
    unanswered = sum(1 for outcome in resent if outcome.still_unanswered is not None)
    if report.still_pending or unanswered:
        waiting = report.still_pending + unanswered
        click.echo(say(lang, f"未送信の記録: {waiting}件", f"Still waiting: {waiting}"))
        raise click.exceptions.Exit(EXIT_UNANSWERED)


@main.command(help="車内の画面を表示する / serve the kiosk screen to the in-car browser")
@click.option("--host", default="127.0.0.1", show_default=True, help="待ち受けるアドレス / listen address")
@click.option("--port", type=click.IntRange(1, 65535), default=8090, show_default=True)
@click.option(
    "--virtual-reader",
    "card_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="仮想カードのフォルダ(開発・デモ用) / folder of virtual cards (development, demos)",
)
@click.option("--api", "api_url", default=None, help="登録に使う API の URL / the API URL for enrolment")
@click.pass_obj
def kiosk(state: _State, host: str, port: int, card_dir: Path | None, api_url: str | None) -> None:
    from driver_terminal.kiosk.app import serve_kiosk

    click.echo(
        say(
            state.lang,
            f"車内の画面: http://{host}:{port}/ （Ctrl+C で終了）",
            f"Kiosk at http://{host}:{port}/ (Ctrl+C to stop)",
        )
    )
    serve_kiosk(state.data_dir, host=host, port=port, card_dir=card_dir, lang=state.lang, api_url=api_url)
