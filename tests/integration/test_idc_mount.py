# SPDX-License-Identifier: MIT
# A real mount of the fake IDC (-o source=idc, issue 15): the tree browses with IDC's
# names and the seed's attributes; a look at a patient, a series listing and a file each
# cost what IDC's layout allows (one query; listings, no download; one object GET); the
# files are real DICOM; lies, endless objects, hostile answers and 503 storms give an
# errno and a log line, and leave the cache as it was.

import contextlib
import glob
import json
import os
import sqlite3
import subprocess
import time

import pydicom

from harness import run, wait_for
from test_fake_idc import http, list_all, rows

HOSTILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hostile", "idc")


def corpus(name):
    return os.path.abspath(os.path.join(HOSTILE, name))


def idc_mount(ctx, s, options=(), **kw):
    return ctx.mount(api=s.url, options=["source=idc", "idc_api=" + s.url,
                                         "idc_files=" + s.base + "/{bucket}"] + list(options),
                     **kw)


def one_series(s, where):
    return rows(s, 'SELECT * FROM "index" WHERE %s ORDER BY SeriesInstanceUID LIMIT 1'
                % where)[0]


def series_dir(m, row):
    return os.path.join(m.mountpoint, ".tciafs", "series", row["SeriesInstanceUID"])


def count(s, endpoint, since):
    return len(s.requests(endpoint)) - since


def count_key(s, key, since):
    """The object GETs of one key since the since-th."""
    return sum(1 for r in s.requests("object")[since:] if r["query"].get("key") == key)


def stored(m, row):
    """The files of the series in the mount's store (its cache is cache_dir/idc)."""
    d = os.path.join(m_cache(m), "series", row["SeriesInstanceUID"])
    return sorted(n for n in os.listdir(d) if not n.startswith(".")) if os.path.isdir(d) else []


def m_cache(m):
    status = json.loads(open(os.path.join(m.mountpoint, ".tciafs", "status")).read())
    return status["store"]["dir"]


def test_the_tree_browses_with_idc_names(ctx):
    s = ctx.idc_server()
    m = idc_mount(ctx, s)
    top = sorted(os.listdir(m.mountpoint))
    # Folders by collection_name, the name users know; the id in the JSON and xattrs.
    assert top == ["CPTAC-CCRCC", "NLST", "README.txt", "TCGA-LUAD"], top
    status = json.load(open(os.path.join(m.mountpoint, ".tciafs", "status")))
    assert status["source"] == {"name": "IDC", "url": s.url}, status["source"]
    coll = os.path.join(m.mountpoint, "TCGA-LUAD")
    info = json.load(open(os.path.join(coll, "collection.json")))
    assert info["Collection"] == "tcga_luad", info
    want = sorted({r["Modality"] for r in rows(
        s, "SELECT Modality FROM \"index\" WHERE collection_id = 'tcga_luad'")})
    assert info["Modality"] == want, info
    assert os.getxattr(coll, "user.tcia.collection") == b"tcga_luad"
    # The patient whose ID holds a quote and "--" is a folder like any other.
    assert "QA-O'NEIL--01" in os.listdir(coll)
    row = one_series(s, "PatientID = 'QA-O''NEIL--01'")
    pdir = os.path.join(coll, "QA-O'NEIL--01")
    (study,) = [n for n in os.listdir(pdir) if n != "patient.json"]
    sers = [n for n in os.listdir(os.path.join(pdir, study)) if n != "study.json"]
    assert sers, sers
    # series.json: the seed's names where IDC has them, and the row as IDC sent it.
    for name in sers:
        sj = json.load(open(os.path.join(pdir, study, name, "series.json")))
        assert sj["PatientID"] == "QA-O'NEIL--01" and sj["Collection"] == "tcga_luad", sj
        assert sj["idc"]["crdc_series_uuid"] and "ImageCount" in sj, sj
    assert any(json.load(open(os.path.join(pdir, study, n, "series.json")))
               ["SeriesInstanceUID"] == row["SeriesInstanceUID"] for n in sers)
    pj = json.load(open(os.path.join(pdir, "patient.json")))
    assert pj["PatientId"] == "QA-O'NEIL--01", pj     # getPatient's name for it
    # The tables and facet folders are the same queries as for NBIA.
    with open(os.path.join(coll, "series.csv")) as f:
        lines = f.read().splitlines()
    n = rows(s, "SELECT count(*) AS n FROM \"index\" WHERE collection_id = 'tcga_luad'")[0]["n"]
    assert len(lines) == n + 1, lines[:3]
    assert os.listdir(os.path.join(coll, ".by-modality", "CT"))
    ctx.unmount(m)


def test_a_first_look_at_a_patient_costs_one_query(ctx):
    s = ctx.idc_server()
    m = idc_mount(ctx, s)
    coll = os.path.join(m.mountpoint, "TCGA-LUAD")
    os.listdir(coll)
    n0, all0 = len(s.requests("sql")), len(s.requests())
    pdir = os.path.join(coll, "TCGA-05-4244")
    for study in os.listdir(pdir):
        if study != "patient.json":
            os.listdir(os.path.join(pdir, study))
    got = len(s.requests()) - all0
    assert got == 1 and len(s.requests("sql")) - n0 == 1, s.requests()[all0:]
    # The studies derived from that one answer are what the grouped query of a bulk
    # load sends: the same study.json either way.
    targeted = {st: open(os.path.join(pdir, st, "study.json")).read()
                for st in os.listdir(pdir) if st != "patient.json"}
    ctx.unmount(m)
    m = idc_mount(ctx, s, name="mnt-bulk")
    coll = os.path.join(m.mountpoint, "TCGA-LUAD")
    open(os.path.join(coll, "studies.csv")).read()          # a bulk load of the collection
    pdir = os.path.join(coll, "TCGA-05-4244")
    bulk = {st: open(os.path.join(pdir, st, "study.json")).read()
            for st in os.listdir(pdir) if st != "patient.json"}
    assert bulk == targeted and bulk, (bulk, targeted)
    assert '"SeriesCount": 2' in "".join(bulk.values()), bulk
    ctx.unmount(m)


def test_a_series_of_1500_files_lists_without_a_download(ctx):
    s = ctx.idc_server()
    m = idc_mount(ctx, s)
    row = one_series(s, "instanceCount = 1500")
    objs, pages = list_all(s, row["aws_bucket"], row["crdc_series_uuid"] + "/")
    assert pages == 2
    d = series_dir(m, row)
    l0, o0 = len(s.requests("list")), len(s.requests("object"))
    r = run(["ls", "-l", d])
    names = {os.path.basename(k): size for k, size in objs if k.endswith(".dcm")}
    listed = {n: os.stat(os.path.join(d, n)).st_size for n in os.listdir(d)
              if n.endswith(".dcm")}
    assert listed == names and len(listed) == 1500, (len(listed), r.stdout[:300])
    assert count(s, "list", l0) == 2 and count(s, "object", o0) == 0
    assert stored(m, row) == [], stored(m, row)
    ctx.unmount(m)


def test_reading_a_file_fetches_that_object_alone(ctx):
    # With no read-ahead (readahead_max of one byte: nothing past the file opened);
    # test_idc_ahead has the read-ahead itself.
    s = ctx.idc_server()
    m = idc_mount(ctx, s, options=["readahead_max=1"])
    row = one_series(s, "collection_id = 'tcga_luad' AND instanceCount > 2")
    d = series_dir(m, row)
    files = sorted(n for n in os.listdir(d) if n.endswith(".dcm"))
    o0 = len(s.requests("object"))
    with open(os.path.join(d, files[0]), "rb") as f:
        data = f.read()
    assert count(s, "object", o0) == 1
    (obj,) = s.requests("object")[o0:]
    assert obj["query"]["key"] == "%s/%s" % (row["crdc_series_uuid"], files[0]), obj
    assert stored(m, row) == [files[0]]
    ds = pydicom.dcmread(os.path.join(d, files[0]))
    assert ds.SeriesInstanceUID == row["SeriesInstanceUID"] and len(data) > 132
    # Read again, and by another tool: from the store, no request.
    run(["dcmdump", os.path.join(d, files[0])])
    assert count(s, "object", o0) == 1
    # The whole series reads as DICOM: dcm2niix takes the folder.
    out = ctx.path("nii")
    os.makedirs(out)
    r = run(["dcm2niix", "-o", out, "-f", "s", d], check=False)
    assert r.returncode == 0 and any(n.endswith(".nii") for n in os.listdir(out)), r.stdout
    assert count(s, "object", o0) == len(files)
    ctx.unmount(m)


def test_strays_and_revised_folders_are_not_shown(ctx):
    s = ctx.idc_server()
    m = idc_mount(ctx, s)
    for r in rows(s, 'SELECT * FROM "index"'):
        keys, _ = list_all(s, r["aws_bucket"], r["crdc_series_uuid"] + "/")
        if any(not k.endswith(".dcm") for k, _ in keys):
            break
    else:
        raise AssertionError("the fake has no stray object")
    d = series_dir(m, r)
    names = os.listdir(d)
    assert all(n.endswith(".dcm") or n == "series.json" for n in names), names
    assert len([n for n in names if n.endswith(".dcm")]) == len(
        [k for k, _ in keys if k.endswith(".dcm")])
    assert "not DICOM files left out" in m.log()
    ctx.unmount(m)


def expect_refused(m, s, row, what):
    """Reading the series' first file fails with EIO, one log line says why, and the
    store keeps no file of it, nor anything in tmp/."""
    d = series_dir(m, row)
    first = sorted(n for n in os.listdir(d) if n.endswith(".dcm"))[0]
    t0 = time.monotonic()
    r = subprocess.run(["cat", os.path.join(d, first)], capture_output=True, timeout=60)
    assert r.returncode != 0 and b"Input/output error" in r.stderr, (what, r)
    assert time.monotonic() - t0 < 30, what
    # The series' other files were read ahead and fail too: let them end first.
    wait_for(lambda: all(a["in_flight"] == 0 for a in json.loads(open(os.path.join(
        m.mountpoint, ".tciafs", "status")).read())["read_ahead"]), 60, "the read-ahead")
    assert stored(m, row) == [], (what, stored(m, row))
    assert os.listdir(os.path.join(m_cache(m), "tmp")) == [], what
    return first


def test_an_object_that_disagrees_with_its_listing_is_refused(ctx):
    s = ctx.idc_server()
    m = idc_mount(ctx, s, options=["retries=0"])
    row = one_series(s, "collection_id = 'tcga_luad' AND instanceCount > 1")
    # Listed longer than it is: short.
    s.fault(kind="lie", endpoint="list", by=7, times=1)
    expect_refused(m, s, row, "short")
    assert "were expected: refused" in m.log(), m.log()
    ctx.unmount(m)
    # An object that never ends: cut off one byte past its listed size.
    m = idc_mount(ctx, s, options=["retries=0"], cache_dir=ctx.path("cache-endless"))
    s.fault(kind="endless", endpoint="object", times=-1)
    expect_refused(m, s, row, "endless")
    assert "bytes expected: refused" in m.log(), m.log()
    s.reset_faults()
    # Nothing was lost: the next read, once the failure is no longer remembered (3 s),
    # fetches it whole.
    time.sleep(3.2)
    d = series_dir(m, row)
    first = sorted(n for n in os.listdir(d) if n.endswith(".dcm"))[0]
    assert pydicom.dcmread(os.path.join(d, first)).SeriesInstanceUID == row["SeriesInstanceUID"]
    ctx.unmount(m)


def test_hostile_listings_are_refused(ctx):
    s = ctx.idc_server()
    row = one_series(s, "collection_id = 'tcga_luad' AND instanceCount > 1")
    for case in ("bomb", "malformed", "sizes", "no-token"):
        s.reset_faults()
        s.fault(kind="body", endpoint="list", path=corpus("list-%s.xml" % case), times=-1)
        m = idc_mount(ctx, s, options=["retries=0"], name="mnt-" + case)
        t0 = time.monotonic()
        r = subprocess.run(["ls", series_dir(m, row)], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode != 0, (case, r)
        assert time.monotonic() - t0 < 20, case
        assert "bad answer from IDC's bucket" in m.log() or "lists no DICOM" in m.log(), (
            case, m.log())
        assert not os.path.exists(os.path.join(m_cache(m), "series", row["SeriesInstanceUID"]))
        ctx.unmount(m)
    # Keys that are paths are not shown as files: here none is left to show.
    keys = open(corpus("list-keys.xml")).read().replace("UUID/", row["crdc_series_uuid"] + "/")
    path = ctx.path("list-keys.xml")
    with open(path, "w") as f:
        f.write(keys)
    s.reset_faults()
    s.fault(kind="body", endpoint="list", path=path, times=-1)
    m = idc_mount(ctx, s, options=["retries=0"], name="mnt-keys")
    r = subprocess.run(["ls", "-a", series_dir(m, row)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode != 0 and "lists no DICOM file" in m.log(), (r, m.log())
    assert not os.path.exists("/etc/passwd.dcm")
    ctx.unmount(m)


def test_hostile_names_and_places_from_the_api(ctx):
    s = ctx.idc_server()
    s.fault(kind="body", endpoint="collections", path=corpus("collections-names.json"),
            times=-1)
    m = idc_mount(ctx, s, options=["retries=0"])
    names = [n for n in os.listdir(m.mountpoint) if n != "README.txt"]
    assert len(names) == len(set(names)) and len(names) >= 12, names
    for n in names:
        assert "/" not in n and not n.startswith(".") and len(n.encode()) <= 255, n
        assert all(ord(c) >= 0x20 and ord(c) != 0x7f for c in n), n
    ctx.unmount(m)
    s.reset_faults()
    # A series record whose files' place would leave the bucket: refused, not fetched.
    for case in ("bucket", "uuid", "host"):
        s.reset_faults()
        s.fault(kind="body", endpoint="sql", path=corpus("sql-series-where-%s.json" % case),
                times=-1)
        m = idc_mount(ctx, s, options=["retries=0"], name="mnt-where-" + case)
        l0 = len(s.requests("list"))
        r = subprocess.run(["ls", os.path.join(m.mountpoint, ".tciafs", "series",
                                               "1.2.3.4.5")],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode != 0, (case, r)
        assert count(s, "list", l0) == 0, case
        assert "no usable place for its files" in m.log(), (case, m.log())
        ctx.unmount(m)


def test_values_from_paths_cannot_change_the_query(ctx):
    s = ctx.idc_server()
    m = idc_mount(ctx, s)
    coll = os.path.join(m.mountpoint, "TCGA-LUAD")
    for hostile in ("x' OR '1'='1", "x' OR 1=1 --", "QA-O'NEIL--01' OR 'a'='a"):
        n0 = len(s.requests("sql"))
        r = subprocess.run(["ls", os.path.join(coll, hostile)], capture_output=True,
                           timeout=60)
        assert r.returncode != 0, hostile
        for e in s.requests("sql")[n0:]:
            assert hostile.replace("'", "''") in e["query"]["sql"] or \
                hostile not in e["query"]["sql"], e
    ctx.unmount(m)


def test_a_503_storm_gives_eio_then_recovers(ctx):
    s = ctx.idc_server()
    s.fault(kind="503", endpoint="*", times=-1)
    m = idc_mount(ctx, s, options=["retries=1", "timeout=5"])
    t0 = time.monotonic()
    r = subprocess.run(["ls", m.mountpoint], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and time.monotonic() - t0 < 30, r
    assert "503" in m.log(), m.log()
    s.reset_faults()
    r = subprocess.run(["ls", m.mountpoint], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "TCGA-LUAD" in r.stdout, r
    ctx.unmount(m)


def test_prefetch_fetches_every_file(ctx):
    from test_prefetch import prefetch
    s = ctx.idc_server()
    m = idc_mount(ctx, s)
    big = one_series(s, "instanceCount = 1500")
    small = one_series(s, "collection_id = 'tcga_luad' AND instanceCount > 2")
    uids = ctx.path("uids.txt")
    with open(uids, "w") as f:
        f.write("%s\n%s\n" % (big["SeriesInstanceUID"], small["SeriesInstanceUID"]))
    o0 = len(s.requests("object"))
    r = prefetch("-j", "2", "--uids", uids, m.mountpoint)
    assert "2/2 series" in r.stderr, r.stderr
    assert len(stored(m, big)) == 1500 and len(stored(m, small)) == small["instanceCount"]
    gets = s.requests("object")[o0:]
    assert len(gets) == 1500 + small["instanceCount"], len(gets)
    status = json.loads(open(os.path.join(m.mountpoint, ".tciafs", "status")).read())
    assert status["counters"]["files_fetched"] == len(gets), status["counters"]
    # Again: everything is stored, nothing is asked for.
    prefetch("--uids", uids, m.mountpoint)
    assert len(s.requests("object")) - o0 == len(gets)
    ctx.unmount(m)


def test_prefetch_asks_for_a_series_objects_side_by_side(ctx):
    from test_prefetch import prefetch
    s = ctx.idc_server()
    m = idc_mount(ctx, s)
    row = one_series(s, "collection_id = 'tcga_luad' AND instanceCount >= 4")
    uids = ctx.path("uids.txt")
    with open(uids, "w") as f:
        f.write(row["SeriesInstanceUID"] + "\n")
    os.listdir(series_dir(m, row))
    # Each object answers after 1 s (logged then): one after another they would be logged
    # a second apart or more; side by side, together.
    s.fault(kind="delay", endpoint="object", seconds=1, times=-1)
    o0 = len(s.requests("object"))
    prefetch("--uids", uids, m.mountpoint)
    t = sorted(e["t"] for e in s.requests("object")[o0:])
    assert len(t) == row["instanceCount"], t
    assert min(b - a for a, b in zip(t, t[1:])) < 0.5, t
    ctx.unmount(m)


def test_a_new_release_refreshes_what_was_loaded(ctx):
    s = ctx.idc_server()
    for new_release in (False, True):
        m = idc_mount(ctx, s, options=["meta_ttl=3"], name="mnt-release-%s" % new_release)
        v0 = len(s.requests("version"))
        os.listdir(m.mountpoint)
        assert len(s.requests("version")) - v0 == 1     # checked with the collections
        time.sleep(1.5)
        pdir = os.path.join(m.mountpoint, "TCGA-LUAD", "TCGA-05-4244")
        os.listdir(pdir)                                 # loaded 1.5 s after the root
        if new_release:
            http("POST", s.base + "/_fake/version", {"idc_version": "v26"})
        time.sleep(2)                                    # the root is stale, pdir is not
        os.listdir(m.mountpoint)                         # the release is checked again
        assert len(s.requests("version")) - v0 == 2
        time.sleep(0.5)         # the daemon drops the kernel's listings within 0.1 s
        n0 = len(s.requests("sql"))
        os.listdir(pdir)
        asked = len(s.requests("sql")) - n0
        if new_release:
            assert asked >= 1 and "serves a new release, v26 (was v25)" in m.log(), m.log()
        else:
            assert asked == 0, s.requests("sql")[n0:]
        ctx.unmount(m)


def test_offline_sharing_and_eviction_as_for_nbia(ctx):
    s = ctx.idc_server()
    cache = ctx.path("shared-cache")
    # One file stored, the others not: no read-ahead (test_idc_ahead has it).
    a = idc_mount(ctx, s, options=["readahead_max=1"], cache_dir=cache, name="mnt-a")
    b = idc_mount(ctx, s, options=["readahead_max=1"], cache_dir=cache, name="mnt-b")
    row = one_series(s, "collection_id = 'tcga_luad' AND instanceCount > 2")
    files = sorted(n for n in os.listdir(series_dir(a, row)) if n.endswith(".dcm"))
    with open(os.path.join(series_dir(a, row), files[0]), "rb") as f:
        data = f.read()
    # The other mount on the same cache reads the stored file: no request.
    o0 = len(s.requests("object"))
    with open(os.path.join(series_dir(b, row), files[0]), "rb") as f:
        assert f.read() == data
    assert count(s, "object", o0) == 0
    ctx.unmount(a)
    ctx.unmount(b)
    # Offline: what was looked at browses, the stored file reads, the others fail at once.
    m = idc_mount(ctx, s, options=["offline"], cache_dir=cache, name="mnt-offline")
    n0 = len(s.requests())
    d = series_dir(m, row)
    assert sorted(n for n in os.listdir(d) if n.endswith(".dcm")) == files
    with open(os.path.join(d, files[0]), "rb") as f:
        assert f.read() == data
    r = subprocess.run(["cat", os.path.join(d, files[1])], capture_output=True, timeout=30)
    assert r.returncode != 0 and b"Input/output error" in r.stderr, r
    assert len(s.requests()) == n0 and "offline" in m.log()
    ctx.unmount(m)
    # A cap smaller than two series: listing another evicts the first, files and all.
    m = idc_mount(ctx, s, options=["cache_size=%d" % (row["series_size_MB"] * 1e6 + 100)],
                  cache_dir=cache, name="mnt-cap")
    other = one_series(s, "collection_id = 'tcga_luad' AND SeriesInstanceUID <> '%s'"
                       % row["SeriesInstanceUID"])
    os.listdir(series_dir(m, other))
    assert stored(m, row) == [] and not os.path.isdir(
        os.path.join(m_cache(m), "series", row["SeriesInstanceUID"]))
    ctx.unmount(m)


def test_the_whole_tree_walks_to_every_series(ctx):
    s = ctx.idc_server()
    m = idc_mount(ctx, s)
    want = {r["SeriesInstanceUID"]: r for r in rows(s, 'SELECT * FROM "index"')}
    o0 = len(s.requests("object"))
    r = run(["find", m.mountpoint, "-name", "series.json"])
    seen = {}
    for path in r.stdout.splitlines():
        sj = json.load(open(path))
        seen[sj["SeriesInstanceUID"]] = (path, sj)
    assert set(seen) == set(want), set(want) ^ set(seen)
    names = {c["collection_id"]: c["collection_name"] for c in
             json.loads(http("GET", s.url + "/collections")[2])}
    for uid, (path, sj) in seen.items():
        w = want[uid]
        rel = os.path.relpath(path, m.mountpoint).split(os.sep)
        assert rel[0] == names[w["collection_id"]] and rel[1] == w["PatientID"], rel
        assert sj["ImageCount"] == w["instanceCount"] and sj["Modality"] == w["Modality"]
    # A walk to the series folders' metadata fetches no file.
    assert count(s, "object", o0) == 0
    ctx.unmount(m)


def test_hostile_patient_ids_from_the_api(ctx):
    s = ctx.idc_server()
    m = idc_mount(ctx, s, options=["retries=0"])
    coll = os.path.join(m.mountpoint, "TCGA-LUAD")
    s.fault(kind="body", endpoint="sql", path=corpus("sql-patients-names.json"), times=1)
    names = [n for n in os.listdir(coll) if not n.endswith((".json", ".csv", ".txt")) and
             not n.startswith(".by-")]
    assert len(names) == len(set(names)) and len(names) >= 12, names
    for n in names:
        assert "/" not in n and not n.startswith(".") and len(n.encode()) <= 255, n
        assert all(ord(c) >= 0x20 and ord(c) != 0x7f for c in n), n
    # A patient whose ID is SQL is looked up with that ID as a quoted literal: the
    # query finds no such patient (nothing else), and the folder is empty but for its
    # patient.json.
    pid = "x' OR '1'='1"
    assert pid in names
    n0 = len(s.requests("sql"))
    listed = os.listdir(os.path.join(coll, pid))
    sent = [e["query"]["sql"] for e in s.requests("sql")[n0:]]
    assert sent and all("'x'' OR ''1''=''1'" in q for q in sent), sent
    assert listed == ["patient.json"], listed
    ctx.unmount(m)


def test_facets_cost_no_request_after_a_bulk_load(ctx):
    s = ctx.idc_server()
    m = idc_mount(ctx, s)
    coll = os.path.join(m.mountpoint, "TCGA-LUAD")
    open(os.path.join(coll, "series.csv")).read()           # the collection in bulk
    n0 = len(s.requests())
    values = sorted(os.listdir(os.path.join(coll, ".by-modality")))
    links = os.listdir(os.path.join(coll, ".by-bodypart", "_unknown"))
    assert values == ["CT", "PT"] and len(links) == 1, (values, links)
    assert len(s.requests()) == n0, s.requests()[n0:]
    ctx.unmount(m)


def test_walk_guard_holds_back_a_grep_of_the_whole_mount(ctx):
    s = ctx.idc_server()
    m = idc_mount(ctx, s, options=["walk_budget=3"])
    # grep -r would read every file of every series: held back after three series.
    run(["grep", "-r", "-l", "no such text", os.path.join(m.mountpoint, "TCGA-LUAD")],
        check=False, timeout=120)
    listed = {e["path"].split("prefix=")[1].split("%2F")[0] for e in s.requests("list")}
    assert len(listed) == 3, listed
    assert "walk guard" in m.log()
    status = json.load(open(os.path.join(m.mountpoint, ".tciafs", "status")))
    assert status["walk_guard"]["held_back_processes"][0]["command"] == "grep"
    ctx.unmount(m)


def test_a_release_published_during_a_bulk_load_is_loaded_again(ctx):
    s = ctx.idc_server()
    m = idc_mount(ctx, s)
    os.listdir(m.mountpoint)                                 # v25, with the collections
    coll = os.path.join(m.mountpoint, "TCGA-LUAD")
    os.listdir(coll)
    http("POST", s.base + "/_fake/version", {"idc_version": "v26"})
    v0, q0 = len(s.requests("version")), len(s.requests("sql"))
    open(os.path.join(coll, "series.csv")).read()            # the bulk load's pages
    assert "published a new release, v26 (was v25), while it was loaded" in m.log(), m.log()
    # Everything was stale at once: the release and the collection were loaded again
    # (the open after the stat that loaded them did it), and now they hold.
    assert "serves a new release, v26 (was v25)" in m.log(), m.log()
    time.sleep(0.5)             # the daemon drops the kernel's listings within 0.1 s
    os.listdir(m.mountpoint)
    v1, n1 = len(s.requests("version")), len(s.requests("sql"))
    open(os.path.join(coll, "series.csv")).read()
    os.listdir(os.path.join(coll, "TCGA-05-4244"))
    assert len(s.requests("sql")) == n1 > q0 and len(s.requests("version")) == v1 > v0
    ctx.unmount(m)


def test_a_bad_object_is_not_fetched_again_at_once(ctx):
    s = ctx.idc_server()
    m = idc_mount(ctx, s, options=["retries=0"])
    row = one_series(s, "collection_id = 'tcga_luad' AND instanceCount > 1")
    d = series_dir(m, row)
    first = os.path.join(d, sorted(n for n in os.listdir(d) if n.endswith(".dcm"))[0])
    s.fault(kind="endless", endpoint="object", times=-1)
    o0 = len(s.requests("object"))
    key = "%s/%s" % (row["crdc_series_uuid"], os.path.basename(first))
    for _ in range(3):       # a viewer opens a file several times: one GET answers them
        r = subprocess.run(["cat", first], capture_output=True, timeout=60)
        assert r.returncode != 0 and b"Input/output error" in r.stderr, r
    assert count_key(s, key, o0) == 1
    err = os.getxattr(first, "user.tciafs.error").decode()
    assert row["crdc_series_uuid"] in err and "longer than" in err, err
    # A few seconds on, it is asked for again (and, the fault gone, stored).
    s.reset_faults()
    time.sleep(3.2)
    with open(first, "rb") as f:
        assert f.read(132)[128:] == b"DICM"
    assert count_key(s, key, o0) == 2
    ctx.unmount(m)


def test_a_failed_series_page_fails_the_bulk_load_and_changes_nothing(ctx):
    s = ctx.idc_server("--scale", "300")
    cache = ctx.path("cache")
    m = idc_mount(ctx, s, options=["retries=1", "timeout=5"], cache_dir=cache)
    root = os.path.join(m.mountpoint, "Scale-Test")
    assert len(os.listdir(os.path.join(root, "SCALE-00001"))) == 3   # that patient alone
    db = glob.glob(os.path.join(cache, "**", "catalog-*.sqlite"), recursive=True)
    assert len(db) == 1, db

    def catalog(sql):
        with contextlib.closing(sqlite3.connect("file:%s?mode=ro" % db[0], uri=True)) as c:
            return c.execute(sql).fetchall()

    before = catalog("select count(*) from series"), catalog("select count(*) from study")
    assert before == ([(10,)], [(2,)]), before
    # The bulk load's studies go at once with its series; every series page fails.
    s.fault(kind="503", endpoint="sql", sql="SeriesInstanceUID", times=-1)
    t0 = time.monotonic()
    r = subprocess.run(["cat", os.path.join(root, "series.csv")], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode != 0 and "Input/output error" in r.stderr, r
    assert time.monotonic() - t0 < 30
    assert "503" in m.log(), m.log()
    assert (catalog("select count(*) from series"), catalog("select count(*) from study")) \
        == before
    assert catalog("select count(*) from load where scope=2") == [(0,)]
    assert not glob.glob(os.path.join(cache, "**", "catalog-*.load-*"), recursive=True)
    # The fault gone, the same read loads the collection whole.
    s.reset_faults()
    with open(os.path.join(root, "series.csv")) as f:
        assert len(f.read().splitlines()) == 3001
    assert catalog("select count(*) from series") == [(3000,)]
    ctx.unmount(m)
