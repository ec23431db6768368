"""The staff web pages (the no-writing counter and the mobile office) and the residents' queue display.

Pages are plain HTML from Jinja templates with vanilla JavaScript and CSS served from `static/` (no build
step, no CDN). They call the JSON API with the staff member's access token and the card through the
counter PC's reader bridge (auth_mock.bridge), whose address comes from the settings
(the CARD_BRIDGE_URL setting; on a counter PC the agent listens on 127.0.0.1).
"""

from __future__ import annotations

from flask import Flask

from voucher_api.config import Settings


def bridge_url(settings: Settings | None) -> str:
    """Where the staff page finds the card-reader agent."""
    return (settings.card_bridge_url if settings is not None else "http://127.0.0.1:8765").rstrip("/")


def register_web(app: Flask) -> None:
    """Mount the staff pages at /staff/... and the residents' display at /display/...."""
    from voucher_api.web.views import blp

    app.extensions.setdefault("voucher", {})
    app.config["CARD_BRIDGE_URL"] = bridge_url(app.extensions["voucher"].get("settings"))
    app.register_blueprint(blp)
