"""The ``blindai`` command: upload, run, verify, inspect, policy.

::

    blindai upload model.onnx --shape 1,64 --simulation
    blindai run --input image.npy --simulation --proof run.proof
    blindai verify run.proof --input image.npy --allow-simulation \\
        --signing-key run.proof.key
    blindai inspect run.proof
    blindai policy show policy.toml

:func:`main` is the one error exit: the project's errors, unreachable servers,
missing files and bad values end the command with one line on stderr and exit
status 1 (2 for a command line argparse rejects); ``--verbose`` adds the
traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
import warnings

from blindai.cli import _exchange, _inspect, _policy, _verify
from blindai.client import SimulationModeWarning
from blindai.errors import BlindAiError
from blindai.version import __version__

EXIT_ERROR = 1

EXAMPLES = """\
examples:
  blindai upload model.onnx --shape 1,64 --dtype F32 --dtype-out I64 --simulation
  blindai run --input image.npy --simulation --proof run.proof
  blindai verify run.proof --input image.npy --allow-simulation \\
      --signing-key run.proof.key
  blindai inspect run.proof
  blindai policy show policy.toml

`blindai COMMAND --help` shows each command's options and examples.
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``blindai`` argument parser and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="blindai",
        description="Client of a BlindAI confidential inference server: upload "
        "a model, run it, and check the signed proofs it returns.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"blindai {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="log details and print tracebacks of errors",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _exchange.add_parsers(commands)
    _verify.add_parser(commands)
    _inspect.add_parser(commands)
    _policy.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one ``blindai`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    try:
        status: int = args.handler(args)
    except (BlindAiError, OSError, ValueError) as err:
        if args.verbose:
            traceback.print_exc()
        print(f"blindai {args.command}: error: {_describe(err)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"blindai {args.command}: interrupted", file=sys.stderr)
        return 130
    return status


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="blindai: %(levelname)s: %(message)s",
    )
    # The commands log their own one-line notice instead (see _exchange).
    warnings.simplefilter("ignore", SimulationModeWarning)


def _describe(err: BaseException) -> str:
    if isinstance(err, OSError) and err.filename is not None:
        return f"{err.strerror}: {err.filename}"
    return str(err) or type(err).__name__


__all__ = ["build_parser", "main"]
