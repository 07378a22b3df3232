# SPDX-License-Identifier: MIT
# A big IDC object (slide microscopy) read by range through a real mount (issue 29): a
# read fetches the blocks it falls in, not the object; a sequential reader is read ahead;
# the blocks held survive a remount and serve an offline mount; two mounts sharing a
# cache fetch no block twice; a full disk and a kill -9 leave nothing recorded that is
# not on disk; once every block is held the file is stored whole.

import errno
import hashlib
import json
import os
import signal
import subprocess
import threading
import time
import urllib.request

from harness import TestFailure, wait_for
from test_idc_mount import idc_mount, m_cache, one_series, series_dir

MIB = 1 << 20
BLOCK = 4 * MIB


def status(m):
    return json.loads(open(os.path.join(m.mountpoint, ".tciafs", "status")).read())


def huge(s):
    """The big object's row, folder-relative name, URL and size (listing order)."""
    row = one_series(s, "collection_id = 'huge_slide'")
    return row


def the_file(m, row):
    d = series_dir(m, row)
    names = [n for n in os.listdir(d) if n.endswith(".dcm")]
    assert len(names) == 1, names
    return os.path.join(d, names[0])


def direct(s, row, path, a=None, b=None):
    """The object's bytes a..b-1 (or all of it), straight from the fake's bucket."""
    url = "%s/%s/%s/%s" % (s.base, row["aws_bucket"], row["crdc_series_uuid"],
                           os.path.basename(path))
    req = urllib.request.Request(url)
    if a is not None:
        req.add_header("Range", "bytes=%d-%d" % (a, b - 1))
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read()


def direct_md5(s, row, path):
    url = "%s/%s/%s/%s" % (s.base, row["aws_bucket"], row["crdc_series_uuid"],
                           os.path.basename(path))
    h = hashlib.md5()
    with urllib.request.urlopen(url, timeout=120) as r:
        while True:
            piece = r.read(MIB)
            if not piece:
                return h.hexdigest()
            h.update(piece)


def gets(s, row, since=0):
    """The object GETs of the big object since the since-th: (range, bytes)."""
    prefix = row["crdc_series_uuid"] + "/"
    return [(r["query"].get("range"), r["bytes"]) for r in s.requests("object")[since:]
            if r["query"].get("key", "").startswith(prefix)]


def settled(s):
    """The fake's count of object GETs once no answer is still being logged (a fetch
    cancelled at an unmount is logged when the fake answers it)."""
    last = -1
    while True:
        n = len(s.requests("object"))
        if n == last:
            return n
        last = n
        time.sleep(0.5)


def pread(path, off, n):
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, n, off)
    finally:
        os.close(fd)


def md5_of(path):
    h = hashlib.md5()
    with open(path, "rb") as f:
        while True:
            piece = f.read(MIB)
            if not piece:
                return h.hexdigest()
            h.update(piece)


def blocks_file(m, row, path):
    return os.path.join(m_cache(m), "series", row["SeriesInstanceUID"],
                        os.path.basename(path) + ".blocks")


def recorded(cache_series, name):
    """The block numbers the .blocks file beside name records as held."""
    with open(os.path.join(cache_series, name + ".blocks"), "rb") as f:
        data = f.read()
    assert data[:8] == b"TCIAFSB1", data[:8]
    return [k for k, c in enumerate(data[24:]) if c == 1]


def test_a_read_of_a_big_object_fetches_its_block_not_the_object(ctx):
    s = ctx.idc_server("--huge", "80")
    m = idc_mount(ctx, s)
    row = huge(s)
    path = the_file(m, row)
    size = os.stat(path).st_size
    assert size > 80 * MIB                   # stat: the full size, nothing fetched
    assert gets(s, row) == []
    got = pread(path, 40 * MIB, MIB)
    assert got == direct(s, row, path, 40 * MIB, 41 * MIB)
    moved = gets(s, row)
    assert moved and all(r is not None for r, _ in moved), moved    # ranges only
    assert sum(n for _, n in moved) <= 16 * MIB, moved
    assert ("bytes=%d-%d" % (40 * MIB, 44 * MIB - 1), BLOCK) in moved, moved
    # Read again: from the cache file; while it is open, status shows what it holds.
    n0 = len(s.requests("object"))
    with open(path, "rb") as f:
        f.seek(40 * MIB + 4096)
        assert f.read(8192) == got[4096:4096 + 8192]
        big = status(m)["big_files"]
        assert len(big) == 1 and big[0]["blocks_held"] == 1 and big[0]["open"] == 1, big
        assert big[0]["size"] == size and big[0]["block_size"] == BLOCK, big
        assert big[0]["bytes_held"] == BLOCK and big[0]["blocks"] == (size + BLOCK - 1) // BLOCK
    assert len(s.requests("object")) == n0
    # The DICOM header, at the start, is the fake's too.
    assert pread(path, 128, 4) == b"DICM"
    ctx.unmount(m)


def test_the_whole_object_is_read_ahead_byte_exact_then_stored_whole(ctx):
    s = ctx.idc_server("--huge", "80")
    m = idc_mount(ctx, s)
    row = huge(s)
    path = the_file(m, row)
    size = os.stat(path).st_size
    want = direct_md5(s, row, path)
    n0 = len(s.requests("object"))
    assert md5_of(path) == want
    moved = gets(s, row)[1:]                 # the first is direct_md5's own GET
    ranges = [r for r, _ in moved]
    assert all(r is not None for r in ranges), ranges
    assert len(ranges) == len(set(ranges)) == (size + BLOCK - 1) // BLOCK, ranges
    assert sum(n for _, n in moved) == size
    # Every block held: the .part is the file now, and the record is gone.
    d = os.path.join(m_cache(m), "series", row["SeriesInstanceUID"])
    name = os.path.basename(path)
    wait_for(lambda: os.path.exists(os.path.join(d, name)), 10, "the file stored whole")
    assert not os.path.exists(os.path.join(d, name + ".part"))
    assert not os.path.exists(os.path.join(d, name + ".blocks"))
    assert os.path.getsize(os.path.join(d, name)) == size
    assert "stored whole, by range" in m.log()
    # Opened again: the stored file, nothing asked.
    assert md5_of(path) == want
    assert len(s.requests("object")) == n0 + len(moved)
    ctx.unmount(m)


def test_blocks_held_survive_a_remount_and_serve_an_offline_mount(ctx):
    s = ctx.idc_server("--huge", "80")
    cache = ctx.path("cache")
    m = idc_mount(ctx, s, cache_dir=cache)
    row = huge(s)
    path = the_file(m, row)
    want = direct(s, row, path, 20 * MIB, 21 * MIB)
    assert pread(path, 20 * MIB, MIB) == want
    ctx.unmount(m)
    n0 = settled(s)
    m = idc_mount(ctx, s, cache_dir=cache, name="again")
    path = the_file(m, row)
    assert pread(path, 20 * MIB, MIB) == want
    ctx.unmount(m)
    assert settled(s) == n0, gets(s, row, n0)   # no GET after a remount
    m = idc_mount(ctx, s, cache_dir=cache, name="offline", options=["offline"])
    path = the_file(m, row)
    assert pread(path, 20 * MIB, MIB) == want
    t0 = time.monotonic()
    try:
        pread(path, 60 * MIB, MIB)
        raise TestFailure("a block not held was read offline")
    except OSError as e:
        assert e.errno == errno.EIO, e
    assert time.monotonic() - t0 < 2
    assert len(s.requests("object")) == n0
    assert "offline: series %s" % row["SeriesInstanceUID"] in m.log()
    ctx.unmount(m)


def test_two_mounts_sharing_a_cache_fetch_no_block_twice(ctx):
    s = ctx.idc_server("--huge", "80", "--object-rate", str(40 * MIB))
    cache = ctx.path("cache")
    a = idc_mount(ctx, s, cache_dir=cache, name="a")
    b = idc_mount(ctx, s, cache_dir=cache, name="b")
    row = huge(s)
    pa, pb = the_file(a, row), the_file(b, row)
    want = direct_md5(s, row, pa)
    n0 = len(s.requests("object"))
    out, errs = {}, []

    def read(name, path):
        try:
            out[name] = md5_of(path)
        except OSError as e:
            errs.append(e)
    threads = [threading.Thread(target=read, args=(n, p)) for n, p in (("a", pa), ("b", pb))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errs and out == {"a": want, "b": want}, (errs, out)
    ranges = [r for r, _ in gets(s, row, n0)]
    assert all(r is not None for r in ranges), ranges
    assert len(ranges) == len(set(ranges)), sorted(ranges)   # no block fetched twice
    ctx.unmount(a)
    ctx.unmount(b)


def test_a_kill_while_blocks_are_written_leaves_only_what_is_on_disk(ctx):
    s = ctx.idc_server("--huge", "80", "--object-rate", str(8 * MIB))
    cache = ctx.path("cache")
    m = idc_mount(ctx, s, cache_dir=cache, options=["range_block=1M"])
    row = huge(s)
    path = the_file(m, row)
    name = os.path.basename(path)
    want = direct_md5(s, row, path)
    reader = subprocess.Popen(["md5sum", path], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    wait_for(lambda: any(b["blocks_recorded"] >= 4 for b in status(m)["big_files"]), 60,
             "some blocks recorded")
    os.kill(m.proc.pid, signal.SIGKILL)
    m.proc.wait(10)
    subprocess.run(["fusermount3", "-u", "-z", m.mountpoint], capture_output=True)
    reader.wait(30)
    m.stop()
    d = os.path.join(cache, "idc", "series", row["SeriesInstanceUID"])
    held = recorded(d, name)
    assert held, "nothing recorded before the kill"
    # What is recorded is on disk, byte for byte.
    with open(os.path.join(d, name + ".part"), "rb") as f:
        for k in held:
            f.seek(k * MIB)
            assert f.read(MIB) == direct(s, row, path, k * MIB, (k + 1) * MIB)[:MIB], k
    n0 = len(s.requests("object"))
    m = idc_mount(ctx, s, cache_dir=cache, name="again", options=["range_block=1M"])
    assert md5_of(the_file(m, row)) == want
    ranges = [r for r, _ in gets(s, row, n0)]
    assert not {"bytes=%d-%d" % (k * MIB, (k + 1) * MIB - 1) for k in held} & set(ranges)
    ctx.unmount(m)


def test_a_full_disk_while_writing_blocks(ctx):
    s = ctx.idc_server("--huge", "80")
    cache = ctx.path("cache")
    os.makedirs(cache)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", cache], check=True)
    try:
        m = idc_mount(ctx, s, cache_dir=cache)
        row = huge(s)
        path = the_file(m, row)
        assert pread(path, 0, MIB) == direct(s, row, path, 0, MIB)
        failed = None
        with open(path, "rb") as f:
            try:
                while f.read(MIB):
                    pass
            except OSError as e:
                failed = e
        assert failed is not None and failed.errno in (errno.ENOSPC, errno.EIO), failed
        assert "No space left on device" in m.log(), m.log()[-2000:]
        d = os.path.join(cache, "idc", "series", row["SeriesInstanceUID"])
        name = os.path.basename(path)
        held = recorded(d, name)
        with open(os.path.join(d, name + ".part"), "rb") as f:
            for k in held:
                f.seek(k * BLOCK)
                assert f.read(BLOCK) == direct(s, row, path, k * BLOCK, (k + 1) * BLOCK), k
        # What was read still reads, from the blocks held.
        assert pread(path, 0, MIB) == direct(s, row, path, 0, MIB)
        ctx.unmount(m)
    finally:
        subprocess.run(["umount", "-l", cache], capture_output=True)


def test_prefetch_reads_a_big_object_through_with_file_progress(ctx):
    from test_prefetch import prefetch
    s = ctx.idc_server("--huge", "80")
    m = idc_mount(ctx, s)
    row = huge(s)
    path = the_file(m, row)
    want = direct_md5(s, row, path)
    uids = ctx.path("uids.txt")
    with open(uids, "w") as f:
        f.write(row["SeriesInstanceUID"] + "\n")
    r = prefetch("--uids", uids, m.mountpoint)
    # Not a tty: the summary line counts files as well as series.
    assert "1/1 series, 1/1 files" in r.stderr, r.stderr
    d = os.path.join(m_cache(m), "series", row["SeriesInstanceUID"])
    name = os.path.basename(path)
    wait_for(lambda: os.path.exists(os.path.join(d, name)), 10, "the file stored whole")
    n0 = len(s.requests("object"))
    assert md5_of(path) == want
    assert len(s.requests("object")) == n0
    ctx.unmount(m)


def test_an_object_read_by_range_is_checked_against_its_md5_once_whole(ctx):
    # Objects of 512 KiB with plain MD5 ETags, read by range in blocks of 64 KiB.
    s = ctx.idc_server("--big", "3")
    m = idc_mount(ctx, s, options=["range_min=64K", "range_block=64K", "retries=0"])
    row = one_series(s, "collection_id = 'big_series'")
    d = series_dir(m, row)
    files = sorted(n for n in os.listdir(d) if n.endswith(".dcm"))
    cache = os.path.join(m_cache(m), "series", row["SeriesInstanceUID"])
    # One byte in each range body changed: lengths and Content-Range are right, only
    # the MD5 of the whole can tell.
    s.fault(kind="corrupt", endpoint="object", times=-1)
    first = os.path.join(d, files[0])
    with open(first, "rb") as f:
        while f.read(MIB):
            pass
    wait_for(lambda: "its ETag says" in m.log(), 10, "the MD5 refusal")
    line = [ln for ln in m.log().splitlines() if files[0] in ln and "MD5" in ln]
    assert len(line) == 1 and "refused" in line[0], line
    assert files[0] not in os.listdir(cache)              # nothing stored whole
    assert recorded(cache, files[0]) == []                # and no block kept
    with open(first, "rb") as f:                          # refused for a while
        try:
            f.read(MIB)
            raise TestFailure("a refused object was read")
        except OSError as e:
            assert e.errno == errno.EIO, e
    # The fault gone and the refusal no longer remembered, it is read and stored right.
    s.reset_faults()
    time.sleep(3.2)
    want = direct_md5(s, row, first)
    assert md5_of(first) == want
    wait_for(lambda: files[0] in os.listdir(cache), 10, "the file stored whole")
    with open(os.path.join(cache, files[0]), "rb") as f:
        assert hashlib.md5(f.read()).hexdigest() == want
    ctx.unmount(m)


def test_a_big_object_read_by_range_can_be_mapped(ctx):
    import mmap
    s = ctx.idc_server("--huge", "80")
    m = idc_mount(ctx, s)
    row = huge(s)
    path = the_file(m, row)
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            assert len(mm) == os.stat(path).st_size
            assert mm[12 * MIB:12 * MIB + 65536] == direct(s, row, path, 12 * MIB,
                                                           12 * MIB + 65536)
            assert mm[128:132] == b"DICM"
        finally:
            mm.close()
    assert sum(n for _, n in gets(s, row)) <= 16 * MIB
    ctx.unmount(m)
