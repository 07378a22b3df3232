# SPDX-License-Identifier: MIT
# What a hostile server and unlucky users found (issue 14), each through a real mount:
# forged log lines, credentials in api=, manifests that are not files, UIDs with NULs,
# bidi names, stops during hung downloads, oversized downloads, trickled answers, the
# eviction race, and the reason for a failure where users look (user.tciafs.error).

import io
import json
import os
import random
import signal
import struct
import subprocess
import threading
import time
import zipfile

from harness import ROOT, run, wait_for

from test_fetch import series_dir
from test_views import sanitize

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


def test_help_keeps_each_option_with_its_lines(ctx):
    out = run([os.environ["TCIAFS_BIN"], "--help"]).stdout.splitlines()
    i = next(k for k, l in enumerate(out) if "token_file=FILE" in l)
    assert "username=" in out[i + 1] and "TCIA_USERNAME" in out[i + 2], out[i:i + 3]
    j = next(k for k, l in enumerate(out) if "manifest=FILE" in l)
    assert "/manifests/" in out[j + 1] and "-V, --version" in out[j + 2], out[j:j + 3]


def test_credentials_in_api_are_never_shown(ctx):
    s = ctx.server()
    api = s.url.replace("http://", "http://alice:pw-s3cret@")
    m = ctx.mount(api=api, options=["retries=0"])
    with open(os.path.join(m.mountpoint, "README.txt")) as f:
        readme = f.read()
    with open(os.path.join(m.mountpoint, ".tciafs", "status")) as f:
        status = f.read()
    assert "Soft-tissue-Sarcoma" in os.listdir(m.mountpoint)     # the URL still works
    s.fault(kind="status", status=500, endpoint="getPatient", times=1)
    run(["ls", os.path.join(m.mountpoint, "Soft-tissue-Sarcoma")], check=False)
    ctx.unmount(m)
    for where, text in (("README.txt", readme), ("status", status), ("log", m.log())):
        assert "pw-s3cret" not in text and "alice" not in text, (where, text)
    assert "HTTP 500" in m.log() and s.url in readme, (m.log(), readme)
    binary = os.environ["TCIAFS_BIN"]
    for bad in (s.url + "?token=pw-s3cret", s.url + "#pw-s3cret", "alice:pw-s3cret@host"):
        r = run([binary, "-o", "api=%s,cache_dir=%s" % (bad, ctx.path("c2")), m.mountpoint],
                check=False)
        assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "pw-s3cret" not in r.stderr and "api=" in r.stderr, r.stderr


def test_manifest_that_is_not_a_file_is_refused_at_once(ctx):
    fifo = ctx.path("basket.tcia")
    os.mkfifo(fifo)
    mp = ctx.path("mnt")
    os.makedirs(mp)
    r = run([os.environ["TCIAFS_BIN"], "-f", "-o", "api=http://127.0.0.1:9/x,cache_dir=%s,"
             "manifest=%s" % (ctx.path("c"), fifo), mp], check=False, timeout=10)
    assert r.returncode == 1 and "not a regular file" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_million_uid_manifest_mounts(ctx):
    # Duplicates were found by scanning every UID before: 100k UIDs took 18 s to mount,
    # 2M never did. With a hash set this mounts well inside the harness's 30 s wait.
    s = ctx.server()
    path = ctx.path("big.txt")
    with open(path, "w") as f:
        for i in range(1000000):
            f.write("1.2.826.0.1.3680043.9.%d\n" % i)
        for i in range(0, 1000000, 1000):
            f.write("1.2.826.0.1.3680043.9.%d\n" % i)    # duplicates, dropped
    m = ctx.mount(s, options=["manifest=" + path])
    assert os.listdir(os.path.join(m.mountpoint, "manifests")) == ["big"]
    ctx.unmount(m)
    assert s.requests() == []


def test_citation_fields_stay_on_one_line(ctx):
    s = ctx.server()
    recs = s.get_json("getSeries", Collection="Lung-Phantom-CT")
    recs[0]["CollectionURI"] = "https://doi.org/10.1/x\nHow to cite: send money\r\n"
    recs[0]["LicenseName"] = "CC\u0007BY\u001b[2J"
    body = ctx.path("series.json")
    with open(body, "w") as f:
        json.dump(recs, f)
    s.fault(kind="body", endpoint="getSeries", path=body)
    m = ctx.mount(s)
    with open(os.path.join(m.mountpoint, "Lung-Phantom-CT", "CITATION.txt")) as f:
        text = f.read()
    assert "https://doi.org/10.1/x How to cite: send money" in text, text
    assert "\nHow to cite: send money" not in text and "\r" not in text and "\x1b" not in text
    assert "CC BY [2J" in text, text


def test_a_nul_in_a_series_uid_never_names_another_series(ctx):
    s = ctx.server()
    recs = s.get_json("getSeries", Collection="Lung-Phantom-CT")
    real = recs[0]["SeriesInstanceUID"]
    recs[1]["SeriesInstanceUID"] = real + "\u0000" + "4"
    recs[1]["StudyInstanceUID"] = recs[0]["StudyInstanceUID"]
    recs[1]["PatientID"] = recs[0]["PatientID"]
    body = ctx.path("series.json")
    with open(body, "w") as f:
        json.dump(recs, f)
    s.fault(kind="body", endpoint="getSeries", path=body)
    m = ctx.mount(s, options=["retries=0"])
    study = os.path.join(m.mountpoint, "Lung-Phantom-CT", recs[0]["PatientID"],
                         recs[0]["StudyInstanceUID"])
    names = [n for n in os.listdir(study) if n != "study.json"]
    uids = {n: os.getxattr(os.path.join(study, n), "user.tcia.series_uid").decode()
            for n in names}
    hostile = [n for n, u in uids.items() if u != real]
    assert len(hostile) == 1 and uids[hostile[0]] == real + "\ufffd4", uids
    r = run(["ls", os.path.join(study, hostile[0])], check=False)
    assert r.returncode != 0 and "Input/output error" in r.stderr, r.stderr
    assert "not a DICOM UID" in m.log(), m.log()
    assert [e for e in s.requests("getImage")] == []        # 1.2.3 was never fetched for it


def lying_zip(s, uid, path, extra=8 << 20):
    """The series' own zip with its first DICOM file 8 MB longer than both headers say."""
    status, _, body = s.get("getImage", SeriesInstanceUID=uid)
    src = zipfile.ZipFile(io.BytesIO(body))
    first = next(i for i in src.infolist() if i.filename.endswith(".dcm"))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            data = src.read(info)
            if info is first:
                data = data + b"\0" * extra
            out.writestr(info.filename, data)
    data = buf.getvalue()
    real, told = struct.pack("<I", first.file_size + extra), struct.pack("<I", first.file_size)
    assert data.count(real) == 2, "the size appears once in each header"
    with open(path, "wb") as f:
        f.write(data.replace(real, told))


def test_zip_that_expands_too_far_is_eio_and_a_full_disk_is_not_a_bad_zip(ctx):
    s = ctx.server("--big-mb", "4")
    rec = s.get_json("getSeries", Collection="CT COLONOGRAPHY")[0]
    lying_zip(s, rec["SeriesInstanceUID"], ctx.path("liar.zip"))
    s.fault(kind="zipfile", endpoint="getImage", series=rec["SeriesInstanceUID"],
            path=ctx.path("liar.zip"))
    m = ctx.mount(s, options=["retries=0"])
    r = run(["ls", series_dir(m.mountpoint, rec)], check=False)
    assert r.returncode != 0 and "Input/output error" in r.stderr, r.stderr
    assert "entry longer than declared" in m.log(), m.log()
    ctx.unmount(m)
    # A full disk says so, and does not blame the zip.
    big = s.get_json("getSeries", Collection="Big-Series")[0]
    cache = ctx.path("small")
    os.makedirs(cache)
    # Room for the 4 MB zip but not for its files too: the disk fills while unpacking.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", cache], check=True)
    try:
        m = ctx.mount(s, cache_dir=cache)
        r = run(["ls", series_dir(m.mountpoint, big)], check=False)
        assert r.returncode != 0 and "No space left on device" in r.stderr, r.stderr
        ctx.unmount(m)
    finally:
        subprocess.run(["umount", "-l", cache], capture_output=True)
    lines = [l for l in m.log().splitlines() if "No space left on device" in l]
    assert lines and not any("bad zip" in l for l in lines), m.log()
    assert any("cannot store the series: cannot write" in l for l in lines), m.log()


def test_a_trickled_answer_is_bounded_across_retries(ctx):
    # timeout=1: README promises a metadata answer 10x that in all. The server trickles
    # getSeries at 150 B/s (above the stall limit), so only the overall deadline ends it;
    # before, it restarted with each of the 5 attempts.
    s = ctx.server()
    rec = s.get_json("getSeries", Collection="Soft-tissue-Sarcoma")[0]
    m = ctx.mount(s, options=["timeout=1"])
    patient = os.path.join(m.mountpoint, "Soft-tissue-Sarcoma", rec["PatientID"])
    os.listdir(m.mountpoint)
    # A look at the patient asks for its studies, then its series (trickled).
    s.fault(kind="slow", endpoint="getSeries", rate=150)
    t0 = time.monotonic()
    r = run(["ls", patient], check=False)
    dt = time.monotonic() - t0
    assert r.returncode != 0 and "Connection timed out" in r.stderr, r.stderr
    assert dt < 13, dt
    assert any("getSeries" in l and "failed: " in l and "timed out" in l
               for l in m.log().splitlines()), m.log()


def test_tiny_cache_and_eight_readers_get_no_eio(ctx):
    # cache_size=1K: every download evicts the others. A series fetched for a reader and
    # evicted by the next download before the reader opened it gave EIO with no log
    # line; now this mount's evictions wait for the reader, and a series gone anyway is
    # fetched again.
    s = ctx.server()
    recs = (s.get_json("getSeries", Collection="Soft-tissue-Sarcoma") +
            s.get_json("getSeries", Collection="Lung-Phantom-CT"))[:12]
    m = ctx.mount(s, options=["cache_size=1K", "walk_budget=0", "max_fetches=4"])
    errors, done = [], []

    def reader(k):
        rng = random.Random(k)
        for _ in range(20):
            rec = rng.choice(recs)
            d = series_dir(m.mountpoint, rec)
            try:
                name = sorted(n for n in os.listdir(d) if n.endswith(".dcm"))[0]
                with open(os.path.join(d, name), "rb") as f:
                    assert f.read(132)[128:] == b"DICM"
                done.append(rec["SeriesInstanceUID"])
            except OSError as e:
                errors.append("%s: %s" % (rec["SeriesInstanceUID"], e))

    threads = [threading.Thread(target=reader, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert errors == [], (len(errors), errors[:5])
    assert len(done) == 160


def test_a_stop_during_a_hung_download_exits_at_once(ctx):
    # A download the server never answers (5 tries x 30 s before): SIGTERM, SIGINT or an
    # unmount must end the daemon within 2 s, answer the waiting ls, and leave the store
    # as clean as kill -9 does.
    s = ctx.server()
    recs = s.get_json("getSeries", Collection="CT COLONOGRAPHY")
    s.fault(kind="hang", endpoint="getImage", seconds=600)
    for sig, rec in zip((signal.SIGTERM, signal.SIGINT, None), recs):
        cache = ctx.path("cache-%s" % sig)
        m = ctx.mount(s, cache_dir=cache)
        lister = subprocess.Popen(["ls", series_dir(m.mountpoint, rec)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for(lambda: "downloading" in m.log() or lister.poll() is not None, 30,
                 "the download to start")
        time.sleep(0.5)
        t0 = time.monotonic()
        if sig:
            m.proc.send_signal(sig)
        else:
            # A plain unmount is refused (busy) while ls waits: a lazy one detaches it.
            run(["fusermount3", "-u", "-z", m.mountpoint])
        m.proc.wait(30)
        dt = time.monotonic() - t0
        _, err = lister.communicate(timeout=30)
        assert dt < 2, (sig, dt)
        assert m.proc.returncode == 0, (sig, m.proc.returncode, m.log())
        assert lister.returncode != 0 and err, err
        assert "cancelling downloads and requests in flight" in m.log(), m.log()
        assert os.listdir(os.path.join(cache, "series")) == []
        assert os.listdir(os.path.join(cache, "tmp")) == []
        ctx.unmount(m)


def test_a_stop_with_files_and_folders_held_open_exits_cleanly(ctx):
    # The kernel never releases what a process still holds when the session ends: the
    # daemon frees its handles all the same (under ASan, a leak would make the exit
    # status non-zero), in passthrough and not.
    s = ctx.server()
    rec = s.get_json("getSeries", Collection="CT COLONOGRAPHY")[0]
    for opts in ([], ["passthrough=off"]):
        m = ctx.mount(s, options=opts)
        d = series_dir(m.mountpoint, rec)
        names = sorted(n for n in os.listdir(d) if n.endswith(".dcm"))
        held = [open(os.path.join(d, n), "rb") for n in names[:2]]
        held[0].read(100)
        folder = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        table = open(os.path.join(m.mountpoint, "CT COLONOGRAPHY", "series.csv"), "rb")
        m.proc.send_signal(signal.SIGTERM)
        m.proc.wait(30)
        assert m.proc.returncode == 0, (opts, m.proc.returncode, m.log())
        for f in held + [table]:
            try:
                f.close()
            except OSError:
                pass
        os.close(folder)
        run(["fusermount3", "-u", "-z", m.mountpoint], check=False)
        ctx.unmount(m)


def test_a_download_longer_than_its_metadata_allows_is_cut_off(ctx):
    s = ctx.server()
    recs = s.get_json("getSeries", Collection="CT COLONOGRAPHY")
    # The second series' record says nothing of its size: max_series applies.
    del recs[1]["FileSize"]
    body = ctx.path("series.json")
    with open(body, "w") as f:
        json.dump(recs, f)
    cache = ctx.path("cache")
    m = ctx.mount(s, cache_dir=cache, options=["max_series=4M"])
    os.listdir(os.path.join(m.mountpoint, "CT COLONOGRAPHY"))
    s.fault(kind="body", endpoint="getSeries", path=body)
    s.fault(kind="endless", endpoint="getImage")
    for rec, why in ((recs[0], "more than its metadata allows"),
                     (recs[1], "more than max_series allows")):
        r = run(["ls", series_dir(m.mountpoint, rec)], check=False, timeout=60)
        assert r.returncode != 0 and "Input/output error" in r.stderr, r.stderr
        line = [l for l in m.log().splitlines() if rec["SeriesInstanceUID"] in l and
                "refused: the zip goes on past" in l]
        assert line and why in line[0], m.log()
        limit = int(line[0].split("past ")[1].split()[0])
        assert limit == (rec["FileSize"] * 2 + (16 << 20) if "FileSize" in rec else 4 << 20)
        assert os.listdir(os.path.join(cache, "tmp")) == []
        assert os.listdir(os.path.join(cache, "series")) == []
    # Cut off, not retried: one request per series.
    assert len([e for e in s.requests("getImage")]) == 2, s.requests("getImage")


def test_answers_in_flight_share_one_memory_cap(ctx):
    # Eight listings at once, each answered with a gzip bomb (300 MB of JSON in a few
    # hundred kB): each alone may grow to the 256 MiB cap; together they may not pass
    # 512 MiB. Before, a dozen such listings reached 2.9 GB.
    s = ctx.server()
    colls = [c["Collection"] for c in s.get_json("getCollectionValues")][:4]
    m = ctx.mount(s, options=["retries=0"])
    os.listdir(m.mountpoint)
    s.fault(kind="huge", gzip=True, mb=300)
    paths = [os.path.join(m.mountpoint, sanitize(c)) for c in colls]
    cmds = [["ls", p] for p in paths] + [["cat", os.path.join(p, "collection.json")]
                                         for p in paths]
    procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for c in cmds]
    errs = [p.communicate(timeout=120)[1] for p in procs]
    assert all(p.returncode != 0 for p in procs), errs
    assert all("File too large" in e for e in errs), errs
    # The streamed patient lists stop at their inflation ratio, long before their cap.
    assert "refused as a compression bomb" in m.log(), m.log()[-3000:]
    with open("/proc/%d/status" % m.proc.pid) as f:
        rss = [int(line.split()[1]) for line in f if line.startswith("VmHWM:")][0]
    # ASan keeps freed memory in quarantine (256 MB by default) and shadows what the heap
    # touched: the four patient lists are parsed as they stream (64 MiB each, element by
    # element, outside the in-memory budget), which churns through both. Allow for it
    # there; the plain build keeps the strict bound.
    limit = 1400 if "ASAN_OPTIONS" in os.environ else 700
    assert rss < limit * 1024, rss
    s.reset_faults()
    time.sleep(3.2)
    assert os.listdir(paths[0])          # and the mount serves on


def test_a_bomb_of_records_without_uids_is_refused_in_one_line(ctx):
    # A bulk studies answer of 300 MB in a few hundred kB whose elements all lack
    # StudyInstanceUID (torture seed 99171): each element once had its own warning, 100 MB
    # of log that held readers for 110 s. Now it stops at the inflation ratio, the log
    # says so once, and the collection still lists.
    s = ctx.server()
    coll = s.get_json("getCollectionValues")[0]["Collection"]
    m = ctx.mount(s, options=["retries=0"])
    d = os.path.join(m.mountpoint, sanitize(coll))
    os.listdir(d)
    s.fault(kind="huge", gzip=True, mb=300, endpoint="getPatientStudy")
    r = run(["cat", os.path.join(d, "studies.csv")], check=False, timeout=60)
    assert r.returncode != 0 and "File too large" in r.stderr, r.stderr
    log = m.log()
    assert log.count("failed: refused as a compression bomb") == 1, log[-3000:]
    assert log.count("left out") <= 1, log[-3000:]
    assert len(log) < 64 * 1024, len(log)
    s.reset_faults()
    assert os.listdir(d)


def error_xattr(path):
    r = run(["getfattr", "--only-values", "-n", "user.tciafs.error", path], check=False)
    return r.stdout if r.returncode == 0 else None


def test_why_a_folder_failed_is_readable_where_users_look(ctx):
    s = ctx.server()
    recs = s.get_json("getSeries", Collection="Soft-tissue-Sarcoma")
    m = ctx.mount(s, options=["retries=0", "walk_budget=1"])
    # A refused zip: the folder says which entry and why, in the log line's words.
    rec = recs[0]
    d = series_dir(m.mountpoint, rec)
    assert error_xattr(d) is None
    s.fault(kind="zipfile", endpoint="getImage", series=rec["SeriesInstanceUID"],
            path=os.path.join(HOSTILE, "bad-dotdot.zip"))
    r = run(["ls", d], check=False)
    assert r.returncode != 0
    why = error_xattr(d)
    assert why and "Input/output error" in why and "refusing entry name" in why, why
    assert "../evil.dcm" in why and rec["SeriesInstanceUID"] in why, why
    logged = [l for l in m.log().splitlines() if "refusing entry name" in l][0]
    assert logged.split("error: ", 1)[1] in why, (logged, why)
    assert "user.tciafs.error" in run(["getfattr", "-d", d]).stdout
    # The same series reached by UID says the same.
    byuid = os.path.join(m.mountpoint, ".tciafs", "series", rec["SeriesInstanceUID"])
    assert "refusing entry name" in (error_xattr(byuid) or ""), error_xattr(byuid)
    # A metadata load that failed: on the collection's folder.
    coll = os.path.join(m.mountpoint, "Lung-Phantom-CT")
    s.fault(kind="status", status=503, endpoint="getPatient", times=1)
    assert run(["ls", coll], check=False).returncode != 0
    why = error_xattr(coll)
    assert why and "HTTP 503" in why, why
    # The walk guard: the second download of this ls is held back, and says so.
    rec2, rec3 = recs[1], recs[2]
    run(["sh", "-c", 'ls "$0" "$1"', series_dir(m.mountpoint, rec2),
         series_dir(m.mountpoint, rec3)], check=False)
    held = [error_xattr(series_dir(m.mountpoint, r)) for r in (rec2, rec3)]
    assert any(h and "walk guard" in h and "temporarily unavailable" in h for h in held), held
    # .tciafs/status lists the last failures, newest first.
    with open(os.path.join(m.mountpoint, ".tciafs", "status")) as f:
        st = json.load(f)
    reasons = [x["reason"] for x in st["failures"]]
    assert any("walk guard" in r for r in reasons), st["failures"]
    assert any("HTTP 503" in r for r in reasons) and any("refusing entry" in r for r in reasons)
    first = next(x for x in st["failures"] if "refusing entry" in x["reason"])
    assert first["series"] == rec["SeriesInstanceUID"] and first["error"] == "Input/output error"
    assert first["path"].endswith(rec["SeriesInstanceUID"]) and first["time"].endswith("Z")
