"""``python -m catalog serve --port N``: the catalogue API server (uvicorn, 127.0.0.1)."""

from __future__ import annotations

import argparse
import logging


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
    uvicorn.run(create_app(settings), host=args.host, port=port, log_level="info")


if __name__ == "__main__":
    main()
