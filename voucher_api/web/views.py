"""Page routes: each renders a template; the page's script does the rest through the API."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, make_response, redirect, render_template, request, url_for

from voucher_api.web.i18n import LANGUAGES, texts

blp = Blueprint(
    "web",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/staff/static",
)

LANG_COOKIE = "lang"
NAV = (
    ("queue", "web.queue", "nav.queue"),
    ("apply", "web.apply", "nav.apply"),
    ("residents", "web.residents", "nav.residents"),
    ("mobile", "web.mobile_office", "nav.mobile"),
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


@blp.get("/display/stops/<int:stop_id>")
def display(stop_id: int) -> Any:
    """The residents' screen in the vehicle: numbers and the wait, refreshed every few seconds."""
    return render_page("display.html", "display", staff=False, stop_id=stop_id)
