"""gremlinpython's aiohttp WebSocket transport with every wait bounded.

The stock transport opens its aiohttp session without a timeout, so a server that
accepts the TCP connection but never answers the WebSocket upgrade holds a call for
aiohttp's default of five minutes; and closing a connection whose server stopped
answering waits ten seconds for a close frame that will not come, once for each
pooled connection. Here the handshake has a limit of its own and a close waits briefly.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

import aiohttp
from gremlin_python.driver.aiohttp.transport import AiohttpTransport

CLOSE_TIMEOUT_S: Final = 1.0


class BoundedTransport(AiohttpTransport):  # type: ignore[misc]
    """An ``AiohttpTransport`` whose WebSocket handshake fails after ``connect_timeout`` s."""

    def __init__(self, connect_timeout: float, **kwargs: Any) -> None:
        kwargs.setdefault("timeout", aiohttp.ClientWSTimeout(ws_close=CLOSE_TIMEOUT_S))
        super().__init__(**kwargs)
        self._connect_timeout = connect_timeout

    def connect(self, url: str, headers: Any = None) -> None:
        """Open the WebSocket, or raise ``ConnectionError`` when the handshake is too slow."""

        async def open_websocket() -> None:
            self._client_session = aiohttp.ClientSession()
            try:
                async with asyncio.timeout(self._connect_timeout):
                    self._websocket = await self._client_session.ws_connect(
                        url, headers=headers, **self._aiohttp_kwargs
                    )
            except TimeoutError as error:
                raise ConnectionError(
                    f"no WebSocket handshake from {url} within {self._connect_timeout:g} s"
                ) from error

        try:
            self._loop.run_until_complete(open_websocket())
        except BaseException:
            # Closed now, its loop included: the driver drops this transport without
            # closing it, and a close from the garbage collector can land inside
            # another running event loop.
            self.close()
            raise
