# SPDX-License-Identifier: MIT
# Tests that fail or hang on purpose. Not part of the suite: test_cleanup.py runs the
# runner on this folder to prove it leaves no mount or process behind when a test fails
# or when the runner itself is stopped mid-test.

import os
import time


def test_fails_while_mounted(ctx):
    s = ctx.server()
    m = ctx.mount(s)
    os.listdir(m.mountpoint)
    assert False, "failing on purpose with a mount in place"


def test_waits_while_mounted(ctx):
    if not os.environ.get("TCIAFS_SELFTEST_WAIT"):
        return
    s = ctx.server()
    m = ctx.mount(s)
    with open(os.environ["TCIAFS_SELFTEST_WAIT"], "w") as f:
        f.write(m.mountpoint + "\n")
    time.sleep(120)
