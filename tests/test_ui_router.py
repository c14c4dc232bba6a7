"""The UI's routes without a browser: the shell for every page, the static files and nothing else, and
the headers that keep the page on its own origin."""

from __future__ import annotations

from spanline.api.ui.router import STATIC_FILES
from spanline.core.config import Settings
from spanline.store.store import Store
from tests.api_data import api_client


async def test_pages_get_the_shell_and_static_files_only_what_ships(settings: Settings, store: Store) -> None:
    async with api_client(settings, store) as client:
        home = await client.get("/", follow_redirects=False)
        assert home.status_code == 307 and home.headers["location"] == "/ui/executions"
        for path in ("/ui", "/ui/executions", "/ui/executions/0b6f3c1e-7d1a-4e55-9a0c-3f1f0e2d4c02", "/ui/usage"):
            page = await client.get(path)
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            assert '<script type="module" src="/ui/static/app.js">' in page.text
            policy = page.headers["content-security-policy"]
            assert "default-src 'none'" in policy and "connect-src 'self'" in policy and "script-src 'self'" in policy
        assert {"app.js", "index.html", "style.css", "vendor/uPlot.iife.min.js", "vendor/uPlot.LICENSE.txt"} <= set(
            STATIC_FILES
        )
        script = await client.get("/ui/static/app.js")
        assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
        missing = await client.get("/ui/static/nope.js")
        assert missing.status_code == 404 and "detail" in missing.json()
        for escape in ("/ui/static/../router.py", "/ui/static/%2e%2e/router.py", "/ui/static/..%2frouter.py"):
            answer = await client.get(escape)  # a 404 or the page shell, never a file outside static/
            assert "APIRouter" not in answer.text, escape
        # The UI's routes are not part of the public API's schema.
        schema = (await client.get("/openapi.json")).json()
        assert not any(path.startswith("/ui") for path in schema["paths"])
