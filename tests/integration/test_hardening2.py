# SPDX-License-Identifier: MIT
# What the second hardening round found (issue 32), each through a real mount: a
# download's cap tightens the moment its record arrives (an open by UID starts the
# download first), and a record without FileSize is capped by the series' size; and
# -o verify=md5 checks every file against NBIA's md5hashes.csv.

import glob
import hashlib
import io
import json
import os
import threading
import time
import zipfile

from harness import run

from test_fetch import series_dir
from test_prefetch import prefetch

MIB = 1 << 20


class TmpWatch:
    """The most bytes seen in a cache's tmp/ at once, looked at every few ms."""

    def __init__(self, cache):
        self.tmp = os.path.join(cache, "tmp")
        self.peak = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _size(self):
        total = 0
        for root, _, files in os.walk(self.tmp):
            for n in files:
                try:
                    total += os.lstat(os.path.join(root, n)).st_size
                except OSError:
                    pass
        return total

    def _run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, self._size())
            time.sleep(0.002)

    def done(self):
        self.stop.set()
        self.thread.join()
        return max(self.peak, self._size())


def test_an_endless_zip_opened_by_uid_stops_at_its_records_cap(ctx):
    # A record saying FileSize 300 and a zip without end, fetched by UID (the download
    # starts before the record arrives): before, the record's cap was applied only once
    # the download ended, and max_series (here 256M, by default 64G) was the only bound.
    s = ctx.server()
    rec = dict(s.get_json("getSeries", Collection="CT COLONOGRAPHY")[0], FileSize=300)
    body = ctx.path("series.json")
    with open(body, "w") as f:
        json.dump([rec], f)
    cache = ctx.path("cache")
    m = ctx.mount(s, cache_dir=cache, options=["max_series=256M", "retries=0"])
    s.fault(kind="body", endpoint="getSeries", path=body)
    s.fault(kind="endless", endpoint="getImage")
    uids = ctx.path("uids.txt")
    with open(uids, "w") as f:
        f.write(rec["SeriesInstanceUID"] + "\n")
    watch = TmpWatch(cache)
    r = prefetch("--uids", uids, m.mountpoint, check=False)
    peak = watch.done()
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert peak <= 16 * MIB + 600, peak
    assert "more than its metadata allows" in r.stderr, r.stderr    # prefetch says why
    line = [ln for ln in m.log().splitlines() if "refused: the zip goes on past" in ln]
    assert line and "past %d bytes" % (16 * MIB + 600) in line[0], m.log()
    # Opened again at once: the failure a moment ago answers, no second download
    # (before, an open by UID started one whenever the last had ended, failed or not).
    r = run(["ls", os.path.join(m.mountpoint, ".tciafs", "series", rec["SeriesInstanceUID"])],
            check=False, timeout=60)
    assert r.returncode != 0 and "more than its metadata allows" in \
        os.getxattr(os.path.join(m.mountpoint, ".tciafs", "series"),
                    "user.tciafs.error").decode(), r
    assert len(s.requests("getImage")) == 1, s.requests("getImage")
    assert os.listdir(os.path.join(cache, "tmp")) == []
    assert os.listdir(os.path.join(cache, "series")) == []
    ctx.unmount(m)


def test_a_cap_above_the_slack_holds_when_the_record_comes_late(ctx):
    # A record allowing more than the 16 MiB a download may write before it comes
    # (FileSize 1 MB: 18 MiB) and arriving after those 16 MiB: before, the pending cap
    # was max_series, so the download went on unchecked until the record came (25 MB
    # in tmp/ from the torture campaign's first run); now it waits at 16 MiB.
    s = ctx.server("--series-size-delay", "0")
    rec = dict(s.get_json("getSeries", Collection="CT COLONOGRAPHY")[0], FileSize=1 << 20)
    body = ctx.path("series.json")
    with open(body, "w") as f:
        json.dump([rec], f)
    cache = ctx.path("cache")
    m = ctx.mount(s, cache_dir=cache, options=["max_series=1G", "retries=0"])
    s.fault(kind="body", endpoint="getSeries", path=body, seconds=1.5)
    s.fault(kind="endless", endpoint="getImage")
    watch = TmpWatch(cache)
    r = run(["ls", os.path.join(m.mountpoint, ".tciafs", "series", rec["SeriesInstanceUID"])],
            check=False, timeout=60)
    peak = watch.done()
    assert r.returncode != 0, r
    assert peak <= 16 * MIB + 2 * (1 << 20), peak
    assert "refused: the zip goes on past %d bytes" % (16 * MIB + 2 * (1 << 20)) in m.log(), \
        m.log()
    assert os.listdir(os.path.join(cache, "tmp")) == []
    ctx.unmount(m)


def test_a_record_without_filesize_is_capped_by_the_series_size(ctx):
    # Before, only max_series (here 256M) bounded it; the series' size from
    # getSeriesSize, asked once beside the download, gives a cap of its own.
    s = ctx.server("--series-size-delay", "0")
    recs = s.get_json("getSeries", Collection="CT COLONOGRAPHY")
    rec = dict(recs[0])
    del rec["FileSize"]
    size = int(float(s.get_json("getSeriesSize",
                                SeriesInstanceUID=rec["SeriesInstanceUID"])[0]["TotalSizeInBytes"]))
    body = ctx.path("series.json")
    with open(body, "w") as f:
        json.dump([rec] + recs[1:], f)
    cache = ctx.path("cache")
    m = ctx.mount(s, cache_dir=cache, options=["max_series=256M", "retries=0"])
    os.listdir(os.path.join(m.mountpoint, "CT COLONOGRAPHY"))
    s.fault(kind="body", endpoint="getSeries", path=body)
    n0 = len(s.requests("getSeriesSize"))
    s.fault(kind="endless", endpoint="getImage")
    watch = TmpWatch(cache)
    r = run(["ls", series_dir(m.mountpoint, rec)], check=False, timeout=60)
    peak = watch.done()
    assert r.returncode != 0 and "Input/output error" in r.stderr, r.stderr
    line = [ln for ln in m.log().splitlines() if "refused: the zip goes on past" in ln]
    assert line and "its size allows" in line[0], m.log()
    assert "past %d bytes" % (size * 2 + 16 * MIB) in line[0], (line, size)
    assert peak < 256 * MIB, peak
    assert len(s.requests("getSeriesSize")) - n0 == 1       # asked once
    assert os.listdir(os.path.join(cache, "tmp")) == []
    ctx.unmount(m)


def test_a_failure_is_recorded_once_and_with_its_reason(ctx):
    # A series record whose files' place would leave the bucket: before, the folder's
    # failure was recorded twice, the second time as "Invalid argument" with no reason
    # and no series.
    from test_idc_mount import corpus, idc_mount
    s = ctx.idc_server()
    s.fault(kind="body", endpoint="sql", path=corpus("sql-series-where-bucket.json"),
            times=-1)
    m = idc_mount(ctx, s, options=["retries=0"])
    d = os.path.join(m.mountpoint, ".tciafs", "series", "1.2.3.4.5")
    r = run(["ls", d], check=False, timeout=60)
    assert r.returncode != 0, r
    status = json.load(open(os.path.join(m.mountpoint, ".tciafs", "status")))
    fails = status["failures"]
    assert fails, status
    assert all(f["reason"] for f in fails), fails
    assert len(fails) == 1, fails
    assert fails[0]["series"] == "1.2.3.4.5", fails
    assert "where its files are" in fails[0]["reason"], fails
    assert "no usable place for its files" in m.log()
    ctx.unmount(m)


def test_a_download_that_cannot_fit_under_cache_size_is_enospc(ctx):
    # Before, bytes in tmp/ were not counted: a 40 MB series was downloaded whole into a
    # 24 MB cache (and stored past its cap). Now the download is held to cache_size as
    # it goes (every 16 MiB) and, nothing being evictable, refused with its reason.
    s = ctx.server("--big-mb", "40")
    rec = s.get_json("getSeries", Collection="Big-Series")[0]
    cache = ctx.path("cache")
    m = ctx.mount(s, cache_dir=cache, options=["cache_size=24M", "retries=0"])
    watch = TmpWatch(cache)
    r = run(["ls", series_dir(m.mountpoint, rec)], check=False, timeout=60)
    peak = watch.done()
    assert r.returncode != 0 and "No space left on device" in r.stderr, r.stderr
    assert "no room: with it the cache would pass cache_size" in m.log(), m.log()
    assert peak <= 24 * MIB + 16 * MIB, peak
    assert os.listdir(os.path.join(cache, "tmp")) == []
    assert os.listdir(os.path.join(cache, "series")) == []
    err = os.getxattr(os.path.dirname(series_dir(m.mountpoint, rec)), "user.tciafs.error")
    assert b"no room" in err, err
    ctx.unmount(m)


def test_a_download_evicts_before_it_passes_cache_size(ctx):
    # A 40 MB series stored, then a 41 MB one fetched into a 60 MB cache: the first is
    # evicted while the second downloads, not after it is stored.
    s1 = ctx.server("--big-mb", "40")
    s2 = ctx.server("--big-mb", "41")
    rec1 = s1.get_json("getSeries", Collection="Big-Series")[0]
    rec2 = s2.get_json("getSeries", Collection="Big-Series")[0]
    assert rec1["SeriesInstanceUID"] != rec2["SeriesInstanceUID"]
    cache = ctx.path("cache")
    m = ctx.mount(s1, cache_dir=cache)
    os.listdir(series_dir(m.mountpoint, rec1))
    ctx.unmount(m)
    m = ctx.mount(s2, cache_dir=cache, options=["cache_size=60M", "meta_ttl=0"], name="second")
    # By UID: the catalog kept under the cache is the first server's.
    names = os.listdir(os.path.join(m.mountpoint, ".tciafs", "series",
                                    rec2["SeriesInstanceUID"]))
    assert len(names) > 10, names
    log = m.log().splitlines()
    evicted = [i for i, ln in enumerate(log) if "evicted series %s" % rec1["SeriesInstanceUID"] in ln]
    stored = [i for i, ln in enumerate(log) if "series %s: stored" % rec2["SeriesInstanceUID"] in ln]
    assert evicted and stored and evicted[0] < stored[0], m.log()
    assert os.listdir(os.path.join(cache, "series")) == [rec2["SeriesInstanceUID"]]
    ctx.unmount(m)


def md5_zip(s, uid):
    status, _, body = s.get("getImageWithMD5Hash", SeriesInstanceUID=uid)
    assert status == 200
    return zipfile.ZipFile(io.BytesIO(body))


def rewrite_zip(ctx, src, name, change_file=None, change_list=None):
    """src again, one file's bytes or its md5hashes.csv changed; a well-formed zip (its CRCs
    match what it holds), so only the MD5s can tell."""
    path = ctx.path(name)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "md5hashes.csv" and change_list:
                data = change_list(data.decode()).encode()
            elif change_file and info.filename == change_file:
                data = data[:-1] + bytes([data[-1] ^ 1])
            # A new ZipInfo: writing one sets its offset, which src still reads by.
            out.writestr(zipfile.ZipInfo(info.filename, info.date_time), data,
                         zipfile.ZIP_DEFLATED)
    return path


def test_verify_md5_stores_the_same_names_and_bytes(ctx):
    s = ctx.server("--series-size-delay", "0")
    rec = s.get_json("getSeries", Collection="Lung-Phantom-CT")[0]
    plain = ctx.mount(s, cache_dir=ctx.path("c1"), name="plain")
    checked = ctx.mount(s, cache_dir=ctx.path("c2"), options=["verify=md5"], name="checked")
    n0 = len(s.requests("getImageWithMD5Hash"))
    a = sorted(os.listdir(series_dir(plain.mountpoint, rec)))
    b = sorted(os.listdir(series_dir(checked.mountpoint, rec)))
    assert a == b, (a, b)                       # the option changes no name
    assert "md5hashes.csv" not in b and len([n for n in b if n.endswith(".dcm")]) == \
        rec["ImageCount"], b
    for n in a:
        if n.endswith(".dcm"):
            with open(os.path.join(series_dir(plain.mountpoint, rec), n), "rb") as f1, \
                    open(os.path.join(series_dir(checked.mountpoint, rec), n), "rb") as f2:
                assert f1.read() == f2.read(), n
    assert len(s.requests("getImageWithMD5Hash")) - n0 == 1
    st = json.load(open(os.path.join(checked.mountpoint, ".tciafs", "status")))
    assert st["store"]["verify"] == "md5", st["store"]
    assert st["counters"]["files_verified"] == rec["ImageCount"], st["counters"]
    st = json.load(open(os.path.join(plain.mountpoint, ".tciafs", "status")))
    assert st["store"]["verify"] == "none" and st["counters"]["files_verified"] == 0
    ctx.unmount(checked)
    ctx.unmount(plain)


def refused(ctx, s, rec, zpath, want):
    """The series served as zpath under verify=md5: refused with want in its reason, and
    the cache left as it was."""
    cache = ctx.path("cache-" + os.path.basename(zpath))
    m = ctx.mount(s, cache_dir=cache, options=["verify=md5", "retries=0"],
                  name="m-" + os.path.basename(zpath))
    s.fault(kind="zipfile", endpoint="getImageWithMD5Hash",
            series=rec["SeriesInstanceUID"], path=zpath)
    r = run(["ls", series_dir(m.mountpoint, rec)], check=False, timeout=60)
    assert r.returncode != 0 and "Input/output error" in r.stderr, r
    assert want in m.log(), m.log()
    err = os.getxattr(os.path.dirname(series_dir(m.mountpoint, rec)), "user.tciafs.error")
    assert want.encode() in err, err
    assert os.listdir(os.path.join(cache, "tmp")) == []
    assert os.listdir(os.path.join(cache, "series")) == []
    st = json.load(open(os.path.join(m.mountpoint, ".tciafs", "status")))
    assert st["counters"]["files_verified"] == 0, st["counters"]
    ctx.unmount(m)
    s.reset_faults()


def test_verify_md5_refuses_a_file_that_disagrees(ctx):
    s = ctx.server("--series-size-delay", "0")
    rec = s.get_json("getSeries", Collection="Lung-Phantom-CT")[0]
    src = md5_zip(s, rec["SeriesInstanceUID"])
    victim = sorted(n for n in src.namelist() if n.endswith(".dcm"))[1]
    # One bit of one file changed, its CRC made to match: only its MD5 can tell.
    refused(ctx, s, rec, rewrite_zip(ctx, src, "flipped.zip", change_file=victim),
            "a file disagrees with its MD5: " + victim)
    # A file the list leaves out, and a list that names a file twice.
    refused(ctx, s, rec, rewrite_zip(ctx, src, "missing.zip", change_list=lambda t: "\n".join(
        ln for ln in t.splitlines() if not ln.startswith(victim + ","))),
        "gives no MD5 for " + victim)
    refused(ctx, s, rec, rewrite_zip(ctx, src, "twice.zip", change_list=lambda t: t + t.splitlines()[1] + "\n"),
            "twice")
    # No list at all (getImage's zip where getImageWithMD5Hash was asked).
    status, _, body = s.get("getImage", SeriesInstanceUID=rec["SeriesInstanceUID"])
    nolist = ctx.path("nolist.zip")
    with open(nolist, "wb") as f:
        f.write(body)
    refused(ctx, s, rec, nolist, "no md5hashes.csv to check its files against")
    # The fake's own zip is right: stored, every file checked.
    m = ctx.mount(s, cache_dir=ctx.path("c-good"), options=["verify=md5"], name="good")
    names = os.listdir(series_dir(m.mountpoint, rec))
    want = {n: hashlib.md5(src.read(n)).hexdigest() for n in src.namelist()
            if n.endswith(".dcm")}
    for n in names:
        if n in want:
            with open(os.path.join(series_dir(m.mountpoint, rec), n), "rb") as f:
                assert hashlib.md5(f.read()).hexdigest() == want.pop(n)
    assert want == {}, want
    ctx.unmount(m)


def test_a_cache_inside_the_mountpoint_is_refused(ctx):
    # Before, the daemon went on to read its cache through its own mount and hung in D
    # state, with the mount, for good (a bench run once did it).
    s = ctx.server()
    mp = ctx.path("mp")
    os.makedirs(mp)
    for cache in (mp, os.path.join(mp, "cache")):
        r = run([ctx.binary, "-f", "-o", "api=%s,cache_dir=%s" % (s.url, cache), mp],
                check=False, timeout=20)
        assert r.returncode != 0 and "is inside the mountpoint" in r.stderr, r
        assert not os.path.ismount(mp)


def listing(path):
    """A folder's names, or the errno that listing it gave."""
    try:
        return sorted(os.listdir(path))
    except OSError as e:
        return e.errno


def test_a_catalog_damaged_in_use_is_set_aside_at_once(ctx):
    # Before, a mount that met a damaged page went on with the damaged catalog: every
    # folder whose rows were on a damaged page failed (EIO) until the next mount.
    import sqlite3
    from test_catalog import catalog_file
    s = ctx.server("--scale", "30", "--series-size-delay", "0")
    coll = "Scale-Test"
    ref = ctx.mount(s, cache_dir=ctx.path("ref-cache"), name="ref")
    cache = ctx.path("cache")
    m = ctx.mount(s, cache_dir=cache, options=["walk_budget=0"])
    patients = [p for p in os.listdir(os.path.join(m.mountpoint, coll))
                if p.startswith("SCALE-")]
    assert len(patients) == 30, patients
    want = {p: listing(os.path.join(ref.mountpoint, coll, p)) for p in patients}
    for p in patients[:15]:             # the collection is loaded in bulk on the way
        assert listing(os.path.join(m.mountpoint, coll, p)) == want[p]
    path = catalog_file(cache)
    for _ in range(50):                 # everything in the file itself, not in its log
        db = sqlite3.connect(path, timeout=5)
        busy = db.execute("pragma wal_checkpoint(truncate)").fetchone()[0]
        db.close()
        if busy == 0:
            break
        time.sleep(0.1)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:        # every page but the first
        f.seek(16384)
        f.write(b"\xa5" * (size - 16384))
    errors = 0
    for p in patients[15:]:
        for attempt in range(3):
            got = listing(os.path.join(m.mountpoint, coll, p))
            if got == want[p]:
                break
            # Complete and right, or an error: never short.
            assert isinstance(got, int), (p, got, want[p])
            errors += 1
        assert got == want[p], (p, got, m.log())
    log = m.log()
    assert log.count("found damaged while in use; moved aside") == 1, log
    assert errors <= 1, (errors, log)
    assert glob.glob(path + ".broken-*"), os.listdir(cache)
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    assert db.execute("pragma quick_check").fetchone()[0] == "ok"
    db.close()
    ctx.unmount(m)
    ctx.unmount(ref)
