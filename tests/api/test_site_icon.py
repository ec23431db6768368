"""Every staff page names its icon, and the icon is served from the site itself (img-src 'self'), so the
browser neither logs a 404 for /favicon.ico nor a refused image."""

from __future__ import annotations

import re

from flask.testing import FlaskClient


def test_the_sign_in_page_links_an_icon_that_is_served(client: FlaskClient) -> None:
    page = client.get("/staff/sign-in")
    assert page.status_code == 200
    found = re.search(r'<link rel="icon" type="image/svg\+xml" href="([^"]+)"', page.get_data(as_text=True))
    assert found is not None
    with client.get(found.group(1)) as icon:  # a static file is streamed: close it
        assert icon.status_code == 200
        assert icon.mimetype == "image/svg+xml"
        assert icon.data.startswith(b"<svg")
