"""Replays each fuzzer's seeds (tests/fuzz/corpus/fuzz_NAME/) through the fuzzer that `make
fuzzers` built, under ASan and UBSan: every input that once broke a reader stays a test."""
import glob
import os
import subprocess

import pytest

from conftest import ROOT

FUZZ_DIR = os.path.join(ROOT, "build", "fuzz")
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")
NAMES = sorted(os.path.basename(s)[:-2]
               for s in glob.glob(os.path.join(ROOT, "tests", "fuzz", "fuzz_*.c")))


@pytest.mark.parametrize("name", NAMES)
def test_fuzz_corpus(name):
    seeds = os.path.join(CORPUS, name)
    assert os.listdir(seeds), f"{name} has no seeds in {seeds}"
    binary = os.path.join(FUZZ_DIR, name)
    assert os.access(binary, os.X_OK), f"make fuzzers did not build {binary}"
    p = subprocess.run([binary, "-runs=0", seeds], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, out[-4000:]


def test_fuzzers_exist():
    assert NAMES, "no fuzzers in tests/fuzz"
