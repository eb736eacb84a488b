# SPDX-License-Identifier: Apache-2.0
"""The binary carries Debian's hardening (the Makefile's HARDEN_* flags): a stack protector,
fortified libc calls, full RELRO with immediate binding, a position-independent executable and
a non-executable stack. Read from the linked ELF with readelf, as checksec does."""

import re
import shutil
import subprocess

import pytest

from conftest import BINARY

pytestmark = pytest.mark.skipif(shutil.which("readelf") is None, reason="readelf (binutils) is not installed")


def readelf(*args):
    r = subprocess.run(["readelf", "-W", *args, BINARY], capture_output=True, text=True, check=True)
    return r.stdout


def dynamic_symbols():
    """Names of the undefined dynamic symbols, without their version suffix."""
    names = set()
    for line in readelf("--dyn-syms").splitlines():
        cols = line.split()
        if len(cols) >= 8 and cols[6] == "UND":
            names.add(cols[7].split("@")[0])
    return names


def test_stack_protector():
    assert "__stack_chk_fail" in dynamic_symbols(), "no __stack_chk_fail: built without -fstack-protector-strong"


def test_fortify_source():
    chk = sorted(s for s in dynamic_symbols() if re.fullmatch(r"__\w+_chk", s) and s != "__stack_chk_fail")
    # snprintf and fprintf are called with sizes the compiler knows; -D_FORTIFY_SOURCE=2 routes them.
    assert "__snprintf_chk" in chk and "__fprintf_chk" in chk, f"fortified calls found: {chk}"


def test_full_relro_and_bind_now():
    headers = readelf("--program-headers")
    assert re.search(r"^\s*GNU_RELRO\s", headers, re.M), "no GNU_RELRO segment: built without -z relro"
    dynamic = readelf("--dynamic")
    flags = " ".join(l for l in dynamic.splitlines() if "(FLAGS" in l)
    assert "BIND_NOW" in flags or re.search(r"\bNOW\b", flags), f"no BIND_NOW (partial RELRO): {flags!r}"


def test_pie():
    header = readelf("--file-header")
    assert re.search(r"Type:\s+DYN", header), "not a position-independent executable"
    assert re.search(r"\bPIE\b", readelf("--dynamic")), "FLAGS_1 lacks PIE"


def test_non_executable_stack():
    stack = [l for l in readelf("--program-headers").splitlines() if "GNU_STACK" in l]
    assert stack, "no GNU_STACK header: the loader would make the stack executable"
    assert not re.search(r"\bRWE\b", stack[0]), stack[0]


def test_no_rpath():
    assert not re.search(r"\((RPATH|RUNPATH)\)", readelf("--dynamic"))
