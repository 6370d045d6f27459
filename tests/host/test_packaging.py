"""The smitp-meter distribution: the wheel carries every firmware module inside the host
tools (smitp/_firmware/meter/) and no top-level `meter`; importing `smitp` makes `meter`
that firmware, and refuses another package of that name."""

import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from tools import ROOT

FIRMWARE = os.path.join(ROOT, "firmware")


def firmware_files():
    out = set()
    for d, dirs, files in os.walk(os.path.join(FIRMWARE, "meter")):
        dirs[:] = [x for x in dirs if x != "__pycache__"]
        out.update(os.path.relpath(os.path.join(d, f), FIRMWARE).replace(os.sep, "/")
                   for f in files if f.endswith((".py", ".pyi")))
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """Built from a copy of the sources, so the tree gets no build/ folder."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "setup.py"):
        shutil.copy(os.path.join(ROOT, name), src)
    for name in ("firmware", "host_tools"):
        shutil.copytree(os.path.join(ROOT, name), src / name, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(out), str(src)], capture_output=True, text=True, timeout=110)
    assert r.returncode == 0, r.stderr
    (path,) = out.glob("smitp_meter-*.whl")
    return path


def test_the_wheel_holds_every_firmware_module_inside_smitp_and_no_top_level_meter(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"smitp", wheel.name.split("-py3")[0] + ".dist-info"}, tops
    bundled = {n[len("smitp/_firmware/"):] for n in names if n.startswith("smitp/_firmware/")}
    assert firmware_files() <= bundled, firmware_files() - bundled
    assert {"meter/__init__.py", "meter/link/mac.py", "meter/contracts.pyi"} <= bundled
    assert "smitp/cli.py" in names and "smitp/firmware.py" in names


def run_isolated(where, code):
    """Python without site-packages (so no editable install), `where` first on the path."""
    return subprocess.run([sys.executable, "-S", "-c", "import sys; sys.path.insert(0, %r)\n%s" % (str(where), code)],
                          capture_output=True, text=True, timeout=60)


def test_the_installed_tools_load_their_bundled_firmware_as_meter(wheel, tmp_path):
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    r = run_isolated(tmp_path / "site", "import smitp, meter\nfrom meter.link import mac\nprint(meter.__file__)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(tmp_path / "site" / "smitp" / "_firmware" / "meter" / "__init__.py")


def test_a_foreign_meter_is_refused_not_used(wheel, tmp_path):
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    (tmp_path / "other" / "meter").mkdir(parents=True)
    (tmp_path / "other" / "meter" / "__init__.py").write_text("WHO = 'someone else'\n")
    # already imported: smitp says so instead of running someone else's code as firmware
    r = run_isolated(tmp_path / "site", "sys.path.insert(0, %r)\nimport meter\nimport smitp" % str(tmp_path / "other"))
    assert r.returncode == 1 and "ForeignFirmware: another package named meter" in r.stderr
    # only on the path: the bundled firmware comes first
    r = run_isolated(tmp_path / "site", "sys.path.append(%r)\nimport smitp, meter\nprint(hasattr(meter, 'WHO'))"
                     % str(tmp_path / "other"))
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr

