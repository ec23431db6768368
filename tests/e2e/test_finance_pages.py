"""The finance pages in headless Debian Chromium against the real API (PostgreSQL when TEST_DATABASE_URL is
set): a finance clerk closes September and watches it operator by operator, reads a statement a page of
lines at a time and confirms it; the same clerk is refused the approval in plain Japanese; a second person
approves; the files arrive (CSV with BOM, PDF, the Zengin file); the statement is paid; a re-run leaves the
confirmed statement alone; the charts draw the month's rides and subsidy by operator, district and program;
the operator's admin disputes a statement, finance checks the operator's ride log against it and answers
with an adjustment on the next month's statement.

The city has its own database and its own API thread. The settlement worker is stood in for by
`InlineWorker`, which runs the very service steps the Celery tasks run (begin, one transaction per
operator, finish) in a thread, and holds after the first operator until the test has seen the page show
it, so progress per operator is seen without timing. Screenshots: docs/screens/40-*.png (E2E_SCREENSHOTS_DIR).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.serving import make_server

from settlement import service
from tests import factories as f
from tests.conftest import create_postgres_database, drop_postgres_database, postgres_admin_url
from tests.e2e.conftest import START, RunningClock, World, sign_in
from tests.e2e.conftest import check_screen as check_page
from tests.reports_factories import ride_of
from tests.unit.settlement.factories import jst
from voucher_api import migrate
from voucher_api.app import create_app
from voucher_api.clock import JST
from voucher_api.db import make_engine, make_session_factory
from voucher_api.demo import REMITTER
from voucher_api.models import Operator, StaffRole, Statement, StatementLine, StatementStatus, Vehicle
from voucher_api.services import staff
from voucher_api.services.identity import CardVerifier

pytestmark = pytest.mark.e2e

SEPTEMBER = "令和8年9月"
OP1 = "尾花沢タクシー株式会社"
OP2 = "銀山観光タクシー有限会社"
BOM = b"\xef\xbb\xbf"
BUS_RULES: dict[str, Any] = {
    "eligibility": [{"type": "district", "districts": ["03", "05"]}, {"type": "min_age", "years": 65}],
    "subsidy": {"formula": "fixed_copay", "copay": 500, "cap_per_ride": 2000},
    "grant": {"unit": "ride", "amount": 48},
    "limits": {},
    "options": {},
}


class InlineWorker:
    """The task sender of this city's API: instead of a broker, close the period in a thread with the same
    service steps as settlement.tasks (each operator its own transaction). After the first operator it
    waits for `go_on`; a failure marks the run failed, as the task's on_failure does."""

    def __init__(self, sessions: sessionmaker[Session], clock: RunningClock) -> None:
        self.sessions = sessions
        self.clock = clock
        self.go_on = threading.Event()
        self.threads: list[threading.Thread] = []

    def send(self, name: str, *, args: list[Any], kwargs: dict[str, Any] | None = None) -> str:
        assert name == "settlement.close_period", name
        thread = threading.Thread(target=self._close, args=(int(args[0]),), daemon=True)
        self.threads.append(thread)
        thread.start()
        return f"inline-{args[0]}"

    def ping(self) -> bool:
        return True

    def _close(self, run_id: int) -> None:
        try:
            with self.sessions() as session:
                plan = service.begin_run(session, run_id=run_id, now=self.clock.now())
                session.commit()
            for n, operator_id in enumerate(plan.operator_ids):
                if n == 1:
                    self.go_on.wait(timeout=60)
                with self.sessions() as session:
                    service.close_operator(
                        session, run_id=run_id, operator_id=operator_id, now=self.clock.now()
                    )
                    session.commit()
            with self.sessions() as session:
                service.finish_run(session, run_id=run_id, now=self.clock.now())
                session.commit()
        except Exception as exc:
            with self.sessions() as session:
                service.fail_run(session, run_id=run_id, error=repr(exc), now=self.clock.now())
                session.commit()
            raise


@dataclass
class FinanceCity:
    base_url: str
    sessions: sessionmaker[Session]
    worker: InlineWorker
    operators: dict[str, int] = field(default_factory=dict)

    def has_statements(self) -> bool:
        with self.sessions() as session:
            return bool(session.scalar(select(func.count()).select_from(Statement)))

    def statement(self, code: str) -> Statement:
        with self.sessions() as session:
            found = session.scalar(
                select(Statement).where(
                    Statement.operator_id == self.operators[code], Statement.period == date(2026, 9, 1)
                )
            )
            assert found is not None
            return found


def _seed(session: Session) -> dict[str, int]:
    """Two operators, three programs, residents in four districts; rides from July to September 2026."""
    mun = f.municipality(session)
    mun.remitter = dict(REMITTER)
    fleets: dict[str, tuple[int, int, int]] = {}
    for code, name, bank, branch, account, holder in (
        ("OP01", OP1, "0122", "451", "0345120", "カ)オバナザワタクシー"),
        ("OP02", OP2, "0508", "332", "0211874", "ユ)ギンザンカンコウタクシー"),
    ):
        op = Operator(
            municipality_id=mun.id,
            code=code,
            name=name,
            name_kana=holder,
            bank_code=bank,
            branch_code=branch,
            account_type="ordinary",
            account_number=account,
            account_holder_kana=holder,
            created_at=f.NOW,
        )
        session.add(op)
        session.flush()
        vehicle = f.vehicle(session, op)
        fleets[code] = (op.id, vehicle.id, f.enrolled_terminal(session, mun, vehicle).terminal_id)
    elderly = f.program(session, mun, code="elderly")  # 50 % of the fare, at most 1,000 yen a ride
    bus = f.program(session, mun, code="bus_abolished", rules=BUS_RULES)  # the rider pays 500
    bus.name, bus.name_en = "路線バス廃止地区デマンド補助", "Demand taxi where the bus was abolished"
    riders = [
        (f.entitlement(session, f.resident(session, mun, district_code=d, given_name=n), p), p)
        for d, n, p in (
            ("01", "ハナ", elderly),
            ("02", "キヨ", elderly),
            ("03", "トメ", bus),
            ("05", "ミツ", bus),
        )
    ]

    def rides(code: str, month: int, count: int) -> None:
        operator_id, vehicle_id, terminal_id = fleets[code]
        for n in range(count):
            ent, program = riders[n % len(riders)]
            ride_of(
                session,
                ent,
                program,
                operator_id=operator_id,
                vehicle_id=vehicle_id,
                terminal_id=terminal_id,
                boarded_at=jst(2026, month, 1 + n % 28, 8 + n % 10),
                fare=1200 + (n % 7) * 200,
            )

    rides("OP01", 7, 10)
    rides("OP01", 8, 20)
    rides("OP02", 8, 5)
    rides("OP01", 9, 60)
    rides("OP02", 9, 8)
    for username, display, roles in (
        ("keiri", "会計課 精算担当", [StaffRole.FINANCE, StaffRole.FINANCE_APPROVER]),
        ("shonin", "会計課長(承認)", [StaffRole.FINANCE_APPROVER]),
        ("kansa", "監査委員事務局", [StaffRole.AUDITOR]),
    ):
        staff.create_staff(
            session,
            municipality_id=mun.id,
            username=username,
            display_name=display,
            password=f.PASSWORD,
            roles=roles,
            now=f.NOW,
        )
    staff.create_staff(
        session,
        municipality_id=mun.id,
        username="jigyosha",
        display_name="尾花沢タクシー 管理者",
        password=f.PASSWORD,
        roles=[StaffRole.OPERATOR_ADMIN],
        now=f.NOW,
        operator_id=fleets["OP01"][0],
    )
    return {code: ids[0] for code, ids in fleets.items()}


@pytest.fixture(scope="module")
def city(
    world: World, settings: Any, issuer: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FinanceCity]:
    admin = postgres_admin_url()
    url = (
        create_postgres_database(admin, "voucher_finance")
        if admin
        else f"sqlite:///{tmp_path_factory.mktemp('finance-db') / 'finance.sqlite3'}"
    )
    migrate.upgrade(url)
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with sessions() as session:
        operators = _seed(session)
        session.commit()
    clock = RunningClock(START)
    worker = InlineWorker(sessions, clock)
    verifier = CardVerifier.from_pem(Path(issuer.root_certificate_pem_path).read_bytes())
    app = create_app(settings, session_factory=sessions, clock=clock, verifier=verifier, task_sender=worker)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="e2e-finance", daemon=True)
    thread.start()
    yield FinanceCity(f"http://127.0.0.1:{server.port}", sessions, worker, operators)
    worker.go_on.set()
    for running in worker.threads:
        running.join(timeout=30)
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)
    engine.dispose()
    if admin:
        drop_postgres_database(admin, url)


def another_person(browser: Any, city: FinanceCity) -> Any:
    """A tablet's browser tab on this city's API, in a context of its own (one person signed in)."""
    ctx = browser.new_context(
        viewport={"width": 1280, "height": 900},
        locale="ja-JP",
        timezone_id="Asia/Tokyo",
        base_url=city.base_url,
        accept_downloads=True,
    )
    ctx.set_default_timeout(15_000)
    return ctx.new_page()


@pytest.fixture
def tab(browser: Any, city: FinanceCity) -> Iterator[Any]:
    page = another_person(browser, city)
    yield page
    page.context.close()


def check_screen(page: Any, screens: Path, name: str) -> None:
    """The shared screen checks (screenshot, axe-core, 200 % zoom), and no word left unfilled by a script."""
    words = page.locator("main").inner_text()
    assert "null" not in words, words
    assert "undefined" not in words, words
    assert "{" not in words, words  # a text whose {placeholder} was not filled in
    check_page(page, screens, name)


def download(page: Any, button: str) -> bytes:
    """Press a download button; the file the browser saves."""
    with page.expect_download() as info:
        page.get_by_role("button", name=button).click()
    path = info.value.path()
    return Path(path).read_bytes()


def test_a_month_is_closed_checked_by_two_people_and_paid(
    tab: Any, browser: Any, city: FinanceCity, screens_dir: Path
) -> None:
    page = tab
    sign_in(page, "keiri")
    page.wait_for_url("**/staff/finance")  # finance staff start on the settlement page
    page.get_by_role("heading", name="精算(月ごとの締め)").wait_for()
    assert page.get_by_role("link", name="集計グラフ").is_visible()
    september = page.locator("tr[data-period='2026-09']")
    assert "未実施" in september.inner_text()
    check_screen(page, screens_dir, "40-finance-months")

    # Start the close; the worker holds after the first operator: the page shows one done, one waiting.
    page.get_by_role("button", name=f"締めを始める({SEPTEMBER}分)").click()
    page.get_by_role("heading", name=f"{SEPTEMBER}分の締め: 事業者ごとの進み具合").wait_for()
    page.locator("tr[data-operator='OP01'][data-state='generated']").wait_for()
    assert page.locator("tr[data-operator='OP02']").get_attribute("data-state") == "waiting"
    assert page.locator("#progress-count").inner_text() == "1 / 2 事業者 完了"
    assert "待機中" in page.locator("tr[data-operator='OP02']").inner_text()
    check_screen(page, screens_dir, "41-finance-close-progress")
    city.worker.go_on.set()
    page.locator("tr[data-operator='OP02'][data-state='generated']").wait_for()
    page.locator("#progress[data-status='succeeded']").wait_for()
    assert page.locator("#progress-count").inner_text() == "2 / 2 事業者 完了"
    september.get_by_text("完了").wait_for()

    # The month's statements.
    page.get_by_role("link", name=f"精算書を見る({SEPTEMBER}分)").click()
    page.get_by_role("heading", name=f"{SEPTEMBER}分の精算書").wait_for()
    rows = page.locator("#statements-table tbody tr")
    rows.first.wait_for()
    assert rows.count() == 2
    assert "062120-202609-OP01" in rows.nth(0).inner_text()
    assert "下書き" in rows.nth(0).inner_text()
    check_screen(page, screens_dir, "42-finance-month-statements")

    # One statement: totals and 60 lines, 25 a page.
    page.get_by_role("link", name=f"開く({OP1})").click()
    page.get_by_role("heading", name="精算書 062120-202609-OP01").wait_for()
    op1 = city.statement("OP01")
    assert page.locator("#amount-due").inner_text() == f"{op1.amount_due:,}円"
    assert page.locator("#lines-range").inner_text() == "全60件中 1〜25件目"
    assert page.locator("#lines-table tbody tr").count() == 25
    check_screen(page, screens_dir, "43-finance-statement-lines")
    page.get_by_role("button", name="次の25件").click()
    page.get_by_text("全60件中 26〜50件目", exact=True).wait_for()
    page.get_by_role("button", name="次の25件").click()
    page.get_by_text("全60件中 51〜60件目", exact=True).wait_for()
    assert page.locator("#lines-table tbody tr").count() == 10
    assert page.locator("#lines-table tbody tr").first.get_attribute("data-line") == "51"
    assert page.get_by_role("button", name="次の25件").is_disabled()
    page.get_by_role("button", name="前の25件").click()
    page.get_by_text("全60件中 26〜50件目", exact=True).wait_for()
    page.get_by_role("button", name="前の25件").click()
    page.get_by_text("全60件中 1〜25件目", exact=True).wait_for()

    # The statement's files.
    assert download(page, "精算書 CSV(Excel用)").startswith(BOM)
    assert download(page, "精算書 PDF").startswith(b"%PDF")

    # Confirm; the same person may not approve it (four eyes), said in plain Japanese.
    page.get_by_role("button", name="内容を確認した(確定する)").click()
    page.get_by_text("確認しました。次は別の職員が承認します。").wait_for()
    assert city.statement("OP01").status is StatementStatus.CONFIRMED
    page.get_by_role("button", name="承認する").click()
    page.get_by_text("この精算書を確認したのはあなたです。").wait_for()
    assert "承認は、確認した人とは別の職員" in page.locator("#signoff-message").inner_text()
    assert city.statement("OP01").status is StatementStatus.CONFIRMED
    check_screen(page, screens_dir, "44-finance-same-person-refused")

    # A second person approves, downloads the transfer file and the month's CSVs, then records the payment.
    approver = another_person(browser, city)
    statement_url = f"/staff/finance/statements/{op1.id}"
    sign_in(approver, "shonin", next_path=statement_url)
    approver.get_by_role("heading", name="精算書 062120-202609-OP01").wait_for()
    assert approver.get_by_role("button", name="内容を確認した(確定する)").count() == 0  # not theirs
    approver.get_by_role("button", name="承認する").click()
    approver.get_by_text("承認しました。振込ができます。").wait_for()
    assert city.statement("OP01").status is StatementStatus.APPROVED
    check_screen(approver, screens_dir, "45-finance-approved")
    approver.goto("/staff/finance/2026-09")
    approver.get_by_role("heading", name=f"{SEPTEMBER}分の精算書").wait_for()
    zengin = download(approver, "全銀 総合振込ファイル(承認済みの分)")
    assert zengin.startswith(b"1")  # the header record
    assert f"{op1.amount_due:010d}".encode() in zengin  # the approved statement's transfer
    assert download(approver, "全事業者の明細 CSV").startswith(BOM)
    assert download(approver, "事業者ごとの集計 CSV").startswith(BOM)
    approver.get_by_text("を保存しました").wait_for()
    check_screen(approver, screens_dir, "46-finance-month-files")
    approver.goto(statement_url)
    approver.get_by_role("button", name="支払済みにする").click()
    approver.get_by_text("支払済みにしました。").wait_for()
    assert approver.locator("ol.steps li[aria-current='step']").inner_text() == "支払済み"
    assert city.statement("OP01").status is StatementStatus.PAID
    check_screen(approver, screens_dir, "47-finance-paid")
    approver.context.close()

    # Re-run the month: the paid statement is kept as it is, the draft is rebuilt.
    page.goto("/staff/finance")
    page.get_by_role("button", name=f"締め直す({SEPTEMBER}分)").click()
    page.locator("#progress[data-status='succeeded']").wait_for()
    assert page.locator("tr[data-operator='OP01']").get_attribute("data-state") == "kept"
    assert "確認済みのため変更なし" in page.locator("tr[data-operator='OP01']").inner_text()
    assert page.locator("tr[data-operator='OP02']").get_attribute("data-state") == "generated"
    check_screen(page, screens_dir, "48-finance-rerun")


def test_the_charts_draw_monthly_rides_and_subsidy_by_operator_district_and_program(
    tab: Any, city: FinanceCity, screens_dir: Path
) -> None:
    page = tab
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
    sign_in(page, "kansa", next_path=quote("/staff/finance/charts?from=2026-07&to=2026-09", safe="/"))
    page.get_by_role("heading", name="月ごとの乗車と助成額").wait_for()
    rides = page.locator("section[data-metric='rides']")
    rides.locator("figure[data-key='total'] svg[role='list'] rect.bar").first.wait_for()
    assert page.get_by_label("終了月").input_value() == "2026-09"
    assert rides.locator("figure[data-key='total'] rect.bar").count() == 3  # July to September
    bars = rides.locator("figure[data-key='total'] rect.bar")
    assert [bars.nth(i).get_attribute("data-value") for i in range(3)] == ["10", "25", "68"]
    op1 = rides.locator(f"figure[data-key='OP01'] svg[aria-label='乗車数(回)({OP1})']")
    op1_bars = op1.locator("rect.bar")
    assert [op1_bars.nth(i).get_attribute("data-value") for i in range(3)] == ["10", "20", "60"]
    # the bars are drawn to scale (SVG attributes, no inline style): 10, 20, 60 rides
    heights = [(op1_bars.nth(i).bounding_box() or {"height": 0})["height"] for i in range(3)]
    assert heights[2] > 50
    assert heights[1] == pytest.approx(heights[2] / 3, abs=2)
    assert heights[0] == pytest.approx(heights[2] / 6, abs=2)
    # each bar is a list item that reads month, then its value
    items = op1.get_by_role("listitem")
    assert items.count() == 3
    assert [items.nth(i).get_attribute("aria-label") for i in range(3)] == [
        "令和8年7月 10",
        "令和8年8月 20",
        "令和8年9月 60",
    ]
    assert [items.nth(i).text_content() for i in range(3)] == ["7月10", "8月20", "9月60"]
    table = page.locator("#table-rides")
    assert "68" in table.locator("tfoot").inner_text()
    subsidy_total = page.locator("section[data-metric='subsidy'] figure[data-key='total'] rect.bar")
    assert int(subsidy_total.nth(2).get_attribute("data-value") or 0) > 0
    assert page.locator("[style]").count() == 0
    # a screen reader hears one sentence of what is shown, not the whole drawing again
    status = page.locator("#chart-status")
    assert status.get_attribute("role") == "status"
    assert status.inner_text() == "令和8年7月から令和8年9月まで、事業者別に表示しています。"
    assert page.locator("[aria-live]:has(svg), [role=status]:has(svg)").count() == 0
    check_screen(page, screens_dir, "49-finance-charts-by-operator")
    refused = [line for line in console if "Content Security Policy" in line or "Refused to" in line]
    assert refused == [], (
        refused
    )  # e.g. "Refused to apply inline style because it violates ... style-src 'self'"
    assert [line for line in console if line.startswith("pageerror")] == []

    page.get_by_label("地区別").check()
    page.get_by_role("button", name="グラフを表示する").click()
    page.locator("section[data-metric='rides'] figure[data-key='03']").wait_for()
    page.locator("#chart-status").get_by_text("地区別に表示しています").wait_for()
    districts = page.locator("#table-rides tbody th").all_inner_texts()
    assert districts == ["尾花沢", "宮沢", "玉野", "福原"]
    check_screen(page, screens_dir, "50-finance-charts-by-district")

    page.get_by_label("制度別").check()
    page.get_by_role("button", name="グラフを表示する").click()
    page.locator("section[data-metric='rides'] figure[data-key='bus_abolished']").wait_for()
    assert page.locator("#table-rides tbody th").all_inner_texts() == [
        "路線バス廃止地区デマンド補助",
        "高齢者おもいやりタクシー",
    ]

    page.get_by_label("開始月").fill("2023-01")
    page.get_by_role("button", name="グラフを表示する").click()
    page.get_by_text("一度に表示できるのは36か月までです。期間を短くしてください。").wait_for()
    assert page.locator("#chart-status").inner_text() == ""

    # a period with no rides says so in the sentence that is announced
    page.get_by_label("開始月").fill("2026-01")
    page.get_by_label("終了月").fill("2026-02")
    page.get_by_role("button", name="グラフを表示する").click()
    page.locator("#chart-status").get_by_text("この期間の乗車はありません。").wait_for()
    assert page.locator("#charts svg").count() == 0


def test_the_charts_write_large_counts_with_separators_and_never_break_an_amount(
    tab: Any, city: FinanceCity
) -> None:
    """A year of a busy city's figures, drawn by the page's own script on a narrow (200 % zoom) screen."""
    page = tab
    sign_in(page, "kansa", next_path=quote("/staff/finance/charts?from=2026-07&to=2026-09", safe="/"))
    page.locator("section[data-metric='rides'] figure[data-key='total'] rect.bar").first.wait_for()
    page.set_viewport_size({"width": 640, "height": 900})
    months = [f"{2025 + (9 + i) // 12}-{(9 + i) % 12 + 1:02d}" for i in range(12)]  # 2025-10 to 2026-09
    rows = [
        {"period": month, "key": key, "label": label, "rides": rides + i, "subsidy": subsidy + i * 1000}
        for i, month in enumerate(months)
        for key, label, rides, subsidy in [
            ("OP01", OP1, 3071, 1_095_000),
            ("OP02", "銀山観光タクシー有限会社", 830, 298_000),
        ]
    ]
    page.evaluate(
        "(report) => render(report)", {"from": months[0], "to": months[-1], "by": "operator", "rows": rows}
    )
    rides = page.locator("section[data-metric='rides'] figure[data-key='OP01']")
    assert rides.locator("text.value").first.text_content() == "3,071"
    assert rides.get_by_role("listitem").first.get_attribute("aria-label") == "令和7年10月 3,071"
    assert rides.get_by_role("listitem").first.text_content() == "10月3,071"
    total = page.locator("section[data-metric='rides'] figure[data-key='total'] text.value")
    assert total.first.text_content() == "3,901"
    subsidy = page.locator("section[data-metric='subsidy'] figure[data-key='OP01'] text.value")
    assert subsidy.first.text_content() == "1,095,000"
    assert page.locator("#table-rides tbody td.num").first.inner_text() == "3,071"
    # the values above the bars do not run into one another (1,393,000 is wider than a bar)
    overlapping = page.evaluate(
        """() => [...document.querySelectorAll("#charts svg")].filter((chart) => {
             const boxes = [...chart.querySelectorAll("text.value")].map((t) => t.getBoundingClientRect());
             return boxes.some((box, i) => i > 0 && box.left < boxes[i - 1].right);
           }).length"""
    )
    assert overlapping == 0
    # no amount is broken across lines, however narrow the table's columns would have to be
    broken = page.evaluate(
        """() => [...document.querySelectorAll("#charts td.num, #charts th.num")].filter((cell) => {
             const range = document.createRange();
             range.selectNodeContents(cell);
             const tops = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
             return tops.size > 1;
           }).map((cell) => cell.textContent)"""
    )
    assert broken == []
    assert page.locator("#table-subsidy tbody tr").first.locator("td.num").last.inner_text() == "13,206,000円"
    assert page.locator("[style]").count() == 0


def test_finance_pages_switch_to_english_and_send_signed_out_people_to_sign_in(
    tab: Any, city: FinanceCity
) -> None:
    page = tab
    page.goto("/staff/finance")
    page.wait_for_url("**/staff/sign-in?next=*")
    sign_in(page, "keiri", next_path="/staff/finance")
    page.get_by_role("heading", name="精算(月ごとの締め)").wait_for()
    page.get_by_role("link", name="English").click()
    page.get_by_role("heading", name="Settlement: closing each month").wait_for()
    assert page.locator("html").get_attribute("lang") == "en"
    page.get_by_role("rowheader", name="September 2026", exact=True).wait_for()
    page.get_by_role("link", name="日本語").click()
    page.get_by_role("heading", name="精算(月ごとの締め)").wait_for()


def _ensure_confirmed(city: FinanceCity, code: str) -> Statement:
    """September closed and the operator's statement past draft (what the first test leaves behind)."""
    city.worker.go_on.set()
    with httpx.Client(base_url=city.base_url, timeout=30) as client:
        token = client.post("/api/v1/auth/token", json={"username": "keiri", "password": f.PASSWORD})
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        if not city.has_statements():
            client.post("/api/v1/settlement-runs", json={"period": "2026-09"}, headers=headers)
            for running in list(city.worker.threads):
                running.join(timeout=60)
        if city.statement(code).status is StatementStatus.DRAFT:
            r = client.post(f"/api/v1/statements/{city.statement(code).id}/confirm", headers=headers)
            assert r.status_code == 200, r.text
    return city.statement(code)


def _operator_log(city: FinanceCity, statement_id: int) -> str:
    """The operator's own ride log as its dispatch system exports it: every ride of the statement but the
    first, and one ride the statement does not have."""
    with city.sessions() as session:
        lines = session.execute(
            select(StatementLine.boarded_at, Vehicle.registration, StatementLine.meter_fare)
            .join(Vehicle, Vehicle.id == StatementLine.vehicle_id)
            .where(StatementLine.statement_id == statement_id, StatementLine.ride_id.is_not(None))
            .order_by(StatementLine.line_no)
        ).all()
    rows = ["乗車日時,車両番号,メーター料金"]
    for boarded_at, registration, fare in lines[1:]:
        assert boarded_at is not None  # a ride's line always has its boarding time
        rows.append(f"{boarded_at.astimezone(JST):%Y-%m-%d %H:%M},{registration},{fare}")
    rows.append(f"2026-09-30 23:10,{lines[0][1]},1800")
    return "\r\n".join(rows) + "\r\n"


def test_the_operator_disputes_finance_answers_with_an_adjustment_and_checks_the_ride_log(
    tab: Any, browser: Any, city: FinanceCity, screens_dir: Path, tmp_path: Path
) -> None:
    statement = _ensure_confirmed(city, "OP01")
    url = f"/staff/finance/statements/{statement.id}"

    # The operator's admin sees only their own statements and disputes one, saying why.
    page = tab
    sign_in(page, "jigyosha")
    page.wait_for_url("**/staff/finance")
    page.get_by_role("link", name=f"精算書を見る({SEPTEMBER}分)").click()
    page.locator("#statements-table tbody tr").first.wait_for()
    assert page.locator("#statements-table tbody tr").count() == 1  # OP02's is not theirs
    page.get_by_role("link", name=f"開く({OP1})").click()
    page.get_by_text("事業者からの回答はまだありません。").wait_for()
    assert page.get_by_role("button", name="内容を確認した(確定する)").count() == 0
    page.get_by_role("button", name="異議を申し立てる").click()
    reason = "9月30日 23時10分の乗車(1,800円)が精算書にありません。"
    page.get_by_label("異議の理由(どの乗車の何が違うか)").fill(reason)
    page.get_by_role("button", name="この理由で異議を申し立てる").click()
    page.get_by_text("回答を送りました。").wait_for()
    assert page.locator("#dispute-reason-text").inner_text() == reason
    check_screen(page, screens_dir, "51-finance-operator-dispute")

    # Finance reads the dispute, checks the operator's log against the statement, and answers it.
    clerk = another_person(browser, city)
    sign_in(clerk, "keiri", next_path=url)
    clerk.get_by_text("事業者から異議が出ています").wait_for()
    assert clerk.locator("#dispute-reason-text").inner_text() == reason
    log = tmp_path / "op01-2026-09.csv"
    log.write_text(_operator_log(city, statement.id), encoding="utf-8")
    clerk.get_by_label("事業者の乗車記録 CSV ファイル").set_input_files(str(log))
    clerk.get_by_role("button", name="照合する").click()
    clerk.locator("h3[data-group='matched']").wait_for()
    assert clerk.locator("h3[data-group='matched']").inner_text().startswith("一致 59件")
    assert clerk.locator("h3[data-group='missing']").inner_text().startswith("事業者の記録にない乗車 1件")
    assert clerk.locator("h3[data-group='extra']").inner_text().startswith("精算書にない乗車 1件")
    assert clerk.locator("tr[data-recon='missing']").count() == 1
    check_screen(clerk, screens_dir, "52-finance-reconciliation")
    assert download(clerk, "照合結果を CSV で保存").startswith(BOM)

    clerk.get_by_label("調整額(円、減額はマイナス)").fill("900")
    clerk.get_by_label("調整の理由").fill("9月30日 23時10分の乗車分(事業者の記録で確認)")
    clerk.get_by_role("button", name="調整を登録する").click()
    clerk.get_by_text("調整を登録しました。062120-202610-OP01 に計上されます。").wait_for()
    clerk.locator("#adjustments-table tbody tr").first.wait_for()
    assert "900円" in clerk.locator("#adjustments-table").inner_text()
    assert "調整で回答済み" in clerk.locator("#operator-response").inner_text()
    check_screen(clerk, screens_dir, "53-finance-adjustment")
    clerk.context.close()
    with city.sessions() as session:
        october = session.scalar(
            select(Statement).where(
                Statement.operator_id == city.operators["OP01"], Statement.period == date(2026, 10, 1)
            )
        )
        assert october is not None
        assert october.adjustment_total == 900
    assert city.statement("OP01").amount_due == statement.amount_due  # the answered statement never changes
