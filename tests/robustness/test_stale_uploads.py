"""Uploads left in ``--model-dir`` by a server that was killed mid-upload.

A server holds a lock on each upload it keeps in the model directory (the
file of hardware mode, the pipe's directory of simulation mode). At start, a
server removes the uploads of this user that nobody holds, and says so; the
ones a running server holds, and anything that is not an upload of ours, stay.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from robust_support import raw_stub, reference_model, sim_server, upload

from blindai.pb import securedexchange_pb2 as pb
from blindai.server import upload as server_upload

MIB = 1024 * 1024


def _stalled_upload(stub, release: threading.Event):
    def requests():
        yield pb.SendModelRequest(data=b"\x08\x07" * 512, length=4 * MIB)
        release.wait(30)

    return stub.SendModel.future(requests(), timeout=30)


def _wait_for_entry(directory: Path, limit: float = 10.0) -> Path:
    """The first upload of ours to appear in ``directory``."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        for entry in directory.iterdir():
            if entry.name.startswith("blindai-upload-"):
                return entry
        time.sleep(0.02)
    raise AssertionError("the upload never appeared in the model directory")


def _age(path: Path, seconds: float) -> None:
    """Make ``path`` look ``seconds`` old (fresh entries are never swept)."""
    then = time.time() - seconds
    os.utime(path, (then, then), follow_symlinks=False)


def _killed_mid_upload(model_dir: Path) -> Path:
    """Start a server, kill it during an upload; the upload it left."""
    release = threading.Event()
    with sim_server("--model-dir", str(model_dir)) as server, raw_stub(server) as stub:
        future = _stalled_upload(stub, release)
        entry = _wait_for_entry(model_dir)
        assert server.process is not None
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(10)
        release.set()
        future.exception(timeout=30)
    return entry


def test_a_restarted_server_removes_uploads_a_killed_one_left(tmp_path):
    left = _killed_mid_upload(tmp_path)
    assert left.exists(), "SIGKILL should leave the upload behind"
    assert left.name.startswith("blindai-upload-")
    _age(left, 60)
    with sim_server("--model-dir", str(tmp_path)) as server, raw_stub(server) as stub:
        assert not left.exists()
        assert "removed 1 upload" in server.log_text()
        upload(stub, reference_model())
    assert list(tmp_path.iterdir()) == []


def test_uploads_in_progress_and_other_files_are_left_alone(tmp_path):
    other = tmp_path / "model-notes.txt"  # not ours, even if it looks alike
    other.write_text("keep")
    _age(other, 3600)
    release = threading.Event()
    with sim_server("--model-dir", str(tmp_path)) as first, raw_stub(first) as stub:
        future = _stalled_upload(stub, release)
        try:
            entry = _wait_for_entry(tmp_path)
            _age(entry, 60)
            with sim_server("--model-dir", str(tmp_path)) as second:
                assert entry.exists(), "a running server's upload was removed"
                assert "removed" not in second.log_text()
        finally:
            release.set()
            future.exception(timeout=30)
    assert other.read_text() == "keep"


def test_fresh_unheld_entries_are_not_swept(tmp_path):
    # Between its creation and its lock, an upload is unheld for an instant.
    fresh = tmp_path / "blindai-upload-fresh.onnx"
    fresh.write_bytes(b"x")
    assert server_upload.remove_stale_uploads(tmp_path) == 0
    assert fresh.exists()
    _age(fresh, 60)
    assert server_upload.remove_stale_uploads(tmp_path) == 1
    assert not fresh.exists()


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks here")
def test_symlinks_are_never_followed(tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    (target / "precious").write_text("keep")
    link = tmp_path / "blindai-upload-link"
    link.symlink_to(target)
    _age(link, 60)
    server_upload.remove_stale_uploads(tmp_path)
    assert (target / "precious").read_text() == "keep"


def test_a_file_upload_is_held_until_discarded(tmp_path):
    """Hardware mode's upload file: held while written and loaded."""
    writer = server_upload.ModelWriter(4, tmp_path)
    writer.write(b"abcd")
    received = writer.finish()
    assert received.path is not None
    assert server_upload.remove_stale_uploads(tmp_path, min_age=0) == 0
    assert received.path.exists()
    if received.lock is None:
        pytest.skip("file locks are not supported here")
    os.close(received.lock)  # as if its server had died
    received.lock = None
    assert server_upload.remove_stale_uploads(tmp_path, min_age=0) == 1
    assert list(tmp_path.iterdir()) == []
