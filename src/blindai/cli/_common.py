"""What the subcommands share: connection options, input files, keys, output."""

from __future__ import annotations

import argparse
import datetime as dt
import errno
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from blindai.errors import BlindAiError

#: Suffix appended to a simulation proof's path for the file holding its key.
KEY_SUFFIX = ".key"


class CommandError(BlindAiError):
    """A command cannot do what it was asked (a bad combination of options, a
    feature this installation lacks)."""


# --- options -----------------------------------------------------------------


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """The options of :meth:`BlindAiClient.connect_server`."""
    group = parser.add_argument_group("connection")
    add = group.add_argument
    add("--host", default="127.0.0.1", help="server address (default %(default)s)")
    add(
        "--server-name",
        default="blindai-srv",
        help="name the server's certificates carry (default %(default)s)",
    )
    add(
        "--policy",
        type=Path,
        help="policy.toml: the enclave you expect (required unless --simulation)",
    )
    add(
        "--certificate",
        type=Path,
        help="the server's host_server.pem (required unless --simulation)",
    )
    add(
        "--simulation",
        action="store_true",
        help="connect WITHOUT attestation to a simulation-mode server "
        "(development only: proves nothing)",
    )
    add(
        "--untrusted-port",
        type=int,
        default=50052,
        help="attestation port (default %(default)s)",
    )
    add(
        "--attested-port",
        type=int,
        default=50051,
        help="model port (default %(default)s)",
    )
    add_trusted_root_option(group)


def add_trusted_root_option(group: Any) -> None:
    """``--trusted-root``: a test platform's root CA instead of Intel's."""
    group.add_argument(
        "--trusted-root",
        type=Path,
        help="root CA (PEM) of a TEST platform instead of Intel's SGX root CA",
    )


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object on stdout (for scripts)",
    )


def connection_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of ``connect_server`` from the parsed options."""
    return {
        "server_name": args.server_name,
        "policy": args.policy,
        "certificate": args.certificate,
        "simulation": args.simulation,
        "untrusted_port": args.untrusted_port,
        "attested_port": args.attested_port,
        "trusted_root": read_trusted_root(args.trusted_root),
    }


def read_trusted_root(path: Path | None) -> bytes | None:
    return None if path is None else path.read_bytes()


# --- values --------------------------------------------------------------------


def parse_instant(text: str | None) -> dt.datetime | None:
    """An ISO-8601 instant with a timezone (``2022-04-11T13:05:28Z``), in UTC."""
    if text is None:
        return None
    try:
        instant = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"--at {text!r} is not an ISO-8601 instant (like 2022-04-11T13:05:28Z)"
        ) from None
    if instant.tzinfo is None:
        raise ValueError(f"--at {text!r} has no timezone; add Z for UTC")
    return instant.astimezone(dt.UTC)


def parse_hex(text: str, what: str, size: int) -> bytes:
    """``size`` bytes written as hex (an optional ``0x`` prefix is allowed)."""
    digits = text.strip().removeprefix("0x")
    try:
        value = bytes.fromhex(digits)
    except ValueError:
        value = b""
    if len(value) != size:
        raise ValueError(f"{what} must be {2 * size} hex digits, got {text!r}")
    return value


def load_input(path: Path) -> Any:
    """The input of a run: a ``.npy`` array or a ``.json`` (nested) list."""
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if path.suffix == ".json":
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not JSON: {exc}") from None
    raise ValueError(f"{path}: the input must be a .npy or a .json file")


def key_bytes(key: Ed25519PublicKey) -> bytes:
    """The raw 32 bytes of an Ed25519 public key."""
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def read_signing_key(value: str) -> bytes:
    """A response-signing key given as 64 hex digits or as a ``.key`` file."""
    path = Path(value)
    if path.suffix == KEY_SUFFIX or path.exists():
        return parse_hex(path.read_text(), f"the key in {path}", 32)
    return parse_hex(value, "--signing-key", 32)


def check_writable(path: Path) -> None:
    """Raise the ``OSError`` that writing ``path`` would meet, before any work
    whose result would then be lost (an upload replaces the server's model)."""
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    parent = path.parent
    if not parent.exists():
        raise FileNotFoundError(errno.ENOENT, "no such directory", str(path))
    if not parent.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(path))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "cannot write here", str(path))


def save_signing_key(proof: Path, key: Ed25519PublicKey) -> Path:
    """Save a simulation server's public signing key beside its proof."""
    path = proof.with_name(proof.name + KEY_SUFFIX)
    path.write_text(key_bytes(key).hex() + "\n")
    return path


def iso(instant: dt.datetime | None) -> str | None:
    if instant is None:
        return None
    return instant.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- output --------------------------------------------------------------------


def emit(args: argparse.Namespace, result: dict[str, Any], lines: list[str]) -> None:
    """Print ``result`` as JSON (``--json``) or ``lines`` for a person."""
    if getattr(args, "json", False):
        json.dump(result, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        for line in lines:
            print(line)
