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
    first = os.path.join(series_dir(m.mountpoint, recs[0]), "00000001.dcm")
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
    assert head + rest == zip_of(s, recs[0]["SeriesInstanceUID"]).read("00000001.dcm")
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


# -- no serial round trips before a download (issue 13, part 4) --------------------------

def by_uid(m, uid):
    return os.path.join(m.mountpoint, ".tciafs", "series", uid)


def test_open_by_uid_starts_the_download_at_once(ctx):
    # 200 ms a request: the metadata chain (getSeries by UID, the collection's patients,
    # studies and series) takes a second; getImage must not wait for it.
    s = ctx.server("--delay", "0.2", "--series-size-delay", "0")
    rec = s.get_json("getSeries", Collection="Lung-Phantom-CT")[0]
    uid = rec["SeriesInstanceUID"]
    m = ctx.mount(s)
    t0 = time.time()
    names = sorted(os.listdir(by_uid(m, uid)))
    zf = zip_of(s, uid)
    assert names == sorted(zf.namelist() + ["series.json"]), names
    mine = [e for e in s.requests() if e["ua"].startswith("tciafs/") and e["t"] >= t0]
    first = min(e["t"] for e in mine)
    image = [e["t"] for e in mine if e["endpoint"] == "getImage"]
    assert len(image) == 1 and image[0] - first < 0.2, [(e["endpoint"], e["t"] - first)
                                                         for e in mine]
    assert len(mine) >= 3        # the metadata did come, beside the download
    with open(os.path.join(by_uid(m, uid), "00000001.dcm"), "rb") as f:
        assert f.read() == zf.read("00000001.dcm")


def test_a_uid_of_a_collection_at_hand_costs_no_request(ctx):
    s = ctx.server()
    recs = s.get_json("getSeries", Collection="Soft-tissue-Sarcoma")
    m = ctx.mount(s)
    run(["find", os.path.join(m.mountpoint, "Soft-tissue-Sarcoma"), "-maxdepth", "3"])
    n0 = len(s.requests())
    os.listdir(by_uid(m, recs[0]["SeriesInstanceUID"]))
    st = os.stat(by_uid(m, recs[1]["SeriesInstanceUID"]))
    new = [e["endpoint"] for e in s.requests()[n0:]]
    assert new == ["getImage"], new          # only the download itself
    assert st.st_mtime > 0
    # Nothing below a file of it, no *.json but series.json, and neither costs a
    # request.
    folder = by_uid(m, recs[0]["SeriesInstanceUID"])
    name = sorted(os.listdir(folder))[0]
    n0 = len(s.requests())
    for bad in (os.path.join(folder, name, "x"), os.path.join(folder, "study.json")):
        try:
            os.stat(bad)
            raise AssertionError(bad + " should not exist")
        except (FileNotFoundError, NotADirectoryError):
            pass
    assert s.requests()[n0:] == []


def test_unknown_uid_fails_at_open_and_stores_nothing(ctx):
    s = ctx.server()
    cache = ctx.path("cache")
    m = ctx.mount(s, cache_dir=cache)
    r = run(["ls", by_uid(m, "1.2.3.999")], check=False)
    assert r.returncode != 0 and "No such file or directory" in r.stderr, r.stderr
    time.sleep(0.5)
    assert store_state(cache) == ([], [])


def test_a_zip_that_disagrees_with_metadata_arriving_late_is_refused(ctx):
    # The download starts at once; the metadata comes a second later; the zip (one file
    # short) is checked against it before anything is stored, and refused.
    s = ctx.server("--series-size-delay", "0")
    recs = s.get_json("getSeries", Collection="Lung-Phantom-CT")
    rec = next(r for r in recs if r["ImageCount"] >= 2)
    uid = rec["SeriesInstanceUID"]
    zf = zip_of(s, uid)
    short = ctx.path("short.zip")
    import zipfile
    with zipfile.ZipFile(short, "w") as out:
        for n in zf.namelist()[1:]:
            out.writestr(n, zf.read(n))
    s.fault(kind="zipfile", endpoint="getImage", series=uid, path=short)
    s.fault(kind="delay", endpoint="getSeries", seconds=1.0)
    cache = ctx.path("cache")
    m = ctx.mount(s, cache_dir=cache, options=["retries=0"])
    t0 = time.time()
    r = run(["ls", by_uid(m, uid)], check=False)
    assert r.returncode != 0 and "Input/output error" in r.stderr, r.stderr
    img = [e["t"] for e in s.requests("getImage") if e["t"] >= t0]
    meta = [e["t"] + e["dt"] for e in s.requests("getSeries") if e["t"] >= t0]
    assert img and meta and min(img) < min(meta), (img, meta)    # the zip came first
    assert "the metadata says" in m.log(), m.log()
    assert store_state(cache) == ([], [])


def test_opens_in_a_kept_folder_skip_the_catalog(ctx):
    """A series folder opened into is kept with its series while its load holds: the
    other opens of its stored files resolve nothing in the catalog (the status counts
    them) and read the same bytes; SIGHUP or the end of meta_ttl makes the next open
    resolve, and load, again."""
    import signal
    s = ctx.server("--big-mb", "4")
    rec = s.get_json("getSeries", Collection="Big-Series")[0]
    m = ctx.mount(s, options=["meta_ttl=3"])
    names = read_series(s, m, rec)
    assert len(names) > 2
    # The first open resolved the path; the others found its folder kept.
    assert status(m)["reads"]["opens_in_kept_folders"] == len(names) - 1
    read_series(s, m, rec)
    assert status(m)["reads"]["opens_in_kept_folders"] == 2 * len(names) - 1
    m.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "SIGHUP" not in m.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    n = len([e for e in s.requests() if e.get("endpoint") == "getSeries"])
    read_series(s, m, rec)
    assert status(m)["reads"]["opens_in_kept_folders"] == 3 * len(names) - 2
    assert len([e for e in s.requests() if e.get("endpoint") == "getSeries"]) > n
    # Past meta_ttl, an open in the kept folder looks (and loads) again.
    time.sleep(3.5)
    n = len([e for e in s.requests() if e.get("endpoint") == "getSeries"])
    d = series_dir(m.mountpoint, rec)
    with open(os.path.join(d, names[0]), "rb") as f:
        assert f.read() == zip_of(s, rec["SeriesInstanceUID"]).read(names[0])
    assert status(m)["reads"]["opens_in_kept_folders"] == 3 * len(names) - 2
    assert len([e for e in s.requests() if e.get("endpoint") == "getSeries"]) > n
    ctx.unmount(m)
