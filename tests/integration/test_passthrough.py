# SPDX-License-Identifier: MIT
# The two read paths for stored files (issue 13): FUSE passthrough, where the kernel
# reads the cache file itself and no read reaches the daemon, and the daemon's own
# (-o passthrough=off, or a build or kernel without passthrough). What a mount should
# use follows from the build (tciafs --version names its libfuse), the kernel and who
# mounts; each test checks that the mount says so and behaves so.

import json
import os
import platform
import re
import time

from harness import run
from test_fetch import series_dir, store_state, zip_of


def expected_path():
    """("passthrough" | "daemon", a word of the reason status must give)."""
    out = run([os.environ["TCIAFS_BIN"], "--version"]).stdout
    lib = tuple(int(x) for x in re.search(r"libfuse (\d+)\.(\d+)", out).groups())
    kernel = tuple(int(x) for x in re.match(r"(\d+)\.(\d+)", platform.release()).groups())
    if lib < (3, 16):
        return "daemon", "libfuse"
    if kernel < (6, 9):
        return "daemon", "kernel"
    if os.geteuid() != 0:
        return "daemon", "CAP_SYS_ADMIN"
    return "passthrough", "passthrough"


def status(m):
    with open(os.path.join(m.mountpoint, ".tciafs", "status")) as f:
        return json.load(f)


def read_series(s, m, rec):
    """Reads every file of a series through the mount; checks each against the zip."""
    d = series_dir(m.mountpoint, rec)
    zf = zip_of(s, rec["SeriesInstanceUID"])
    for n in zf.namelist():
        with open(os.path.join(d, n), "rb") as f:
            assert f.read() == zf.read(n), n
    return zf.namelist()


def test_stored_files_read_right_on_either_path(ctx):
    s = ctx.server("--big-mb", "4")
    rec = s.get_json("getSeries", Collection="Big-Series")[0]
    want, why = expected_path()
    m = ctx.mount(s)
    read_series(s, m, rec)
    st = status(m)["reads"]
    assert st["path"] == want and why in st["why"], (st, want, why)
    assert "reads of stored files: %s" % want in m.log(), m.log()
    if want == "passthrough":
        # Every open of a stored file went to the kernel; no read came to us.
        assert st["passthrough_opens"] >= rec["ImageCount"] and st["served_by_daemon"] == 0, st
    else:
        assert st["passthrough_opens"] == 0 and st["served_by_daemon"] > 0, st
    ctx.unmount(m)
    # -o passthrough=off: the daemon serves, and says why.
    m = ctx.mount(s, options=["passthrough=off"])
    read_series(s, m, rec)
    st = status(m)["reads"]
    assert st["path"] == "daemon" and "passthrough=off" in st["why"], st
    assert st["passthrough_opens"] == 0 and st["served_by_daemon"] > 0, st
    # A generated file (series.json) is never a passthrough file.
    with open(os.path.join(series_dir(m.mountpoint, rec), "series.json")) as f:
        assert json.load(f)["SeriesInstanceUID"] == rec["SeriesInstanceUID"]


def test_eviction_never_takes_a_series_with_a_file_open(ctx):
    # As test_fetch's eviction test, on whichever read path the mount uses: the series
    # whose file is open stays in the store, and the open file reads on.
    s = ctx.server()
    recs = s.get_json("getSeries", Collection="Lung-Phantom-CT")
    cap = recs[0]["FileSize"] + recs[1]["FileSize"] + 6096
    cache = ctx.path("cache")
    m = ctx.mount(s, cache_dir=cache, options=["cache_size=%d" % cap])
    first = os.path.join(series_dir(m.mountpoint, recs[0]), "1-001.dcm")
    f = open(first, "rb")
    head = f.read(100)
    for rec in recs[1:4]:
        os.listdir(series_dir(m.mountpoint, rec))
        time.sleep(1.1)
    stored = store_state(cache)[0]
    assert recs[0]["SeriesInstanceUID"] in stored, stored
    assert "evicted" in m.log()
    rest = f.read()
    f.close()
    assert head + rest == zip_of(s, recs[0]["SeriesInstanceUID"]).read("1-001.dcm")
    want, _ = expected_path()
    assert status(m)["reads"]["path"] == want
    # Closed now: the next download may evict it.
    for rec in recs[4:6] + recs[1:3]:
        os.listdir(series_dir(m.mountpoint, rec))
        time.sleep(1.1)
    assert recs[0]["SeriesInstanceUID"] not in store_state(cache)[0]


def test_bad_passthrough_option_is_refused(ctx):
    r = run([os.environ["TCIAFS_BIN"], "-o", "passthrough=maybe,cache_dir=" + ctx.path("c"),
             ctx.path()], check=False)
    assert r.returncode == 1 and "passthrough=maybe" in r.stderr, r.stderr
