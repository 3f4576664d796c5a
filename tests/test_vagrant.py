"""The Vagrantfile: `vagrant validate` (Debian's vagrant + vagrant-libvirt), and what it must say."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VAGRANTFILE = ROOT / "Vagrantfile"


def _validate(directory: Path) -> subprocess.CompletedProcess:
    if not shutil.which("vagrant"):
        pytest.skip("vagrant is not installed (Debian: apt-get install --no-install-recommends "
                    "vagrant vagrant-libvirt; scripts/setup.sh installs it for the tests)")
    return subprocess.run(["vagrant", "validate"], cwd=directory, capture_output=True, text=True,
                          timeout=120, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                                            "HOME": str(directory), "VAGRANT_HOME": str(directory / ".vagrant.d"),
                                            "VAGRANT_CHECKPOINT_DISABLE": "1"})


def test_vagrant_validate(tmp_path):
    shutil.copy(VAGRANTFILE, tmp_path / "Vagrantfile")
    r = _validate(tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "validated successfully" in r.stdout


def test_vagrant_validate_catches_a_broken_option(tmp_path):
    """The check above has teeth: an option the libvirt provider does not know fails."""
    text = VAGRANTFILE.read_text().replace("lv.cpus = VCPUS", "lv.cpus = VCPUS\n    lv.no_such_option = 1")
    assert "no_such_option" in text
    (tmp_path / "Vagrantfile").write_text(text)
    r = _validate(tmp_path)
    assert r.returncode != 0 and "no_such_option" in r.stdout + r.stderr


def test_vagrantfile_contract():
    v = VAGRANTFILE.read_text()
    assert re.search(r'config\.vm\.box\s*=\s*"debian/bookworm64"', v)          # Debian 12
    assert "linux-image-6\\.12" in v and "linux-headers-" in v                   # 6.12 + headers
    assert 'provider "libvirt"' in v and 'provider "virtualbox"' in v
    assert re.search(r"libvirt__driver_queues:\s*2 \* VCPUS", v)                 # queues >= 2 x vCPUs
    assert 'nic_type: "virtio"' in v and 'libvirt__model_type: "virtio"' in v
    fwd = re.search(r'forwarded_port".*', v)[0]
    assert 'host_ip: "127.0.0.1"' in fwd                                         # loopback only
    assert "./lab setup" in v and "./lab start" in v                             # the one install path
    assert "apt-get install" not in v.split('provision "lab"')[1]                # no second copy
