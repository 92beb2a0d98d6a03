"""config.logs: records go to the standard error stream of the moment they are written."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from config.logs import configure


def test_a_record_goes_to_the_current_stderr_even_after_the_first_one_is_closed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure()
    try:
        first.close()  # as pytest closes a test's captured stream
        monkeypatch.setattr(sys, "stderr", second)
        logging.getLogger("dunning.test").warning("a late record")
        assert "a late record" in second.getvalue()
    finally:
        logging.getLogger().handlers.clear()
