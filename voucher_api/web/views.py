"""Page routes: each renders a template; the page's script does the rest through the API."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)

from voucher_api.clock import japan_date
from voucher_api.web.i18n import LANGUAGES, texts

blp = Blueprint(
    "web",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/staff/static",
)

LANG_COOKIE = "lang"
PERIOD = re.compile(r"20[0-9]{2}-(0[1-9]|1[0-2])")
COUNTER_PAGES = "counter mobile_office admin"
FINANCE_PAGES = "finance finance_approver auditor operator_admin admin"
CHART_PAGES = "finance finance_approver auditor admin"
# (page, endpoint, words, roles): a link with roles is shown only to staff holding one of them.
NAV = (
    ("queue", "web.queue", "nav.queue", COUNTER_PAGES),
    ("apply", "web.apply", "nav.apply", COUNTER_PAGES),
    ("residents", "web.residents", "nav.residents", COUNTER_PAGES + " auditor"),
    ("mobile", "web.mobile_office", "nav.mobile", COUNTER_PAGES),
    ("finance", "web.finance", "nav.finance", FINANCE_PAGES),
    ("charts", "web.charts", "nav.charts", CHART_PAGES),
)


def page_language() -> str:
    """Japanese first: English only when the person switched to it (cookie) or asked in the URL."""
    asked = request.args.get("lang") or request.cookies.get(LANG_COOKIE)
    return asked if asked in LANGUAGES else "ja"


def render_page(template: str, page: str, *, staff: bool = True, **context: Any) -> Response:
    lang = page_language()
    bridge = current_app.config.get("CARD_BRIDGE_URL", "")
    config = {
        "page": page,
        "lang": lang,
        "api": "/api/v1",
        "bridge": bridge,
        "signIn": url_for("web.sign_in"),
        "texts": texts(lang),
        **context,
    }
    body = render_template(
        template, t=texts(lang), lang=lang, page=page, nav=NAV if staff else (), config=config, **context
    )
    response = make_response(body)
    bridge_origin = _origin(bridge) if staff else ""
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        f"connect-src 'self' {bridge_origin}".rstrip()
        + "; frame-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'self'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


def _city_today() -> str:
    """Today in Japan by the API's clock (the pages list months from it, as the API decides with it)."""
    clock = current_app.extensions["voucher"]["clock"]
    return japan_date(clock.now()).isoformat()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


@blp.get("/staff/")
def home() -> Any:
    return redirect(url_for("web.queue"))


@blp.get("/staff/lang/<lang>")
def switch_language(lang: str) -> Any:
    """Remember the chosen language and go back to the page the person was on."""
    target = request.args.get("next", "")
    if not target.startswith("/") or target.startswith("//"):
        target = url_for("web.queue")
    response = redirect(target)
    if lang in LANGUAGES:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 24 * 3600, samesite="Lax", httponly=True)
    return response


@blp.get("/staff/sign-in")
def sign_in() -> Any:
    return render_page("sign_in.html", "sign-in", staff=False)


@blp.get("/staff/queue")
def queue() -> Any:
    return render_page("queue.html", "queue")


@blp.get("/staff/apply")
def apply() -> Any:
    return render_page("apply.html", "apply")


@blp.get("/staff/residents")
def residents() -> Any:
    return render_page("residents.html", "residents")


@blp.get("/staff/mobile-office")
def mobile_office() -> Any:
    return render_page("mobile_office.html", "mobile")


@blp.get("/staff/mobile-office/rounds/<int:round_id>/figures")
def figures(round_id: int) -> Any:
    return render_page("figures.html", "figures", round_id=round_id)


@blp.get("/staff/finance")
def finance() -> Any:
    """精算: each month with its runs and statements; start or re-run a close and watch it per operator."""
    return render_page("finance.html", "finance", today=_city_today())


@blp.get("/staff/finance/<period>")
def finance_month(period: str) -> Any:
    """One month's statements and the month's files (CSV, the Zengin transfer file)."""
    if not PERIOD.fullmatch(period):
        abort(404)
    return render_page("finance_month.html", "finance", period=period)


@blp.get("/staff/finance/statements/<int:statement_id>")
def statement(statement_id: int) -> Any:
    """One statement: totals, its stage and sign-off, lines a page at a time, files, the operator's answer."""
    return render_page("statement.html", "finance", statement_id=statement_id)


@blp.get("/staff/finance/charts")
def charts() -> Any:
    """Monthly rides and subsidy by operator, district or program, as bar charts and tables."""
    return render_page("charts.html", "charts", today=_city_today())


@blp.get("/display/stops/<int:stop_id>")
def display(stop_id: int) -> Any:
    """The residents' screen in the vehicle: numbers and the wait, refreshed every few seconds."""
    return render_page("display.html", "display", staff=False, stop_id=stop_id)
