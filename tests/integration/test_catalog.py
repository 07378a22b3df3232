# SPDX-License-Identifier: MIT
# The metadata catalog (issue 12) through the mount: a first look at a patient asks for
# that patient only, a walk loads the collection in bulk, what was loaded is trusted per
# scope (TTL, SIGHUP, offline, stale-if-error) and survives a remount; broken catalog
# files are moved aside; a kill -9 in the middle of a bulk load leaves the catalog as it
# was; two mounts share one catalog while both load. Request counts from the fake's log.

import glob
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time

from harness import run, wait_for

COLL = "Scale-Test"


def api_requests(s, since=0):
    return [e for e in s.requests() if e.get("endpoint")][since:]


def calls(s, since=0):
    """(endpoint, sorted query keys) of each API request since `since`."""
    return [(e["endpoint"], tuple(sorted(k for k in e.get("query", {}) if k != "format")))
            for e in api_requests(s, since)]


def subdirs(path):
    return sorted(d for d in os.listdir(path) if not d.endswith(".json"))


def catalog_file(cache):
    found = glob.glob(os.path.join(cache, "catalog-*.sqlite"))
    assert len(found) == 1, found
    return found[0]


def query(cache, sql):
    db = sqlite3.connect("file:%s?mode=ro" % catalog_file(cache), uri=True)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_a_first_look_asks_for_that_patient_only(ctx):
    s = ctx.server("--scale", "200", "--series-size-delay", "0")
    m = ctx.mount(s, cache_dir=ctx.path("cache"))
    pat = os.path.join(m.mountpoint, COLL, "SCALE-00042")
    # The studies' answer held back: the series are asked for all the same, at once.
    s.fault(kind="delay", endpoint="getPatientStudy", seconds=1.5, times=1)
    study = os.path.join(pat, subdirs(pat)[0])
    series = subdirs(study)
    assert len(series) == 5, series
    got = calls(s)
    assert got[0] == ("getCollectionValues", ()) and sorted(got[1:]) == [
        ("getPatientStudy", ("Collection", "PatientID")),
        ("getSeries", ("Collection", "PatientID"))], got
    assert all(e["query"].get("PatientID") == "SCALE-00042" for e in api_requests(s)[1:])
    st = api_requests(s, 1)[0] if got[1][0] == "getPatientStudy" else api_requests(s, 2)[0]
    ser = api_requests(s, 2)[0] if got[1][0] == "getPatientStudy" else api_requests(s, 1)[0]
    assert st["fault"] == "delay" and ser["t"] < st["t"] + st["dt"], (st, ser)
    # The catalog holds that patient and nothing else of the collection, and says so.
    cache = ctx.path("cache")
    assert query(cache, "select count(*) from series") == [(10,)]
    scopes = query(cache, "select scope, coll, pid from load order by scope")
    assert scopes == [(0, "", ""), (3, COLL, "SCALE-00042")], scopes
    # patient.json of a patient seen alone needs the patient list: asked when read.
    n = len(api_requests(s))
    with open(os.path.join(pat, "patient.json")) as f:
        assert json.load(f)["PatientId"] == "SCALE-00042"
    assert calls(s, n) == [("getPatient", ("Collection",))]
    # Looked at again: nothing asked.
    n = len(api_requests(s))
    subdirs(study)
    os.listdir(pat)
    assert api_requests(s, n) == []


def test_a_walk_loads_the_collection_once(ctx):
    s = ctx.server("--scale", "200", "--series-size-delay", "0")
    m = ctx.mount(s)
    root = os.path.join(m.mountpoint, COLL)
    pats = [d for d in os.listdir(root) if d.startswith("SCALE-")]
    assert len(pats) == 200
    for p in pats:
        for st in subdirs(os.path.join(root, p)):
            assert len(subdirs(os.path.join(root, p, st))) == 5
    got = calls(s)
    # The collections, the patient list, two patients one by one, then the rest in bulk.
    assert len(got) <= 8, got
    assert ("getPatientStudy", ("Collection",)) in got, got
    assert ("getSeries", ("Collection",)) in got, got
    assert got.count(("getSeries", ("Collection", "PatientID"))) == 2, got
    # A view of it costs nothing more than its value lists.
    n = len(api_requests(s))
    assert len(os.listdir(os.path.join(root, ".by-modality", "CT"))) == 2000
    assert all(e.endswith("Values") for e, _ in calls(s, n)), calls(s, n)


def test_remount_browses_from_the_catalog(ctx):
    s = ctx.server("--scale", "50", "--series-size-delay", "0")
    cache = ctx.path("cache")
    m = ctx.mount(s, cache_dir=cache)
    first = run(["find", os.path.join(m.mountpoint, COLL), "-maxdepth", "3"]).stdout
    ctx.unmount(m)
    n = len(api_requests(s))
    m = ctx.mount(s, cache_dir=cache)
    again = run(["find", os.path.join(m.mountpoint, COLL), "-maxdepth", "3"]).stdout
    assert sorted(again.replace("mnt3", "mnt2").splitlines()) == sorted(first.splitlines())
    # The value lists of collection.json are not the catalog's (yet): at most those.
    assert all(e.endswith("Values") for e, _ in calls(s, n)), calls(s, n)


def test_ttl_and_sighup_per_scope(ctx):
    s = ctx.server("--scale", "20", "--series-size-delay", "0")
    m = ctx.mount(s, options=["meta_ttl=2"])
    pat = os.path.join(m.mountpoint, COLL, "SCALE-00003")
    os.listdir(pat)
    n = len(api_requests(s))
    os.listdir(pat)
    assert api_requests(s, n) == []
    time.sleep(2.5)
    # The same folder, whose listing the kernel kept: past the TTL it is looked at again.
    made = status(m)["listings"]["made"]
    os.listdir(pat)
    assert ("getPatientStudy", ("Collection", "PatientID")) in calls(s, n), calls(s, n)
    assert status(m)["listings"]["made"] == made + 1
    n = len(api_requests(s))
    time.sleep(2.5)
    os.listdir(os.path.join(pat, subdirs(pat)[0]))
    assert ("getPatientStudy", ("Collection", "PatientID")) in calls(s, n), calls(s, n)
    # SIGHUP: everything is asked again at the next look, at once.
    m2 = ctx.mount(s)
    pat2 = os.path.join(m2.mountpoint, COLL, "SCALE-00004")
    os.listdir(pat2)
    n = len(api_requests(s))
    os.kill(m2.proc.pid, signal.SIGHUP)
    wait_for(lambda: "SIGHUP" in m2.log(), 5, "the SIGHUP to be seen")
    os.listdir(pat2)
    assert ("getPatientStudy", ("Collection", "PatientID")) in calls(s, n), calls(s, n)


def test_offline_and_stale_if_error_serve_the_catalog(ctx):
    s = ctx.server("--scale", "20", "--series-size-delay", "0")
    cache = ctx.path("cache")
    m = ctx.mount(s, cache_dir=cache, options=["meta_ttl=1", "retries=0"])
    pat = os.path.join(m.mountpoint, COLL, "SCALE-00005")
    study = os.path.join(pat, subdirs(pat)[0])
    seen = subdirs(study)
    # The API fails when the patient's load has expired: the catalog's copy is served.
    time.sleep(1.5)
    s.fault(kind="status", status=500, endpoint="getSeries")
    assert subdirs(study) == seen
    assert "serving what the catalog has" in m.log()
    s.reset_faults()
    ctx.unmount(m)
    # Offline: what the catalog holds, without a request; what it does not is EIO.
    n = len(api_requests(s))
    m = ctx.mount(s, cache_dir=cache, options=["offline"])
    assert subdirs(os.path.join(m.mountpoint, COLL, "SCALE-00005", os.path.basename(study))) \
        == seen
    r = run(["ls", os.path.join(m.mountpoint, COLL, "SCALE-00006")], check=False)
    assert r.returncode != 0 and "Input/output error" in r.stderr, r
    assert "not in the catalog" in m.log()
    assert api_requests(s, n) == []


def test_a_broken_catalog_is_moved_aside(ctx):
    s = ctx.server()
    for i, damage in enumerate(("text", "version", "directory", "pages")):
        cache = ctx.path("cache-%s" % damage)
        m = ctx.mount(s, cache_dir=cache)
        assert "Lung-Phantom-CT" in os.listdir(m.mountpoint)
        ctx.unmount(m)
        path = catalog_file(cache)
        if damage == "text":
            with open(path, "w") as f:
                f.write("not a database at all\n" * 100)
        elif damage == "version":
            db = sqlite3.connect(path)
            db.execute("pragma user_version=42")
            db.commit()
            db.close()
        elif damage == "directory":
            os.unlink(path)
            os.mkdir(path)
        else:
            with open(path, "r+b") as f:
                f.seek(100)
                f.write(b"\xa5" * 8000)
        m = ctx.mount(s, cache_dir=cache)
        assert "Lung-Phantom-CT" in os.listdir(m.mountpoint), damage
        assert "moved aside" in m.log(), (damage, m.log())
        assert glob.glob(path + ".broken-*"), damage
        ctx.unmount(m)


def test_kill9_during_a_bulk_load_leaves_the_catalog_as_it_was(ctx):
    s = ctx.server("--scale", "1000", "--series-size-delay", "0")
    cache = ctx.path("cache")
    m = ctx.mount(s, cache_dir=cache)
    root = os.path.join(m.mountpoint, COLL)
    os.listdir(os.path.join(root, "SCALE-00001"))      # one patient, loaded alone
    before = query(cache, "select count(*) from series")
    assert before == [(10,)], before
    # The bulk load's getSeries trickles: the load is under way, its rows partly written.
    s.fault(kind="slow", endpoint="getSeries", rate=300000)
    proc = subprocess.Popen(["ls", os.path.join(root, ".by-modality")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: any(e["endpoint"] == "getSeries" and "PatientID" not in e["query"]
                         for e in api_requests(s)) or proc.poll() is not None, 30,
             "the bulk getSeries to start")
    time.sleep(10)      # some 3 MB in: more rows than one batch, so some are written
    assert proc.poll() is None, "the bulk load ended before the kill"
    # Those rows are in the load's staging file, not yet in the catalog.
    assert glob.glob(os.path.join(cache, "catalog-*.load-*"))
    m.proc.kill()
    m.stop()
    proc.wait(10)
    assert query(cache, "select count(*) from series") == before
    assert query(cache, "select count(*) from load where scope=2") == [(0,)]
    # The next mount finds it whole and usable.
    s.reset_faults()
    m = ctx.mount(s, cache_dir=cache, options=["offline"])
    assert len(subdirs(os.path.join(m.mountpoint, COLL, "SCALE-00001"))) == 2
    assert not glob.glob(os.path.join(cache, "catalog-*.load-*"))
    assert "left by a load that did not finish" in m.log()


def test_two_mounts_share_one_catalog_while_both_load(ctx):
    s = ctx.server("--scale", "300", "--series-size-delay", "0")
    cache = ctx.path("cache")
    a = ctx.mount(s, cache_dir=cache)
    b = ctx.mount(s, cache_dir=cache)
    errors = []

    def walk(m, first):
        try:
            root = os.path.join(m.mountpoint, COLL)
            for i in range(first, first + 30):
                pat = os.path.join(root, "SCALE-%05d" % i)
                for st in subdirs(pat):
                    assert len(subdirs(os.path.join(pat, st))) == 5
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=walk, args=(m, i))
               for m, i in ((a, 1), (b, 150), (a, 60), (b, 200))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == [], errors
    # Each mount walked past its third patient: both loaded the collection in bulk, and
    # neither load lost the other's rows.
    assert query(cache, "select count(*) from series where coll='%s'" % COLL) == [(3000,)]
    assert "error" not in a.log() + b.log(), a.log() + b.log()


def test_a_full_disk_while_writing_the_catalog(ctx):
    s = ctx.server("--scale", "300", "--series-size-delay", "0")
    cache = ctx.path("small")
    os.makedirs(cache)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", cache], check=True)
    try:
        m = ctx.mount(s, cache_dir=cache)
        root = os.path.join(m.mountpoint, COLL)
        pat = os.path.join(root, "SCALE-00001")
        seen = subdirs(pat)
        assert len(seen) == 2
        # The bulk load (3,000 series) does not fit: a clear error, and the mount keeps
        # serving what it has.
        r = run(["ls", os.path.join(root, ".by-modality", "CT")], check=False)
        assert r.returncode != 0 and "No space left on device" in r.stderr, r
        assert "catalog" in m.log() and "full" in m.log().lower(), m.log()
        assert subdirs(pat) == seen
        assert len(subdirs(os.path.join(pat, seen[0]))) == 5
        assert not glob.glob(os.path.join(cache, "catalog-*.load-*"))
        ctx.unmount(m)
    finally:
        subprocess.run(["umount", "-l", cache], capture_output=True)


def status(m):
    with open(os.path.join(m.mountpoint, ".tciafs", "status")) as f:
        return json.load(f)


def test_the_kernel_keeps_listings_until_they_change(ctx):
    s = ctx.server("--scale", "20", "--series-size-delay", "0")
    m = ctx.mount(s)
    pat = os.path.join(m.mountpoint, COLL, "SCALE-00007")
    first = os.listdir(pat)
    made = status(m)["listings"]["made"]
    n = len(api_requests(s))
    # Listed again: the kernel's copy; nothing made, nothing asked.
    for _ in range(3):
        assert os.listdir(pat) == first
    st = status(m)["listings"]
    assert st["made"] == made and st["kept_by_kernel"] >= 1, st
    assert api_requests(s, n) == []
    # A series folder's listing is kept too, once made (listing it fetched it).
    study = os.path.join(pat, subdirs(pat)[0])
    series = os.path.join(study, subdirs(study)[0])
    made = status(m)["listings"]["made"]
    os.listdir(series)
    os.listdir(series)
    assert status(m)["listings"]["made"] == made + 1
    # Each inode the kernel holds is a node of ours, freed when the kernel forgets it.
    held = status(m)["inodes_held_by_kernel"]
    assert held >= len(first) + len(os.listdir(series)), held
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("2\n")
    wait_for(lambda: status(m)["inodes_held_by_kernel"] < held, 5, "the kernel's FORGETs")
    # SIGHUP: the next look asks again, and the kernel is told to drop its copy.
    os.kill(m.proc.pid, signal.SIGHUP)
    wait_for(lambda: "SIGHUP" in m.log(), 5, "the SIGHUP to be seen")
    made = status(m)["listings"]["made"]
    assert os.listdir(pat) == first
    assert status(m)["listings"]["made"] == made + 1
    assert ("getPatientStudy", ("Collection", "PatientID")) in calls(s, n), calls(s, n)
