"""`dunning worker` on a new machine: the state folder (DUNNING_STATE_DIR) is created with
its parents, and one that cannot be created stops the worker with one clear line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.settings import Settings
from processors.worker import StateDirError, prepare_state_dir


def test_a_missing_state_folder_is_created_with_its_parents(tmp_path: Path) -> None:
    state = tmp_path / "new" / "machine" / "state"
    assert prepare_state_dir(Settings(state_dir=state)) == state
    assert state.is_dir()
    assert prepare_state_dir(Settings(state_dir=state)) == state  # already there: fine


@pytest.mark.parametrize("where", ["under_a_file", "is_a_file"])
def test_a_state_folder_that_cannot_be_created_is_one_clear_error(
        tmp_path: Path, where: str) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    state = blocker / "state" if where == "under_a_file" else blocker
    with pytest.raises(StateDirError) as caught:
        prepare_state_dir(Settings(state_dir=state))
    message = str(caught.value)
    assert "\n" not in message
    assert str(state) in message and "DUNNING_STATE_DIR" in message
    assert caught.value.code == message  # SystemExit: printed on stderr, exit status 1


def test_a_state_folder_the_system_refuses_is_one_clear_error() -> None:
    # sysfs refuses new folders to every user, root included (mode bits would not stop
    # root, which CI runs as)
    with pytest.raises(StateDirError, match="DUNNING_STATE_DIR") as caught:
        prepare_state_dir(Settings(state_dir=Path("/sys/dunning-state")))
    assert "/sys/dunning-state" in str(caught.value)


def test_dunning_worker_exits_with_the_error_before_it_builds_the_app(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    state = blocker / "state"
    env = dict(os.environ, DUNNING_STATE_DIR=str(state),
               DUNNING_BROKER="kafka://127.0.0.1:9")  # never reached
    proc = subprocess.run([sys.executable, "-m", "dunning", "worker"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(state) in lines[0] and "DUNNING_STATE_DIR" in lines[0]
    assert "Traceback" not in proc.stderr
