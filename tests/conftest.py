"""Shared test fixtures."""

from __future__ import annotations

import pytest

from rljax.run import xla_cpu

# The test processes train on XLA:CPU like the scripts do: a thread pool large enough that
# sharded and many-seed programs cannot wait forever for a thread (see rljax.run.xla_cpu).
xla_cpu.configure(strict=False)


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
