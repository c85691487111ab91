"""The per-run /.wasinn folder: private, in memory where possible, gone after the run."""

from __future__ import annotations

import os
import stat

import pytest

from wasinn import guest_channel
from wasinn.guest_channel import GuestChannel
from wasinn.nn.errors import Errno


def _check_private(folder) -> None:
    info = os.lstat(folder)
    assert stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700
    assert info.st_uid == os.getuid()


@pytest.mark.skipif(not os.access("/dev/shm", os.W_OK), reason="no writable /dev/shm")
def test_the_folder_is_private_in_memory_and_removed():
    channel = GuestChannel(["/models", "."])
    folder = channel.folder
    assert str(folder).startswith("/dev/shm/wasinn-run-")
    _check_private(folder)
    assert (folder / "preopens").read_text() == "/models\n.\n"
    channel.failed("compute", Errno.RUNTIME_ERROR, "the\nreason")
    assert (folder / "last-error").read_text() == "compute\n5\nthe reason\n"
    channel.close()
    assert not folder.exists()


def test_without_a_memory_folder_the_temporary_folder_is_used(monkeypatch, tmp_path):
    monkeypatch.setattr(guest_channel, "MEMORY_FOLDER", str(tmp_path / "absent"))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)      # re-read TMPDIR
    channel = GuestChannel([])
    folder = channel.folder
    assert folder.parent == tmp_path
    _check_private(folder)
    channel.close()
    assert not folder.exists()


def test_two_channels_never_share_a_folder():
    one, two = GuestChannel([]), GuestChannel([])
    try:
        assert one.folder != two.folder
    finally:
        one.close()
        two.close()
