# SPDX-License-Identifier: MIT
# A series from IDC read ahead through a real mount (issue 29): the first open of a file
# not yet stored starts the series' other objects downloading, in name order from that
# file on, many at once; a file someone opens jumps the queue; each object is fetched
# once; readahead_max bounds how far ahead; every byte is checked against the listing's
# MD5 ETag; an unmount stops it; a kill -9 in the middle leaves a cache the next mount
# reads right.

import hashlib
import json
import os
import signal
import subprocess
import threading
import time

from harness import wait_for
from test_fake_idc import list_all
from test_idc_mount import count_key, idc_mount, m_cache, one_series, series_dir, stored


def status(m):
    return json.loads(open(os.path.join(m.mountpoint, ".tciafs", "status")).read())


def quiet(m, timeout=60):
    """Waits until no read-ahead has a fetch in flight."""
    wait_for(lambda: all(a["in_flight"] == 0 for a in status(m)["read_ahead"]), timeout,
             "the read-ahead to settle")


def names(m, row):
    d = series_dir(m, row)
    return d, sorted(n for n in os.listdir(d) if n.endswith(".dcm"))


def fetched(s, row, since):
    """The file names whose objects were asked for since the since-th GET, in order."""
    prefix = row["crdc_series_uuid"] + "/"
    return [r["query"]["key"][len(prefix):] for r in s.requests("object")[since:]
            if r["query"].get("key", "").startswith(prefix)]


def etags(s, row):
    """Each file's ETag as the listing gives it (quotes off)."""
    out = {}
    from test_fake_idc import listing, S3
    token = None
    while True:
        root = listing(s, row["aws_bucket"], row["crdc_series_uuid"] + "/", token)
        for c in root.findall(S3 + "Contents"):
            out[os.path.basename(c.find(S3 + "Key").text)] = c.find(S3 + "ETag").text.strip('"')
        nxt = root.find(S3 + "NextContinuationToken")
        if nxt is None:
            return out
        token = nxt.text


def test_a_series_is_read_ahead_from_the_file_opened(ctx):
    s = ctx.idc_server()
    m = idc_mount(ctx, s)
    row = one_series(s, "instanceCount = 1500")
    d, files = names(m, row)
    o0 = len(s.requests("object"))
    os.stat(os.path.join(d, files[100]))
    assert fetched(s, row, o0) == []          # stat and ls fetch nothing
    with open(os.path.join(d, files[100]), "rb") as f:
        assert f.read(132)[128:] == b"DICM"
    quiet(m)
    got = fetched(s, row, o0)
    # The file opened, then the rest in name order from it on; each once; none before
    # it. (Which went first is not asserted: the fake logs an answer as it is sent,
    # and 17 at once finish in any order on a busy machine.)
    assert sorted(got) == files[100:], (len(got), len(files[100:]))
    assert stored(m, row) == files[100:]
    assert status(m)["counters"]["files_fetched"] == len(got)
    # Reading them costs nothing more; the file before the first opened is fetched when
    # opened (and reads the series ahead from there: nothing left to fetch but it).
    for n in files[100:110]:
        with open(os.path.join(d, n), "rb") as f:
            f.read()
    assert len(fetched(s, row, o0)) == len(got)
    with open(os.path.join(d, files[99]), "rb") as f:
        f.read()
    quiet(m)
    assert fetched(s, row, o0)[len(got):] == [files[99]], fetched(s, row, o0)[len(got):]
    ctx.unmount(m)


def test_openers_of_one_file_share_one_get(ctx):
    s = ctx.idc_server("--object-delay", "0.3")
    m = idc_mount(ctx, s, options=["readahead_max=1"])
    row = one_series(s, "collection_id = 'tcga_luad' AND instanceCount > 2")
    d, files = names(m, row)
    o0 = len(s.requests("object"))
    out, errs = [], []

    def read():
        try:
            with open(os.path.join(d, files[1]), "rb") as f:
                out.append(f.read())
        except OSError as e:
            errs.append(e)
    threads = [threading.Thread(target=read) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errs and len(out) == 6 and len(set(out)) == 1, errs
    assert fetched(s, row, o0) == [files[1]]     # one flight, and no read-ahead
    ctx.unmount(m)


def test_the_read_ahead_window_moves_with_the_reader(ctx):
    s = ctx.idc_server()
    row = one_series(s, "instanceCount = 1500")
    sizes = {os.path.basename(k): n for k, n in list_all(s, row["aws_bucket"],
                                                         row["crdc_series_uuid"] + "/")[0]}
    files = sorted(n for n in sizes if n.endswith(".dcm"))
    window = sum(sizes[n] for n in files[:10])
    m = idc_mount(ctx, s, options=["readahead_max=%d" % window])
    d = series_dir(m, row)
    o0 = len(s.requests("object"))
    with open(os.path.join(d, files[0]), "rb") as f:
        f.read()
    quiet(m)
    assert sorted(fetched(s, row, o0)) == files[:10], fetched(s, row, o0)
    # The reader moves on: the window with it, from the furthest file opened.
    o1 = len(s.requests("object"))
    with open(os.path.join(d, files[5]), "rb") as f:
        f.read()
    quiet(m)
    got = fetched(s, row, o1)
    assert set(files[10:14]) <= set(got) <= set(files[10:16]), got
    o1 = len(s.requests("object"))
    with open(os.path.join(d, files[20]), "rb") as f:
        f.read()
    quiet(m)
    got = fetched(s, row, o1)
    assert set(files[20:29]) <= set(got) <= set(files[20:31]), got
    assert len(got) == len(set(got))
    ctx.unmount(m)


def test_every_file_equals_its_object(ctx):
    s = ctx.idc_server()
    m = idc_mount(ctx, s)
    for where in ("collection_id = 'tcga_luad' AND instanceCount > 2",
                  "instanceCount = 1500"):
        row = one_series(s, where)
        tags = etags(s, row)
        d, files = names(m, row)
        assert set(files) <= set(tags)
        for n in files:
            with open(os.path.join(d, n), "rb") as f:
                assert hashlib.md5(f.read()).hexdigest() == tags[n], n
    ctx.unmount(m)


def test_a_body_whose_md5_disagrees_is_refused(ctx):
    s = ctx.idc_server()
    m = idc_mount(ctx, s, options=["retries=0"])
    row = one_series(s, "collection_id = 'tcga_luad' AND instanceCount > 2")
    d, files = names(m, row)
    s.fault(kind="corrupt", endpoint="object", times=-1)
    first = os.path.join(d, files[0])
    r = subprocess.run(["cat", first], capture_output=True, timeout=60)
    assert r.returncode != 0 and b"Input/output error" in r.stderr, r
    quiet(m)
    line = [ln for ln in m.log().splitlines() if files[0] in ln and "MD5" in ln]
    assert len(line) == 1 and "its ETag says" in line[0], m.log()
    err = os.getxattr(first, "user.tciafs.error").decode()
    assert "MD5" in err, err
    assert stored(m, row) == [] and os.listdir(os.path.join(m_cache(m), "tmp")) == []
    # The fault gone and the failure no longer remembered (3 s), it is stored right.
    s.reset_faults()
    time.sleep(3.2)
    with open(first, "rb") as f:
        assert hashlib.md5(f.read()).hexdigest() == etags(s, row)[files[0]]
    ctx.unmount(m)


def test_an_unmount_stops_the_read_ahead(ctx):
    s = ctx.idc_server("--object-delay", "0.5")
    m = idc_mount(ctx, s)
    row = one_series(s, "instanceCount = 1500")
    d, files = names(m, row)
    with open(os.path.join(d, files[0]), "rb") as f:
        f.read(132)
    assert any(a["in_flight"] > 0 for a in status(m)["read_ahead"])
    t0 = time.monotonic()
    ctx.unmount(m)                      # and the daemon exited, cleanly
    took = time.monotonic() - t0
    assert took < 2, took
    time.sleep(0.7)                     # answers already asked for are logged as sent
    n = len(s.requests("object"))
    time.sleep(1)
    assert len(s.requests("object")) == n        # nothing goes on asking


def test_a_kill_in_the_middle_leaves_a_cache_that_reads_right(ctx):
    s = ctx.idc_server("--object-delay", "0.2")
    cache = ctx.path("cache")
    m = idc_mount(ctx, s, cache_dir=cache)
    row = one_series(s, "instanceCount = 1500")
    d, files = names(m, row)
    with open(os.path.join(d, files[0]), "rb") as f:
        f.read()
    time.sleep(0.5)
    assert any(a["in_flight"] > 0 for a in status(m)["read_ahead"])
    os.kill(m.proc.pid, signal.SIGKILL)
    m.proc.wait(10)
    subprocess.run(["fusermount3", "-u", "-z", m.mountpoint], capture_output=True)
    m.stop()
    tmp = os.path.join(cache, "idc", "tmp")
    assert os.listdir(tmp), "the kill left no fetch half done"
    m = idc_mount(ctx, s, cache_dir=cache, name="mnt-again")
    assert os.listdir(tmp) == []             # what the dead process left is gone
    tags = etags(s, row)
    d, files = names(m, row)
    for n in files[:40] + files[-5:]:
        with open(os.path.join(d, n), "rb") as f:
            assert hashlib.md5(f.read()).hexdigest() == tags[n], n
    ctx.unmount(m)
