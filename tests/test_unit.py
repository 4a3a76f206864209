"""Runs each C unit-test binary that `make unit` built (tests/unit/test_*.c).

A binary that cannot test anything on this machine (test_boot_kvm without /dev/kvm) exits
77, automake's "skipped", after printing why: that becomes a pytest skip with its words."""
import glob
import os
import subprocess

import pytest

from conftest import UNIT_DIR

EXIT_SKIP = 77

BINS = sorted(b for b in glob.glob(os.path.join(UNIT_DIR, "test_*"))
              if os.access(b, os.X_OK) and not b.endswith(".d"))


@pytest.mark.parametrize("binary", BINS, ids=[os.path.basename(b) for b in BINS])
def test_unit(binary):
    p = subprocess.run([binary], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    out = p.stdout.decode(errors="replace")
    if p.returncode == EXIT_SKIP:
        pytest.skip(out.strip() or "exit status 77 without a reason")
    assert p.returncode == 0, out


def test_unit_binaries_exist():
    assert BINS, "make unit built no unit tests into " + UNIT_DIR
