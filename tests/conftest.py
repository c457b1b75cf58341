"""Shared test fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture
def refused(tmp_path, capsys):
    """``refused(main, argv, needle)``: ``main(argv + --out DIR)`` exits 2 with one stderr line
    containing ``needle`` and creates no DIR."""

    def check(main, argv, needle):
        out = tmp_path / "run"
        assert main([*argv, "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, err
        assert needle in err[0]
        assert not out.exists()

    return check
