"""tern's ACPI tables through ACPICA's own tools (Debian's acpica-tools): test_boot writes them
(TERN_ACPI_DUMP), `iasl -d` disassembles each without a complaint, the DSDT compiles back to
the same AML, and `acpiexec` loads FADT, MADT and DSDT and evaluates every _CRS."""
import glob
import os
import re
import shutil
import subprocess

import pytest

from conftest import UNIT_DIR

pytestmark = pytest.mark.skipif(not shutil.which("iasl") or not shutil.which("acpiexec"),
                                reason="acpica-tools is not installed")
BAD = re.compile(r"error|warning|incorrect|invalid", re.I)


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    d = tmp_path_factory.mktemp("acpi")
    p = subprocess.run([os.path.join(UNIT_DIR, "test_boot")],
                       env=dict(os.environ, TERN_ACPI_DUMP=str(d)),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    assert p.returncode == 0, p.stdout.decode(errors="replace")
    return d


def run(d, *args):
    p = subprocess.run(args, cwd=d, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    return p.returncode, p.stdout.decode(errors="replace")


@pytest.mark.parametrize("name", ["xsdt", "facp", "apic", "dsdt"])
def test_iasl_disassembles(tables, name):
    rc, out = run(tables, "iasl", "-d", name + ".dat")
    assert rc == 0, out
    with open(tables / (name + ".dsl")) as f:
        dsl = f.read()
    assert not BAD.search(out) and not BAD.search(dsl), out + dsl


def test_dsdt_compiles_back_to_the_same_aml(tables):
    run(tables, "iasl", "-d", "dsdt.dat")
    rc, out = run(tables, "iasl", "-oa", "-p", "back", "dsdt.dsl")
    assert rc == 0 and "0 Errors, 0 Warnings, 0 Remarks" in out, out
    with open(tables / "dsdt.dat", "rb") as a, open(tables / "back.aml", "rb") as b:
        assert a.read()[36:] == b.read()[36:]  # the header names another compiler


def test_acpiexec_loads_and_evaluates(tables):
    rc, out = run(tables, "acpiexec", "-b", "Evaluate \\_S5;Evaluate \\_SB.VR01._CRS;"
                  "Evaluate \\_SB.COM1._CRS;Evaluate \\_SB.PEVT._CRS",
                  "facp.dat", "apic.dat", "dsdt.dat")
    assert rc == 0 and not BAD.search(out), out
    assert out.count("returned object") == 4, out
