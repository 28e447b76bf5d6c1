"""``make bench``: every row a ratio against a floor measured in the same run.

Usage: ``python -m benchmarks [--quick]``. The full run takes a few minutes on
two cores; ``--quick`` takes fewer rounds (and a noisier table).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

from benchmarks import _rows
from benchmarks._transport import TransportServer
from blindai.client import SimulationModeWarning
from blindai.server.launcher import LocalServer

MIB = 1024 * 1024


def _settings(quick: bool) -> dict[str, float]:
    if quick:
        return dict(cnn=12, small=150, seconds=1.5, repeats=3, uploads=1, verify=20)
    return dict(cnn=40, small=600, seconds=4.0, repeats=5, uploads=3, verify=200)


def _model_dir() -> Path:
    shm = Path("/dev/shm")
    return Path(
        tempfile.mkdtemp(prefix="blindai-bench-", dir=shm if shm.is_dir() else None)
    )


def run(
    quick: bool,
    upload_size: int,
    extra: list[str],
    only: str | None = None,
    bounds: list[_rows.Bound] | None = None,
) -> list[_rows.Row]:
    s = _settings(quick)
    model_dir = _model_dir()
    args = [
        "--simulation",
        "--log-level",
        "WARNING",
        "--model-dir",
        str(model_dir),
        "--max-model-size",
        str(upload_size + 64 * MIB),
        *extra,
    ]
    rows: list[_rows.Row] = []
    bounds = [] if bounds is None else bounds
    try:
        with LocalServer(args) as server, TransportServer() as transport:
            if only in (None, "cnn"):
                rows += _rows.cnn_rows(server, transport, int(s["cnn"]), bounds)
                _progress(rows)
            if only in (None, "small"):
                rows += _rows.small_model_rows(
                    server,
                    transport,
                    int(s["small"]),
                    s["seconds"],
                    int(s["repeats"]),
                    bounds,
                )
                _progress(rows)
            if only in (None, "upload"):
                rows += _rows.upload_rows(
                    server, transport, model_dir, upload_size, int(s["uploads"]), bounds
                )
                _progress(rows)
    finally:
        shutil.rmtree(model_dir, ignore_errors=True)
    if only is None:
        rows.append(_rows.verify_row(int(s["verify"])))
    return rows


def _progress(rows: list[_rows.Row]) -> None:
    print(f"  ... {len(rows)} rows measured", file=sys.stderr, flush=True)


def table(rows: list[_rows.Row]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| measurement | value p50 (p10–p90) | floor p50 (p10–p90) | ratio "
        "| target | met |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        ratio = "—" if row.ratio is None else f"{row.ratio:.2f}×"
        met = "—" if row.met is None else ("yes" if row.met else "NO")
        lines.append(
            f"| {row.what} | {row.value} | {row.floor} | {ratio} | "
            f"{row.target} | {met} |"
        )
    return "\n".join(lines)


LEGEND = (
    "\nratio = value / floor, medians of this run's interleaved rounds. The floor "
    "is the same work without our protocol: the model in-process with onnxruntime "
    "(CNN), the server's plainest TLS round trip, GetServerInfo (small model, "
    "callers), SHA-256 and session creation in-process (upload), the model's size "
    "(memory)."
)
BOUNDS_LEGEND = (
    "\nThe same bytes or calls through gRPC and TLS to a server that does "
    "nothing: what no change to our code can remove. The last column sets that "
    "against what the row's target allows over its floor; above 100 %, the target "
    "is out of reach behind gRPC and TLS on this machine."
)


def bounds_table(bounds: list[_rows.Bound]) -> str:
    """The transport's own costs, as a Markdown table."""
    lines = [
        "| gRPC and TLS alone (a server that does nothing) | p50 (p10–p90) "
        "| against the row's target |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {b.what} | {b.value} | {b.meaning} |" for b in bounds]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    # Every row connects to a simulation server: say it once, not per connection.
    logging.basicConfig(level=logging.ERROR)
    warnings.simplefilter("ignore", SimulationModeWarning)
    print("benchmarks run against simulation-mode servers on 127.0.0.1 (no SGX)")
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer rounds: a rough table in about a minute",
    )
    parser.add_argument(
        "--upload-mb",
        type=int,
        default=400,
        help="size of the uploaded model in MB (default 400)",
    )
    parser.add_argument(
        "--server-args",
        default="",
        help="more blindai-server options, e.g. "
        "'--inference-spinning --inference-threads 1'",
    )
    parser.add_argument(
        "--only", choices=["cnn", "small", "upload"], help="measure one group of rows"
    )
    ns = parser.parse_args(argv)
    started = time.perf_counter()
    bounds: list[_rows.Bound] = []
    rows = run(
        ns.quick, ns.upload_mb * 1000 * 1000, ns.server_args.split(), ns.only, bounds
    )
    print(table(rows))
    print(LEGEND)
    if bounds:
        print()
        print(bounds_table(bounds))
        print(BOUNDS_LEGEND)
    print(
        f"\n{len(rows)} rows in {time.perf_counter() - started:.0f} s "
        f"({'quick' if ns.quick else 'full'} run)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
