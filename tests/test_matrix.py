"""The kernel matrix: Debian kernels booted under qemu run the smoke suite on virtio_net.

The slow tests boot two guests at once (TCG: a few minutes, BCC's compile dominates):
6.12 runs the whole suite and must pass; 6.1 runs a drop check with the WRONG program
(XDP_PASS where XDP_DROP is expected) and must be reported as a failure. The host kernel
runs the suite directly.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import threading

import pytest

from xdplab.dev import matrix
from xdplab.dev.matrix import GuestRun

pytestmark = pytest.mark.kernel


def _fake(kernel, **results):
    r = GuestRun(kernel, release=f"{kernel}-test", total_s=1.0, accel="tcg")
    for check, (status, detail) in results.items():
        r.results[check] = {"check": check, "status": status, "detail": detail}
    return r


def test_table_and_verdict():
    ok = _fake("6.12", bcc_compile=("pass", ""), features=("pass", "basic"))
    old = _fake("6.1", bcc_compile=("pass", ""), features=("skip", "needs >= 6.3"))
    t = matrix.table([ok, old])
    assert "6.12 (6.12-test)" in t and "skip: needs >= 6.3" in t
    assert not matrix.failed([ok, old])
    bad = _fake("6.1", xdp_drop=("fail", "5/5 ping replies got through"))
    assert "FAIL: 5/5 ping replies" in matrix.table([ok, bad])
    assert matrix.failed([ok, bad])
    assert matrix.failed([ok, GuestRun("6.1", error="qemu exited 1")])


def test_resolve_series():
    if not shutil.which("apt-cache"):
        pytest.skip("no apt-cache: not a Debian machine")
    for series in matrix.SERIES:
        try:
            abi = matrix.resolve(series)
        except matrix.MatrixError as e:
            pytest.skip(str(e))
        assert abi.startswith(series + "."), abi
        assert matrix.SERIES[series].match(f"linux-image-{abi}-amd64-unsigned")


def test_cpio_is_newc():
    data = matrix.cpio([("bin", 0o40755, b""), ("init", 0o100755, "#!/bin/sh\n")])
    assert data.startswith(b"070701") and b"TRAILER!!!" in data
    assert len(data) % 4 == 0
    if shutil.which("cpio"):
        listing = subprocess.run(["cpio", "-t"], input=data, capture_output=True).stdout.decode()
        assert listing.split() == ["bin", "init"]


def test_main_refuses_non_root(monkeypatch, capsys):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert matrix.main(["--kernels", "host"]) == 2
    assert "root" in capsys.readouterr().err


# --- the real thing ------------------------------------------------------------------------

def _need_qemu():
    if os.geteuid() != 0:
        pytest.skip("needs root (tap devices, BPF)")
    if not shutil.which("qemu-system-x86_64"):
        pytest.skip("qemu-system-x86_64 missing (Debian: qemu-system-x86, scripts/setup.sh)")


@pytest.fixture(scope="module")
def runs():
    """6.12 (whole suite), 6.1 (sabotaged drop check) and the host, run concurrently."""
    _need_qemu()
    try:
        k612 = matrix.Kernel("6.12", matrix.resolve("6.12")).fetch(lambda k, m: None)
        k61 = matrix.Kernel("6.1", matrix.resolve("6.1")).fetch(lambda k, m: None)
    except (matrix.MatrixError, subprocess.CalledProcessError) as e:
        pytest.skip(f"cannot get the Debian kernels: {e}")
    out = {}
    jobs = {
        "6.12": lambda: matrix.run_guest(k612, vcpus=1),
        "6.1-sabotaged": lambda: matrix.run_guest(
            k61, ["--only", "bcc_compile", "native_attach", "xdp_drop", "metadata_tc",
                  "--sabotage", "drop"], vcpus=1),
        "host": lambda: matrix.run_host(),
    }

    def run(name, fn):
        out[name] = fn()
        out[name].kernel = name          # the table's column label

    threads = [threading.Thread(target=run, args=kv) for kv in jobs.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("\n" + matrix.table(list(out.values())))
    return out


def _status(run: GuestRun, check: str) -> str:
    r = run.results.get(check)
    assert r, f"{run.kernel}: no result for {check} ({run.error or 'not reported'}); " \
              f"console tail: {run.console[-8:]}"
    return r["status"]


@pytest.mark.slow
def test_612_guest_passes_on_virtio_net(runs):
    r = runs["6.12"]
    assert not r.error, f"{r.error}: {r.console[-15:]}"
    assert r.release.startswith("6.12.")
    assert "virtio_net" in r.results["kernel"]["detail"]
    for check in ("bcc_compile", "native_attach", "counters", "xdp_drop", "xdp_tx", "features",
                  "live_frames", "afxdp", "metadata_tc"):
        assert _status(r, check) == "pass", f"6.12 {check}: {r.results[check]['detail']}"
    assert "basic" in r.results["features"]["detail"]      # the kernel's own xdp_features
    # issue 16: multi-buffer, device-bound RX hints, broadcast, memory model, page pools
    for check in ("xdp_frags", "rx_hints", "broadcast", "memory_model", "page_pools"):
        assert _status(r, check) == "pass", f"6.12 {check}: {r.results[check]['detail']}"
    assert "page_shared" in r.results["memory_model"]["detail"]       # virtio_net's RX queue


@pytest.mark.slow
def test_61_guest_reports_the_wrong_program_as_failed(runs):
    r = runs["6.1-sabotaged"]
    assert not r.error, f"{r.error}: {r.console[-15:]}"
    assert _status(r, "bcc_compile") == "pass" and _status(r, "native_attach") == "pass"
    assert _status(r, "xdp_drop") == "fail"
    assert "ping replies got through" in r.results["xdp_drop"]["detail"]
    assert _status(r, "metadata_tc") == "skip"               # no tcx before 6.6: say so
    assert r.results["metadata_tc"]["detail"] == "needs >= 6.6"
    assert matrix.failed([r])
    assert "FAIL" in matrix.table([r])


@pytest.mark.slow
def test_host_row(runs):
    r = runs["host"]
    assert not r.error, r.error
    assert {_status(r, c) for c in ("bcc_compile", "native_attach", "counters", "xdp_drop")} == {"pass"}
    assert _status(r, "xdp_tx").startswith("skip")        # virtio_net only
    assert not matrix.failed([r]), matrix.table([r])
