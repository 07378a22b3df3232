# SPDX-License-Identifier: MIT
# The network gone (issue 6 §3): a server that accepts and never answers, and one that is
# not there at all. Sixteen callers waiting at once all get an errno within the configured
# bound, nobody is left in D state, and unmounting works at once afterwards.

import os
import subprocess
import time

from harness import mounted, run

TIMEOUT, RETRIES = 2, 1
# Each caller: at most (retries + 1) attempts of `timeout`, one backoff, plus slack.
BOUND = (RETRIES + 1) * TIMEOUT + 2 + 2


def sixteen_callers(paths):
    t0 = time.monotonic()
    procs = [subprocess.Popen(["ls", p], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True) for p in paths]
    states = set()
    for p in procs:
        try:
            with open("/proc/%d/stat" % p.pid) as f:
                states.add(f.read().split(")")[-1].split()[0])
        except OSError:
            pass
    errs = [p.communicate(timeout=60)[1] for p in procs]
    return time.monotonic() - t0, procs, errs


def test_server_that_never_answers(ctx):
    s = ctx.server()
    m = ctx.mount(s, options=["timeout=%d" % TIMEOUT, "retries=%d" % RETRIES])
    os.listdir(m.mountpoint)                       # the collections are known
    s.fault(kind="hang", seconds=120)               # from now on, silence
    colls = ["Lung-Phantom-CT", "CT COLONOGRAPHY", "Soft-tissue-Sarcoma"]
    paths = [os.path.join(m.mountpoint, colls[i % 3]) for i in range(16)]
    dt, procs, errs = sixteen_callers(paths)
    assert all(p.returncode != 0 for p in procs), errs
    assert all("timed out" in e for e in errs), errs
    assert dt < BOUND + 2, dt
    t0 = time.monotonic()
    run(["fusermount3", "-u", m.mountpoint])
    assert not mounted(m.mountpoint) and time.monotonic() - t0 < 2
    ctx.unmount(m)


def test_server_not_there(ctx):
    m = ctx.mount(api="http://127.0.0.1:9/nbia-api/services/v4",
                  options=["timeout=%d" % TIMEOUT, "retries=%d" % RETRIES])
    paths = [m.mountpoint] * 16
    dt, procs, errs = sixteen_callers(paths)
    assert all(p.returncode != 0 and "Input/output error" in e for p, e in zip(procs, errs)), errs
    assert dt < BOUND, dt
    assert "127.0.0.1:9" in m.log()
    t0 = time.monotonic()
    ctx.unmount(m)
    assert time.monotonic() - t0 < 2
