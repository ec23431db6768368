"""The CLI over a scripted API: what the driver reads, and the exit status, for each outcome."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner, Result

from driver_terminal.cli import (
    EXIT_NOT_SET_UP,
    EXIT_REFUSED,
    EXIT_UNANSWERED,
    TerminalEnvironment,
    big_amount,
    main,
)
from driver_terminal.client import RetryPolicy
from tests.unit.driver_terminal.fakes import (
    API_URL,
    PIN,
    FakeApi,
    FakeCard,
    MovableClock,
    body_of,
    challenge_json,
    enrolment_json,
    problem,
    ride_json,
)

COMPLETED = ride_json(status="completed", meter_fare=1840, subsidy=920, rider_share=920)


def environment(api: FakeApi, card: FakeCard | None = None) -> TerminalEnvironment:
    reader = card or FakeCard()
    return TerminalEnvironment(
        http=api.http(),
        clock=MovableClock(),
        sleep=lambda _s: None,
        open_card=lambda _path: reader,
        retry=RetryPolicy(attempts=2),
    )


def run(
    api: FakeApi, data_dir: Path, *args: str, card: FakeCard | None = None, stdin: str | None = None
) -> Result:
    return CliRunner().invoke(
        main, ["--data-dir", str(data_dir), *args], obj=environment(api, card), input=stdin
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    api = FakeApi().on("POST /terminals/enrol", httpx.Response(201, json=enrolment_json(7)))
    result = run(api, tmp_path / "t", "enrol", "--api", API_URL, "--code", "ABCD-EFGH-JKLM")
    assert result.exit_code == 0, result.output
    assert "端末を登録しました（端末番号 7、車両 3）" in result.stdout
    return tmp_path / "t"


def boarding_api(*replies: httpx.Response | Exception) -> FakeApi:
    api = FakeApi().on("POST /card-challenges", httpx.Response(201, json=challenge_json()))
    return api.on("POST /rides", *(replies or (httpx.Response(201, json=ride_json()),)))


def test_big_amount_draws_the_amount_in_five_rows_of_block_characters() -> None:
    rows = big_amount(920)
    assert len(rows) == 5
    assert all("██" in row for row in rows)
    assert len(big_amount(12_340)[0]) > len(rows[0])


@pytest.mark.parametrize("typed", ["1840", "1,840", "¥1,840", "１８４０", "1840円"])
def test_fare_accepts_the_amount_as_drivers_type_it(data_dir: Path, typed: str) -> None:
    api = FakeApi().on("POST /rides/41/fare", httpx.Response(200, json=COMPLETED))
    result = run(api, data_dir, "fare", "41", typed)
    assert result.exit_code == 0, result.output
    assert body_of(api.sent("POST /rides/41/fare")[0]) == {"meter_fare": 1840}
    assert "お支払い: 920円" in result.stdout


@pytest.mark.parametrize("typed", ["abc", "-5", "12.5", "1000001"])
def test_amount_that_is_not_a_fare_is_refused_in_japanese_before_sending(data_dir: Path, typed: str) -> None:
    api = FakeApi()
    result = run(api, data_dir, "fare", "--", "41", typed)  # "--" so that "-5" reaches the amount
    assert result.exit_code == 2
    assert "金額は" in result.stderr
    assert api.requests == []


def test_fare_in_english(data_dir: Path) -> None:
    api = FakeApi().on("POST /rides/41/fare", httpx.Response(200, json=COMPLETED))
    result = CliRunner().invoke(
        main, ["--data-dir", str(data_dir), "--lang", "en", "fare", "41", "1840"], obj=environment(api)
    )
    assert "Rider pays: ¥920" in result.stdout
    assert {r.headers["Accept-Language"] for r in api.requests} == {"en"}


def test_commands_before_enrolment_say_so_in_japanese(tmp_path: Path) -> None:
    result = run(FakeApi(), tmp_path / "new", "ride", "41")
    assert result.exit_code == EXIT_NOT_SET_UP
    assert "この端末はまだ登録されていません" in result.stderr


def test_commands_before_enrolment_say_so_in_english_when_asked(tmp_path: Path) -> None:
    result = run(FakeApi(), tmp_path / "new", "--lang", "en", "status")
    assert result.exit_code == EXIT_NOT_SET_UP
    assert "This terminal is not enrolled yet" in result.stderr
    assert "登録" not in result.stderr


def test_board_shows_the_rider_for_a_visual_check(data_dir: Path) -> None:
    result = run(boarding_api(), data_dir, "board", "--card", "card.json", "--pin", PIN)
    assert result.exit_code == 0, result.output
    assert "乗車を受け付けました（乗車番号 41）" in result.stdout
    assert "花子 様" in result.stdout


def test_refusal_shows_the_apis_sentence_and_its_code(data_dir: Path) -> None:
    api = boarding_api(problem(422, "entitlement.exhausted", "今年度の利用回数(残高)を使い切っています。"))
    result = run(api, data_dir, "board", "--card", "card.json", "--pin", PIN)
    assert result.exit_code == EXIT_REFUSED
    assert "今年度の利用回数(残高)を使い切っています。" in result.stderr
    assert "（コード: entitlement.exhausted）" in result.stderr


def test_no_answer_during_boarding_tells_the_driver_not_to_treat_the_rider_as_boarded(data_dir: Path) -> None:
    result = run(
        boarding_api(httpx.ConnectError("down")), data_dir, "board", "--card", "c.json", "--pin", PIN
    )
    assert result.exit_code == EXIT_UNANSWERED
    assert "まだ乗車扱いにしないでください" in result.stderr
    assert "driver-terminal resend" in result.stderr


def test_resend_reports_what_became_of_each_unanswered_boarding(data_dir: Path) -> None:
    run(boarding_api(httpx.ConnectError("down")), data_dir, "board", "--card", "c.json", "--pin", PIN)
    back = FakeApi().on("POST /rides", httpx.Response(200, json=ride_json(replayed=True)))
    result = run(back, data_dir, "resend")
    assert result.exit_code == 0, result.output
    assert "通し番号 1: 記録されました（乗車番号 41、花子 様）" in result.stdout
    assert "再送する乗車はありません。" in run(FakeApi(), data_dir, "resend").stdout


def test_journal_lists_this_terminals_boardings(data_dir: Path) -> None:
    run(boarding_api(), data_dir, "board", "--card", "c.json", "--pin", PIN)
    result = run(FakeApi(), data_dir, "journal")
    assert result.exit_code == 0
    assert "乗車中 #41" in result.stdout


def test_pin_and_tap_together_is_a_usage_error(data_dir: Path) -> None:
    result = run(boarding_api(), data_dir, "board", "--card", "c.json", "--pin", PIN, "--tap")
    assert result.exit_code == 2


def test_malformed_pin_is_refused_before_the_card_is_touched(data_dir: Path) -> None:
    card = FakeCard()
    result = run(boarding_api(), data_dir, "board", "--card", "c.json", "--pin", "12", card=card)
    assert result.exit_code == EXIT_REFUSED
    assert "暗証番号は数字4桁です。" in result.stderr
    assert card.tries_left == 3


def test_wrong_pin_reports_tries_left(data_dir: Path) -> None:
    result = run(boarding_api(), data_dir, "board", "--card", "c.json", "--pin", "0000")
    assert result.exit_code == EXIT_REFUSED
    assert "あと2回間違えるとロックされます" in result.stderr


def test_card_off_the_reader_asks_to_hold_it_again(data_dir: Path) -> None:
    result = run(boarding_api(), data_dir, "board", "--card", "c.json", "--tap", card=FakeCard(present=False))
    assert result.exit_code == EXIT_REFUSED
    assert "カードをもう一度しっかりかざしてください" in result.stderr


def test_field_errors_are_listed_under_the_title(data_dir: Path) -> None:
    invalid = problem(
        422, "validation", "入力内容に誤りがあります。", errors={"reason": ["Length must be 1-200."]}
    )
    api = FakeApi().on("POST /rides/41/void", invalid)
    result = run(api, data_dir, "void", "41", "--reason", "x" * 300)
    assert result.exit_code == EXIT_REFUSED
    assert "入力内容に誤りがあります。" in result.stderr
    assert "reason: Length must be 1-200." in result.stderr


def test_status_says_when_the_server_cannot_be_reached(data_dir: Path) -> None:
    result = run(FakeApi().on("GET /health", httpx.ConnectError("down")), data_dir, "status")
    assert result.exit_code == EXIT_UNANSWERED
    assert "端末番号 7" in result.stdout
    assert "サーバーに接続できませんでした" in result.stderr


# -- offline: status, snapshot, sync --


def keep_offline_boarding(data_dir: Path) -> None:
    from driver_terminal.store import TerminalStore
    from tests.unit.driver_terminal.fakes import NOW

    with TerminalStore.open(data_dir) as store:
        store.keep_offline_boarding(
            record={"kind": "board", "sequence": 1, "idempotency_key": "ride-1", "card": {}},
            answer={"given_name": "花子"},
            now=NOW,
            fingerprint="ab",
            program_code="elderly",
            units_held=1,
        )


HEALTHY = httpx.Response(200, json={"status": "ok", "database": "ok", "broker": "ok"})


def test_status_shows_what_waits_to_be_sent_and_the_snapshot(data_dir: Path) -> None:
    keep_offline_boarding(data_dir)
    result = run(FakeApi().on("GET /health", HEALTHY), data_dir, "status")
    assert result.exit_code == 0, result.output
    assert "未送信の記録: 1件" in result.stdout
    assert "オフライン用データ: なし" in result.stdout


def test_sync_with_nothing_to_send_says_so(data_dir: Path) -> None:
    result = run(FakeApi(), data_dir, "sync")
    assert (result.exit_code, result.stdout.strip()) == (0, "送信する記録はありません。")


def test_sync_explains_a_conflict_to_the_driver(data_dir: Path) -> None:
    keep_offline_boarding(data_dir)
    answer = {
        "results": [
            {
                "sequence": 1,
                "status": "conflict",
                "ride_id": 9,
                "code": "entitlement.exhausted",
                "title": "今年度の利用回数(残高)を使い切っています。",
            }
        ],
        "last_sequence": 1,
        "gaps": [],
    }
    api = FakeApi().on("POST /terminals/sync", httpx.Response(200, json=answer))
    api.on("GET /rides/9", httpx.Response(200, json=ride_json(9)))
    result = run(api, data_dir, "sync")
    assert result.exit_code == 0, result.output
    assert "1件を送信しました: 要確認 1" in result.stdout
    assert (
        "通し番号 1: 記録しましたが、市の確認が必要です — 今年度の利用回数(残高)を使い切っています。"
        in result.stdout
    )
    assert len(api.sent("POST /terminals/sync")) == 1
    sent = body_of(api.sent("POST /terminals/sync")[0])["records"]
    assert [r["idempotency_key"] for r in sent] == ["ride-1"]


def test_sync_without_a_network_keeps_the_records_and_says_so(data_dir: Path) -> None:
    keep_offline_boarding(data_dir)
    result = run(FakeApi().on("POST /terminals/sync", httpx.ConnectError("no signal")), data_dir, "sync")
    assert result.exit_code == EXIT_UNANSWERED
    assert "サーバーに接続できませんでした" in result.stderr


def test_snapshot_that_does_not_verify_is_not_kept(data_dir: Path) -> None:
    api = FakeApi().on("GET /terminals/snapshot-key", httpx.Response(200, json={"public_key": "A" * 43}))
    api.on(
        "GET /terminals/snapshot",
        httpx.Response(200, json={"snapshot": {}, "signature": "AAAA", "public_key": "x"}),
    )
    result = run(api, data_dir, "snapshot")
    assert result.exit_code == EXIT_REFUSED
    assert "署名を確認できませんでした" in result.stderr


def test_board_offline_without_a_snapshot_tells_the_passenger_the_normal_fare_applies(data_dir: Path) -> None:
    result = run(FakeApi(), data_dir, "board", "--card", "x.json", "--pin", PIN, "--offline")
    assert result.exit_code == EXIT_REFUSED
    assert "今回は通常料金になります" in result.stderr
