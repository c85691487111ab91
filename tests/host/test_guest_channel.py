"""The per-run /.wasinn folder: private, in memory where possible, gone after the run."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

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
    assert folder.parent == Path(f"/dev/shm/wasinn-{os.getuid()}")
    assert folder.name.startswith(f"run-{os.getpid()}-")
    _check_private(folder)
    _check_private(folder.parent)
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


def test_folders_of_processes_that_are_gone_are_removed(monkeypatch, tmp_path):
    memory = tmp_path / "shm"
    memory.mkdir()
    monkeypatch.setattr(guest_channel, "MEMORY_FOLDER", str(memory))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    parent = memory / f"wasinn-{os.getuid()}"
    parent.mkdir(mode=0o700)
    orphan = parent / f"run-{gone.stdout.strip()}-abc"      # its process has exited
    orphan.mkdir()
    (orphan / "preopens").write_text("\n")
    alive = parent / f"run-{os.getppid()}-abc"               # a running process's
    alive.mkdir()
    stranger = parent / "not-a-run-folder"
    stranger.mkdir()
    channel = GuestChannel([])
    folder = channel.folder
    assert not orphan.exists() and alive.exists() and stranger.exists()
    channel.close()
    assert not folder.exists()


def test_a_parent_that_is_not_ours_alone_is_not_used(monkeypatch, tmp_path):
    memory = tmp_path / "shm"
    memory.mkdir()
    monkeypatch.setattr(guest_channel, "MEMORY_FOLDER", str(memory))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (memory / f"wasinn-{os.getuid()}").symlink_to(elsewhere)    # planted: not followed
    channel = GuestChannel([])
    assert channel.folder.parent == tmp_path and not list(elsewhere.iterdir())
    channel.close()
    os.unlink(memory / f"wasinn-{os.getuid()}")
    (memory / f"wasinn-{os.getuid()}").mkdir(mode=0o777)
    os.chmod(memory / f"wasinn-{os.getuid()}", 0o777)          # open to others
    channel = GuestChannel([])
    assert channel.folder.parent == tmp_path
    channel.close()
