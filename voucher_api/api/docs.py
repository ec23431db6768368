"""A self-contained API docs page (no CDN: city networks are often closed)."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, render_template_string

PAGE = """<!doctype html>
<html lang="ja"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} — API</title>
<style>
body{font-family:system-ui,"Hiragino Sans","Noto Sans JP",sans-serif;max-width:60rem;
margin:2rem auto;padding:0 1rem;line-height:1.6;color:#111;background:#fff}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:2px solid #004c97}
.op{border:1px solid #999;border-radius:6px;margin:.6rem 0;padding:.5rem .8rem}
.m{display:inline-block;min-width:4.5rem;font-weight:700;color:#fff;background:#004c97;
padding:0 .4rem;border-radius:4px}
code{font-size:1rem}
</style></head><body>
<h1>{{ title }} {{ version }}</h1>
<p>OpenAPI 3: <a href="openapi.json">openapi.json</a>. エラーは RFC 9457 (application/problem+json) で、
機械向けの <code>code</code> を必ず含みます。</p>
{% for tag, ops in groups %}<h2>{{ tag }}</h2>
{% for method, path, summary in ops %}<div class="op">
<span class="m">{{ method }}</span> <code>{{ path }}</code>
<div>{{ summary }}</div></div>{% endfor %}{% endfor %}
</body></html>"""


def register_docs(app: Flask) -> None:
    @app.get("/api/v1/docs")
    def api_docs() -> str:
        api = current_app.extensions["flask-smorest"]["apis"][""]["ext_obj"]
        spec: dict[str, Any] = api.spec.to_dict()
        groups: dict[str, list[tuple[str, str, str]]] = {}
        for path, item in sorted(spec.get("paths", {}).items()):
            for method, op in item.items():
                if method in {"get", "post", "put", "patch", "delete"}:
                    tag = (op.get("tags") or ["other"])[0]
                    groups.setdefault(tag, []).append((method.upper(), path, op.get("summary", "")))
        return render_template_string(
            PAGE, title=spec["info"]["title"], version=spec["info"]["version"], groups=sorted(groups.items())
        )
