"""``python -m catalog serve --port N``: the catalogue API server (uvicorn, 127.0.0.1)."""

from __future__ import annotations

import argparse
import logging

#: Seconds an idle keep-alive connection stays open. It must outlast every client's own
#: keep-alive expiry (httpx: 5 s, browsers: longer): with uvicorn's default of 5 s, a client
#: reusing a pooled connection just as the server closes it gets "Server disconnected
#: without sending a response". 75 s is the common proxy default.
KEEP_ALIVE_SECONDS = 75


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m catalog")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="Run the catalogue API.")
    serve.add_argument("--port", type=int, default=None, help="Default: settings.catalog_port.")
    serve.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)

    import uvicorn

    from catalog.api import create_app
    from datong.settings import load_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = load_settings()
    port = args.port or settings.catalog_port
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=port,
        log_level="info",
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )


if __name__ == "__main__":
    main()
