# SPDX-License-Identifier: MIT
# What a hostile server and unlucky users found (issue 14), each through a real mount:
# forged log lines, credentials in api=, manifests that are not files, UIDs with NULs,
# bidi names, stops during hung downloads, oversized downloads, trickled answers, the
# eviction race, and the reason for a failure where users look (user.tciafs.error).

import os
import subprocess

from harness import ROOT, run

from test_fetch import series_dir

HOSTILE = os.path.join(ROOT, "tests", "hostile", "zips")


def test_log_lines_cannot_be_forged(ctx):
    s = ctx.server()
    m = ctx.mount(s, options=["retries=0"])
    recs = s.get_json("getSeries", Collection="Soft-tissue-Sarcoma")
    rec = recs[0]
    s.fault(kind="zipfile", endpoint="getImage", series=rec["SeriesInstanceUID"],
            path=os.path.join(HOSTILE, "bad-newline.zip"))
    r = run(["ls", series_dir(m.mountpoint, rec)], check=False)
    assert r.returncode != 0 and "Input/output error" in r.stderr, r.stderr
    log = m.log()
    assert not any(l.startswith("tciafs: info: forged") for l in log.splitlines()), log
    assert "a.dcm\\x0atciafs: info: forged line" in log, log
