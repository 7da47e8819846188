"""A synchronous client for a Starlette app in the test's own process.

Starlette's TestClient wants httpx2 beside this httpx, so the web tests
drive the app through httpx's ASGI transport on a private event loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from starlette.applications import Starlette


class AsgiClient:
    def __init__(self, app: Starlette) -> None:
        self._loop = asyncio.new_event_loop()
        self._http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        )
        self.cookies = self._http.cookies

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self._loop.run_until_complete(self._http.get(url, **kw))

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self._loop.run_until_complete(self._http.post(url, **kw))

    def __enter__(self) -> AsgiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.run_until_complete(self._http.aclose())
        self._loop.run_until_complete(self._loop.shutdown_default_executor())
        self._loop.close()
