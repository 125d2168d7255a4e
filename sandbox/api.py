"""The HTTP API served in this process by Chalice's local server (`chalice local`'s own code)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from chalice.config import Config
from chalice.local import (
    ChaliceRequestHandler,
    CustomLocalChalice,
    LocalChalice,
    LocalDevServer,
    LocalGatewayException,
)

from infra import gateway
from sandbox.stage import PROJECT_DIR

log = logging.getLogger(__name__)


class _EveryMethodHandler(ChaliceRequestHandler):
    # http.server answers a method its handler has no do_<METHOD> for (TRACE, CONNECT, QUERY...)
    # with an HTML 501 of its own. Routed through the app, an undeclared method gets the API's
    # 405 JSON error like any other.
    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):
            return self._generic_handle
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("api %s", format % args)  # not a line on stderr per request

    def _send_error_response(self, error: LocalGatewayException) -> None:
        # What the deployment's GatewayResponses answer instead (infra/gateway.py).
        answer = gateway.local_answer(error.headers.get("x-amzn-ErrorType"))
        if answer is None:
            super()._send_error_response(error)
            return
        status, body = answer
        self._send_http_response(status, {**error.headers, "Content-Type": "application/json"}, body)


def start_api(app: Any, stage: str, port: int, host: str = "127.0.0.1") -> Callable[[], None]:
    """Serve `app` with the stage's config on host:port in a daemon thread; return its stopper."""
    config = Config.create(
        chalice_stage=stage,
        project_dir=str(PROJECT_DIR),
        config_from_disk=json.loads((PROJECT_DIR / ".chalice" / "config.json").read_text()),
    )
    if not isinstance(app, CustomLocalChalice):
        # What chalice.local.create_local_server does, once: a second call would make the app's
        # class its own base.
        CustomLocalChalice.__bases__ = (LocalChalice, app.__class__)
        app.__class__ = CustomLocalChalice
    server = LocalDevServer(app, config, host, port, handler_cls=_EveryMethodHandler)
    threading.Thread(target=server.server.serve_forever, name="api", daemon=True).start()

    def stop() -> None:
        server.shutdown()
        server.server.server_close()

    return stop
