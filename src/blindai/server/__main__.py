"""Entry point of ``blindai-server``: one error exit for every startup failure."""

from __future__ import annotations

import os

# gRPC's C core reads this once, when grpc is first imported: before any import
# below. At ERROR it stops writing a line of its own format into the server's
# log for every failed TLS handshake. An operator's own setting is kept.
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import logging  # noqa: E402
import sys  # noqa: E402

from blindai.server.config import parse_args  # noqa: E402
from blindai.server.errors import StartupError  # noqa: E402

#: What ``pip install "blindai[server]"`` adds (pyproject.toml's server extra),
#: as the top-level modules the server imports.
SERVER_EXTRA_MODULES = frozenset(
    {"onnxruntime", "onnx", "grpc_health", "prometheus_client"}
)
INSTALL_HINT = 'pip install "blindai[server]"'


def main(argv: list[str] | None = None) -> int:
    """Run the server; returns the process exit code."""
    config = parse_args(argv)
    logging.basicConfig(
        level=config.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # onnxruntime and gRPC are chatty at DEBUG about their own internals.
    logging.getLogger("grpc").setLevel(max(logging.INFO, logging.root.level))
    try:
        from blindai.server.app import serve
    except ModuleNotFoundError as err:
        if (err.name or "").partition(".")[0] not in SERVER_EXTRA_MODULES:
            raise
        # The command is installed with the client too: say what is missing.
        print(f"blindai-server needs the server extra: {INSTALL_HINT}", file=sys.stderr)
        return 2
    try:
        serve(config)
    except StartupError as err:
        print(f"blindai-server: cannot start: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
