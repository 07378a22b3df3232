# SPDX-License-Identifier: MIT
# The runner cleans up after itself: a test that fails with a mount in place, or a runner
# stopped by SIGTERM mid-test, leaves no tciafs mount and no process behind.

import os
import signal
import subprocess
import sys
import time

from harness import HERE_PYTHON, ROOT, TestFailure, mounted, wait_for

RUNNER = os.path.join(ROOT, "tests", "integration", "run.py")
SELFTEST = os.path.join(ROOT, "tests", "integration", "selftest")


def tciafs_mounts():
    """tciafs mounts made by the self-test runs (other runs may mount at the same time)."""
    with open("/proc/mounts") as f:
        return [l for l in f if "fuse.tciafs" in l and "/test_forced." in l]


def descendants_gone(pgid):
    r = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True)
    return r.stdout.strip() == ""


def test_failing_test_leaves_no_mount(ctx):
    before = tciafs_mounts()
    p = subprocess.Popen([HERE_PYTHON, RUNNER, "--bin", os.environ["TCIAFS_BIN"], "--dir",
                          SELFTEST, "-k", "fails_while_mounted"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 1, out
    assert out.rstrip().endswith("0 passed, 1 failed"), out
    assert "failing on purpose" in out
    assert tciafs_mounts() == before, tciafs_mounts()
    wait_for(lambda: descendants_gone(p.pid), 10, "the runner's processes to end")


def test_sigterm_mid_test_leaves_no_mount(ctx):
    before = tciafs_mounts()
    flag = ctx.path("mounted")
    env = dict(os.environ, TCIAFS_SELFTEST_WAIT=flag)
    p = subprocess.Popen([HERE_PYTHON, RUNNER, "--bin", os.environ["TCIAFS_BIN"], "--dir",
                          SELFTEST, "-k", "waits_while_mounted"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    try:
        wait_for(lambda: os.path.exists(flag), 60, "the self-test to mount")
        mp = open(flag).read().strip()
        assert mounted(mp)
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert p.returncode == 1, out
    assert not mounted(mp), out
    assert tciafs_mounts() == before
    wait_for(lambda: descendants_gone(p.pid), 10, "the runner's processes to end")
