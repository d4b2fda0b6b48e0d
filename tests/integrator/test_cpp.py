"""Builds the C++ tests of the plugin (per platform) in a scratch folder and runs them with ctest."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake is not installed")
@pytest.mark.slow
def test_cpp_tests_pass(tmp_path):
    build = tmp_path / "build"
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    subprocess.run(["cmake", "-S", ROOT, "-B", str(build), "-DTIMEWARP_BUILD_TESTS=ON", "-DCMAKE_BUILD_TYPE=Release",
                    f"-DPython3_EXECUTABLE={sys.executable}", *generator], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(build), "--parallel", "2", "--target", "TestTimewarpIntegrator",
                    "TestModel"], check=True, capture_output=True)
    result = subprocess.run(["ctest", "--output-on-failure"], cwd=build, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "100% tests passed" in result.stdout
