# SPDX-License-Identifier: MIT
# Opening a series folder fetches its DICOM files (issue 5), through a real mount against
# the fake: real DICOM that dcmdump, pydicom and dcm2niix read; one download however many
# ask; the store whole or absent under every fault, kill -9 and a full disk; eviction;
# the walk guard; offline; interruption; /.tciafs/status.

import errno
import filecmp
import io
import json
import os
import signal
import subprocess
import threading
import time
import zipfile

import pydicom

from harness import ROOT, TestFailure, mounted, run, wait_for

HOSTILE = os.path.join(ROOT, "tests", "hostile", "zips")


def series_dir(mp, rec):
    """A series folder by bare UIDs (collection and patient names here need no cleaning)."""
    return os.path.join(mp, rec["Collection"], rec["PatientID"], rec["StudyInstanceUID"],
                        rec["SeriesInstanceUID"])


def store_state(cache):
    series = sorted(os.listdir(os.path.join(cache, "series")))
    tmp = sorted(os.listdir(os.path.join(cache, "tmp")))
    return series, tmp


def fetches(s):
    """getImage requests made by tciafs (tests fetch zips themselves too, to compare)."""
    return [e for e in s.requests("getImage") if e["ua"].startswith("tciafs/")]


def zip_of(s, uid):
    status, _, body = s.get("getImage", SeriesInstanceUID=uid)
    assert status == 200
    return zipfile.ZipFile(io.BytesIO(body))


def test_series_folder_holds_real_dicom(ctx):
    s = ctx.server("--series-size-delay", "0")
    m = ctx.mount(s)
    rec = s.get_json("getSeries", Collection="Soft-tissue-Sarcoma", PatientID="STS_001")[0]
    d = series_dir(m.mountpoint, rec)
    names = sorted(os.listdir(d))
    zf = zip_of(s, rec["SeriesInstanceUID"])
    assert names == sorted(zf.namelist() + ["series.json"]), names
    for n in zf.namelist():
        p = os.path.join(d, n)
        with open(p, "rb") as f:
            assert f.read() == zf.read(n), n           # byte for byte the zip's entry
        assert os.stat(p).st_size == zf.getinfo(n).file_size
        if n == "LICENSE":
            continue
        r = run(["dcmdump", "-q", p], check=False)
        assert r.returncode == 0 and not r.stderr.strip(), r.stderr
        ds = pydicom.dcmread(p)
        assert ds.SeriesInstanceUID == rec["SeriesInstanceUID"]
        assert ds.pixel_array.shape == (ds.Rows, ds.Columns)
    out = ctx.path("nii")
    os.makedirs(out)
    r = run(["dcm2niix", "-o", out, "-f", "s", d], check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert any(f.endswith(".nii") for f in os.listdir(out)), os.listdir(out)
    assert len(fetches(s)) == 1
    # Reading again costs nothing.
    os.listdir(d)
    assert len(fetches(s)) == 1


def test_lookup_of_a_file_fetches_too(ctx):
    s = ctx.server()
    m = ctx.mount(s)
    rec = s.get_json("getSeries", Collection="CT COLONOGRAPHY")[0]
    p = os.path.join(series_dir(m.mountpoint, rec), "00000001.dcm")
    with open(p, "rb") as f:
        assert f.read(132)[128:] == b"DICM"
    assert len(fetches(s)) == 1
    # The folder's own stat, and series.json, never fetch.
    rec2 = s.get_json("getSeries", Collection="CT COLONOGRAPHY")[1]
    os.stat(series_dir(m.mountpoint, rec2))
    assert len(fetches(s)) == 1


def test_16_openers_one_download(ctx):
    s = ctx.server()
    rec = s.get_json("getSeries", Collection="Lung-Phantom-CT")[0]
    s.fault(kind="delay", endpoint="getImage", seconds=1.0, times=1)
    m = ctx.mount(s)
    d = series_dir(m.mountpoint, rec)
    procs = [subprocess.Popen(["ls", d], stdout=subprocess.PIPE, text=True) for _ in range(16)]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len(set(outs)) == 1 and "00000001.dcm" in outs[0]
    assert len(fetches(s)) == 1


def test_two_mounts_share_one_store(ctx):
    s = ctx.server()
    rec = s.get_json("getSeries", Collection="Lung-Phantom-CT")[1]
    s.fault(kind="delay", endpoint="getImage", seconds=1.0, times=1)
    cache = ctx.path("shared")
    m1 = ctx.mount(s, cache_dir=cache)
    m2 = ctx.mount(s, cache_dir=cache)
    out = {}

    def lister(m):
        out[m.mountpoint] = sorted(os.listdir(series_dir(m.mountpoint, rec)))

    ts = [threading.Thread(target=lister, args=(m,)) for m in (m1, m2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert out[m1.mountpoint] == out[m2.mountpoint] and "LICENSE" in out[m1.mountpoint]
    assert len(fetches(s)) == 1


FAULTS = [
    ("5xx", {"kind": "status", "status": 503}, "HTTP 503"),
    ("reset", {"kind": "reset"}, "download failed"),
    ("truncated", {"kind": "truncate"}, "bad zip"),
    ("corrupt", {"kind": "corrupt"}, "damaged entry"),
    ("empty", {"kind": "zipfile", "path": os.path.join(HOSTILE, "bad-empty.zip")},
     "empty zip"),
    ("dotdot", {"kind": "zipfile", "path": os.path.join(HOSTILE, "bad-dotdot.zip")},
     "refusing entry name"),
    ("symlink", {"kind": "zipfile", "path": os.path.join(HOSTILE, "bad-symlink.zip")},
     "not a regular file"),
    ("bomb", {"kind": "zipfile", "path": os.path.join(HOSTILE, "bad-bomb.zip")},
     "metadata says"),
]


def test_faults_leave_the_store_unchanged(ctx):
    s = ctx.server()
    cache = ctx.path("cache")
    m = ctx.mount(s, cache_dir=cache, options=["retries=0", "timeout=5"])
    recs = s.get_json("getSeries", Collection="Soft-tissue-Sarcoma") + \
        s.get_json("getSeries", Collection="Lung-Phantom-CT")
    assert len(recs) >= len(FAULTS)
    for (name, rule, logline), rec in zip(FAULTS, recs):
        s.fault(endpoint="getImage", series=rec["SeriesInstanceUID"], **rule)
        before = len(m.log().splitlines())
        r = run(["ls", series_dir(m.mountpoint, rec)], check=False)
        assert r.returncode != 0, name
        assert "Input/output error" in r.stderr or "Bad message" in r.stderr, (name, r.stderr)
        assert store_state(cache) == ([], []), (name, store_state(cache))
        new = m.log().splitlines()[before:]
        assert any(logline in l and rec["SeriesInstanceUID"] in l for l in new), (name, new)
        assert not os.path.exists("/tmp/tciafs-evil.dcm")
    # Lift the faults: every series now arrives whole.
    s.reset_faults()
    time.sleep(3.2)     # a failure is remembered for 3 s, to spare the server
    for rec in recs[:len(FAULTS)]:
        names = os.listdir(series_dir(m.mountpoint, rec))
        assert "LICENSE" in names and len(names) == rec["ImageCount"] + 2, names
    assert store_state(cache)[1] == []
    assert len(store_state(cache)[0]) == len(FAULTS)


def test_kill_9_mid_download_then_remount(ctx):
    s = ctx.server("--big-mb", "8")
    rec = s.get_json("getSeries", Collection="Big-Series")[0]
    s.fault(kind="slow", endpoint="getImage", rate=1000000, times=1)
    cache = ctx.path("cache")
    m = ctx.mount(s, cache_dir=cache)
    lister = subprocess.Popen(["ls", series_dir(m.mountpoint, rec)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    wait_for(lambda: any(f.endswith(".zip") and os.path.getsize(os.path.join(cache, "tmp", f))
                         > 1000000 for f in os.listdir(os.path.join(cache, "tmp"))), 30,
             "the download to be under way")
    m.proc.kill()
    m.proc.wait()
    lister.wait(30)
    subprocess.run(["fusermount3", "-u", "-z", m.mountpoint], capture_output=True)
    m.exit_code = -9
    series, tmp = store_state(cache)
    assert series == [] and tmp, (series, tmp)      # only work in progress, in tmp/
    m2 = ctx.mount(s, cache_dir=cache)
    assert store_state(cache) == ([], [])           # start-up removed the leftovers
    assert "leftovers" in m2.log()
    d = series_dir(m2.mountpoint, rec)
    zf = zip_of(s, rec["SeriesInstanceUID"])
    assert sorted(os.listdir(d)) == sorted(zf.namelist() + ["series.json"])
    assert filecmp.cmp(os.path.join(d, "00000001.dcm"),
                       os.path.join(cache, "series", rec["SeriesInstanceUID"], "00000001.dcm"),
                       shallow=False)
    assert store_state(cache)[0] == [rec["SeriesInstanceUID"]]


def test_eviction_keeps_open_files(ctx):
    s = ctx.server()
    recs = s.get_json("getSeries", Collection="Lung-Phantom-CT")
    sizes = [r["FileSize"] for r in recs]
    # Room for two series but not three.
    cap = sizes[0] + sizes[1] + 4096 + 2000
    cache = ctx.path("cache")
    m = ctx.mount(s, cache_dir=cache, options=["cache_size=%d" % cap])
    first = series_dir(m.mountpoint, recs[0])
    f = open(os.path.join(first, "00000001.dcm"), "rb")      # stays open throughout
    head = f.read(1000)
    for rec in recs[1:4]:
        os.listdir(series_dir(m.mountpoint, rec))
        time.sleep(1.1)    # distinct LRU times
    stored = store_state(cache)[0]
    assert recs[0]["SeriesInstanceUID"] in stored, stored     # open: never evicted
    assert recs[3]["SeriesInstanceUID"] in stored             # just fetched
    assert len(stored) <= 3, stored
    assert "evicted" in m.log()
    f.seek(0)
    assert f.read(1000) == head
    rest = f.read()
    f.close()
    zf = zip_of(s, recs[0]["SeriesInstanceUID"])
    assert head + rest == zf.read("00000001.dcm")
    status = json.load(open(os.path.join(m.mountpoint, ".tciafs", "status")))
    assert status["counters"]["evictions"] >= 1


def test_walk_guard_holds_back_find(ctx):
    s = ctx.server()
    m = ctx.mount(s, options=["walk_budget=3"])
    r = run(["find", m.mountpoint], check=False, timeout=120)
    assert len(fetches(s)) == 3, len(fetches(s))
    assert "walk guard" in m.log()
    status = json.load(open(os.path.join(m.mountpoint, ".tciafs", "status")))
    assert status["counters"]["walk_refusals"] >= 1
    assert status["walk_guard"]["held_back_processes"][0]["command"] == "find"
    # A person's ls, in another process, still gets a series.
    rec = s.get_json("getSeries", Collection="Soft-tissue-Sarcoma")[-1]
    assert "LICENSE" in os.listdir(series_dir(m.mountpoint, rec))


def test_offline_after_a_session(ctx):
    s = ctx.server()
    cache = ctx.path("cache")
    m = ctx.mount(s, cache_dir=cache)
    recs = s.get_json("getSeries", Collection="CT COLONOGRAPHY")
    got = sorted(os.listdir(series_dir(m.mountpoint, recs[0])))
    run(["find", os.path.join(m.mountpoint, "CT COLONOGRAPHY"), "-maxdepth", "3"])
    ctx.unmount(m)
    n = len(s.requests())
    m2 = ctx.mount(s, cache_dir=cache, options=["offline"])
    assert sorted(os.listdir(series_dir(m2.mountpoint, recs[0]))) == got
    with open(os.path.join(series_dir(m2.mountpoint, recs[0]), "00000001.dcm"), "rb") as f:
        assert f.read(132)[128:] == b"DICM"
    t0 = time.monotonic()
    r = run(["ls", series_dir(m2.mountpoint, recs[1])], check=False)
    assert r.returncode != 0 and time.monotonic() - t0 < 2
    assert "offline" in m2.log()
    # Metadata never seen: fails at once too, with EIO.
    r = run(["ls", os.path.join(m2.mountpoint, "Lung-Phantom-CT")], check=False)
    assert r.returncode != 0 and "Input/output error" in r.stderr, r.stderr
    assert len(s.requests()) == n      # not one request


def test_interrupted_wait_returns_eintr(ctx):
    s = ctx.server("--big-mb", "4")
    rec = s.get_json("getSeries", Collection="Big-Series")[0]
    s.fault(kind="slow", endpoint="getImage", rate=1000000, times=1)
    m = ctx.mount(s)
    d = series_dir(m.mountpoint, rec)
    code = ("import os, signal, sys, time\n"
            "class Stop(Exception): pass\n"
            "def h(*a): raise Stop()\n"
            "signal.signal(signal.SIGUSR1, h)\n"
            "t0 = time.monotonic()\n"
            "try:\n"
            "    os.listdir(sys.argv[1])\n"
            "    print('listed')\n"
            "except Stop:\n"
            "    print('interrupted %.2f' % (time.monotonic() - t0))\n")
    p = subprocess.Popen(["/usr/bin/python3", "-c", code, d], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    wait_for(lambda: fetches(s) or
             json.load(open(os.path.join(m.mountpoint, ".tciafs", "status")))["fetches"], 20,
             "the download to start")
    time.sleep(0.5)
    t0 = time.monotonic()
    p.send_signal(signal.SIGUSR1)
    out, err = p.communicate(timeout=20)
    assert out.startswith("interrupted"), (out, err)
    assert time.monotonic() - t0 < 2, time.monotonic() - t0
    status = json.load(open(os.path.join(m.mountpoint, ".tciafs", "status")))
    # The download carried on and completes the cache.
    wait_for(lambda: json.load(open(os.path.join(m.mountpoint, ".tciafs",
                                                 "status")))["counters"]["fetched"] == 1,
             60, "the download to finish")
    assert "LICENSE" in os.listdir(d)
    assert len(fetches(s)) == 1


def test_status_shows_progress(ctx):
    s = ctx.server("--big-mb", "4")
    rec = s.get_json("getSeries", Collection="Big-Series")[0]
    s.fault(kind="slow", endpoint="getImage", rate=1000000, times=1)
    m = ctx.mount(s)
    lister = subprocess.Popen(["ls", series_dir(m.mountpoint, rec)], stdout=subprocess.DEVNULL)
    path = os.path.join(m.mountpoint, ".tciafs", "status")
    seen = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        st = json.load(open(path))
        if st["fetches"] and st["fetches"][0]["bytes_done"] > 0:
            seen = st["fetches"][0]
            break
        time.sleep(0.1)
    assert seen, "no fetch in flight seen"
    assert seen["series"] == rec["SeriesInstanceUID"]
    assert seen["bytes_expected"] == rec["FileSize"]
    assert 0 < seen["bytes_done"] < seen["bytes_expected"] * 1.1
    lister.wait(60)
    st = json.load(open(path))
    assert st["fetches"] == [] and st["counters"]["fetched"] == 1
    assert st["source"] == {"name": "NBIA", "url": s.url.rstrip("/")}, st["source"]
    assert st["store"]["series"] == 1 and st["store"]["bytes"] >= rec["FileSize"]
    # The collections, the patient's studies and series (a targeted look), the zip.
    assert st["requests"]["sent"] >= 4


def test_disk_full_is_enospc(ctx):
    s = ctx.server("--big-mb", "4")
    rec = s.get_json("getSeries", Collection="Big-Series")[0]
    cache = ctx.path("small")
    os.makedirs(cache)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", cache], check=True)
    try:
        m = ctx.mount(s, cache_dir=cache)
        r = run(["ls", series_dir(m.mountpoint, rec)], check=False)
        assert r.returncode != 0 and "No space left on device" in r.stderr, r.stderr
        assert store_state(cache) == ([], [])
        assert "No space left on device" in m.log()
        # Smaller series still fit afterwards.
        small = s.get_json("getSeries", Collection="CT COLONOGRAPHY")[0]
        assert "LICENSE" in os.listdir(series_dir(m.mountpoint, small))
        ctx.unmount(m)
    finally:
        subprocess.run(["umount", "-l", cache], capture_output=True)


def test_open_waits_for_a_series_held_by_another_process(ctx):
    # Another mount sharing the store holds a series exclusively while it evicts or
    # refetches it: an open waits for it (bounded), rather than failing at once.
    import fcntl
    s = ctx.server()
    rec = s.get_json("getSeries", Collection="CT COLONOGRAPHY")[0]
    cache = ctx.path("cache")
    m = ctx.mount(s, cache_dir=cache)
    d = series_dir(m.mountpoint, rec)
    os.listdir(d)
    lock = os.path.join(cache, "locks", rec["SeriesInstanceUID"] + ".lock")
    want = zip_of(s, rec["SeriesInstanceUID"]).read("00000001.dcm")

    def hold(seconds):
        fd = os.open(lock, os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
        threading.Timer(seconds, os.close, (fd,)).start()

    hold(1.0)
    t0 = time.monotonic()
    with open(os.path.join(d, "00000001.dcm"), "rb") as f:
        assert f.read() == want
    assert 0.7 <= time.monotonic() - t0 < 4, time.monotonic() - t0
    # Held for longer than the bound (5 s): the open gives up with EBUSY.
    hold(8.0)
    t0 = time.monotonic()
    try:
        open(os.path.join(d, "00000002.dcm"), "rb").close()
        raise TestFailure("opened a series held exclusively")
    except OSError as e:
        assert e.errno == errno.EBUSY, e
    assert 4.5 <= time.monotonic() - t0 < 7.5, time.monotonic() - t0
