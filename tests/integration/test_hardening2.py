# SPDX-License-Identifier: MIT
# What the second hardening round found (issue 32), each through a real mount: a
# download's cap tightens the moment its record arrives (an open by UID starts the
# download first), and a record without FileSize is capped by the series' size.

import json
import os
import threading
import time

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
    assert os.listdir(os.path.join(cache, "tmp")) == []
    assert os.listdir(os.path.join(cache, "series")) == []
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
