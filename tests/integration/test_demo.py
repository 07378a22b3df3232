# SPDX-License-Identifier: MIT
# make demo's script as a person uses it: it mounts, `ls` shows the collections, and
# Ctrl-C (SIGINT to the whole foreground process group) leaves no mount and no process.

import os
import signal
import subprocess

from harness import ROOT, mounted, run, wait_for


def test_demo_mounts_and_ctrl_c_cleans_up(ctx, source="nbia", shown="Lung-Phantom-CT"):
    mnt = ctx.path("mnt")
    env = dict(os.environ, DEMO_MNT=mnt, DEMO_WORK=ctx.path("work"))
    log = open(ctx.path("demo.out"), "w")
    p = subprocess.Popen(["sh", os.path.join(ROOT, "scripts", "demo.sh"),
                          os.environ["TCIAFS_BIN"], source], cwd=ROOT, env=env, stdout=log,
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True)
    try:
        wait_for(lambda: mounted(mnt) or p.poll() is not None, 30, "the demo to mount")
        assert mounted(mnt), open(ctx.path("demo.out")).read()
        names = run(["ls", mnt]).stdout.splitlines()
        assert shown in names and "README.txt" in names, names
        os.killpg(p.pid, signal.SIGINT)          # what Ctrl-C in a terminal does
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        log.close()
    out = open(ctx.path("demo.out")).read()
    assert "ls " in out and "Ctrl-C" in out, out
    assert not mounted(mnt), out
    r = subprocess.run(["pgrep", "-g", str(p.pid)], capture_output=True, text=True)
    assert r.stdout.strip() == "", "processes left: " + r.stdout


def test_demo_of_the_idc_source(ctx):
    test_demo_mounts_and_ctrl_c_cleans_up(ctx, "idc", "TCGA-LUAD")
