# SPDX-License-Identifier: MIT
# Browsing through the mount (issue 4): the tree of collections, patients, studies and
# series with their JSON files, checked against what the fake serves; request counts from
# the fake's log; names, probes, EROFS, xattrs, caching, SIGHUP and a server gone away.

import json
import os
import signal
import subprocess
import threading
import time

from harness import TestFailure, run

SARCOMA = "Soft-tissue-Sarcoma"


def api_requests(s):
    return [e for e in s.requests() if e.get("endpoint")]


def pretty(obj):
    # What the files must hold: 2-space indent, the API's values, a trailing newline.
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def read_json_file(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    obj = json.loads(text)
    if text != pretty(obj):
        raise TestFailure("%s is not pretty-printed as expected:\n%s" % (path, text))
    if os.stat(path).st_size != len(text.encode()):
        raise TestFailure("%s: stat size %d, content %d bytes" % (
            path, os.stat(path).st_size, len(text.encode())))
    return obj


def dirs(path):
    # The hidden facet folders (.by-modality, …) are views, tested in test_views.
    return sorted(e for e in os.listdir(path)
                  if os.path.isdir(os.path.join(path, e)) and not e.startswith("."))


def test_walk_large_collection_costs_few_requests(ctx):
    s = ctx.server("--scale", "1000", "--series-size-delay", "0")
    m = ctx.mount(s)
    root = os.path.join(m.mountpoint, "Scale-Test")
    t0 = time.monotonic()
    out = run(["find", root, "-maxdepth", "3"]).stdout.splitlines()
    cold = time.monotonic() - t0
    # 1 collection + collection.json, 1000 patients + patient.json each, 2000 studies +
    # study.json each, 10000 series folders; the views: 3 tables, CITATION.txt, 3 facet
    # folders with one value each (CT, CHEST, SIEMENS) and a link per series in each.
    assert len(out) == 2 + 2000 + 4000 + 10000 + 4 + 3 + 3 + 30000, len(out)
    pat = os.path.join(root, "SCALE-00042")
    study = os.path.join(pat, dirs(pat)[0])
    for d in (m.mountpoint, root, pat, study):
        run(["ls", "-l", d])
    n = len(api_requests(s))
    assert n <= 8, [e["endpoint"] for e in api_requests(s)]
    # A second walk is answered from what is held: no request at all.
    run(["find", root, "-maxdepth", "3"])
    for d in (m.mountpoint, root, pat, study):
        run(["ls", "-l", d])
    assert len(api_requests(s)) == n, api_requests(s)[n:]
    assert cold < 60, cold


def test_every_file_matches_the_api(ctx):
    s = ctx.server("--series-size-delay", "0")
    m = ctx.mount(s)
    for coll in ("Lung-Phantom-CT", SARCOMA, "CT COLONOGRAPHY"):
        croot = os.path.join(m.mountpoint, coll)
        cj = read_json_file(os.path.join(croot, "collection.json"))
        assert cj["Collection"] == coll
        assert cj["Modality"] == [x["Modality"] for x in
                                  s.get_json("getModalityValues", Collection=coll)]
        assert cj["BodyPartExamined"] == [x["BodyPartExamined"] for x in
                                          s.get_json("getBodyPartValues", Collection=coll)
                                          if "BodyPartExamined" in x]
        assert cj["Manufacturer"] == [x["Manufacturer"] for x in
                                      s.get_json("getManufacturerValues", Collection=coll)]
        series_api = s.get_json("getSeries", Collection=coll)
        assert cj["CollectionURI"] == series_api[0]["CollectionURI"]
        assert cj["LicenseName"] == series_api[0]["LicenseName"]

        pats = {p["PatientId"]: p for p in s.get_json("getPatient", Collection=coll)}
        studies = {x["StudyInstanceUID"]: x for x in
                   s.get_json("getPatientStudy", Collection=coll)}
        series = {x["SeriesInstanceUID"]: x for x in series_api}
        assert dirs(croot) == sorted(pats)          # these IDs need no cleaning
        seen_series = 0
        for pid in dirs(croot):
            pdir = os.path.join(croot, pid)
            assert read_json_file(os.path.join(pdir, "patient.json")) == pats[pid]
            for sd in dirs(pdir):
                sdir = os.path.join(pdir, sd)
                sj = read_json_file(os.path.join(sdir, "study.json"))
                assert sj == studies[os.getxattr(sdir, "user.tcia.study_uid").decode()]
                assert sj["PatientID"] == pid and "SeriesCount" in sj
                assert len(dirs(sdir)) == sj["SeriesCount"]
                for rd in dirs(sdir):
                    rdir = os.path.join(sdir, rd)
                    uid = os.getxattr(rdir, "user.tcia.series_uid").decode()
                    rj = read_json_file(os.path.join(rdir, "series.json"))
                    size = s.get_json("getSeriesSize", SeriesInstanceUID=uid)[0]
                    want = dict(series[uid])
                    want.update(size)
                    assert rj == want, (rj, want)
                    assert list(rj)[:len(series[uid])] == list(series[uid])
                    seen_series += 1
        assert seen_series == len(series)


def test_listing_and_stat_details(ctx):
    s = ctx.server("--series-size-delay", "0")
    m = ctx.mount(s)
    root = m.mountpoint
    # ls -f shows our order: sorted, generated files in their place.
    for d in (root, os.path.join(root, SARCOMA), os.path.join(root, SARCOMA, "STS_003")):
        names = [x for x in run(["ls", "-f", d]).stdout.splitlines() if x not in (".", "..")]
        assert names == sorted(names, key=lambda x: x.encode()), names
    sts = os.path.join(root, SARCOMA, "STS_001")
    study = os.path.join(sts, dirs(sts)[0])
    rec = s.get_json("getPatientStudy", Collection=SARCOMA, PatientID="STS_001")[0]
    # mtimes come from the records: StudyDate for studies, TimeStamp for series.
    assert time.strftime("%Y-%m-%d", time.gmtime(os.stat(study).st_mtime)) == \
        rec["StudyDate"][:10]
    ser = os.path.join(study, dirs(study)[0])
    uid = os.getxattr(ser, "user.tcia.series_uid").decode()
    srec = s.get_json("getSeries", SeriesInstanceUID=uid)[0]
    assert time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(os.stat(ser).st_mtime)) == \
        srec["TimeStamp"][:19]
    for p in (root, study, ser):
        st = os.stat(p)
        assert (st.st_mode & 0o777) == 0o555 and st.st_uid == os.getuid()
    st = os.stat(os.path.join(study, "study.json"))
    assert (st.st_mode & 0o777) == 0o444


def test_names_twins_and_uid_lookup(ctx):
    s = ctx.server("--series-size-delay", "0")
    m = ctx.mount(s)
    pdir = os.path.join(m.mountpoint, SARCOMA, "STS_003")
    studies = s.get_json("getPatientStudy", Collection=SARCOMA, PatientID="STS_003")
    names = dirs(pdir)
    # Same date and description: two folders, told apart by their UID tails.
    want = sorted("2005-05-05 MRI BOTH LEGS-" + x["StudyInstanceUID"][-5:] for x in studies)
    assert names == want, (names, want)
    # Two series whose UIDs share the last five digits: both get the full UID.
    twin = [x for x in s.get_json("getSeries", PatientID="STS_003") if x["SeriesNumber"] == 9]
    sdir = os.path.join(pdir, [n for n in names if n.endswith(twin[0]["StudyInstanceUID"][-5:])][0])
    got = [n for n in dirs(sdir) if n.startswith("9 MR")]
    assert sorted(got) == sorted("9 MR COR STIR-" + x["SeriesInstanceUID"] for x in twin), got
    # Bare UIDs resolve, though they are not listed.
    for st in studies:
        p = os.path.join(pdir, st["StudyInstanceUID"])
        assert os.path.isdir(p) and os.path.exists(os.path.join(p, "study.json"))
        assert read_json_file(os.path.join(p, "study.json")) == st
    assert not any(n in names for n in (x["StudyInstanceUID"] for x in studies))
    p = os.path.join(sdir, twin[0]["SeriesInstanceUID"], "series.json")
    assert read_json_file(p)["SeriesInstanceUID"] == twin[0]["SeriesInstanceUID"]
    # Stable: a remount (fresh process, same answers) gives the same names.
    ctx.unmount(m)
    m2 = ctx.mount(s)
    assert dirs(os.path.join(m2.mountpoint, SARCOMA, "STS_003")) == names
    # Over-long and hostile descriptions are cut and cleaned, never rejected.
    sts2 = os.path.join(m2.mountpoint, SARCOMA, "STS_002")
    st2 = os.path.join(sts2, dirs(sts2)[0])
    for n in dirs(st2):
        assert len(n.encode()) <= 255 and "/" not in n
    assert any(n.startswith("1 MR Séquence T1 µ-coupe 脚-") for n in dirs(st2))


def test_naming_uid(ctx):
    s = ctx.server("--series-size-delay", "0")
    m = ctx.mount(s, options=["naming=uid"])
    pdir = os.path.join(m.mountpoint, SARCOMA, "STS_003")
    studies = s.get_json("getPatientStudy", Collection=SARCOMA, PatientID="STS_003")
    assert dirs(pdir) == sorted(x["StudyInstanceUID"] for x in studies)
    for st in studies:
        sdir = os.path.join(pdir, st["StudyInstanceUID"])
        series = s.get_json("getSeries", StudyInstanceUID=st["StudyInstanceUID"])
        assert dirs(sdir) == sorted(x["SeriesInstanceUID"] for x in series)


def test_hostile_names_list_fine(ctx):
    s = ctx.server("--series-size-delay", "0")
    m = ctx.mount(s)
    coll = os.path.join(m.mountpoint, "Odd_Names_Collection")
    assert dirs(coll) == ["_dot_", "_dotdot_", "a_b", "tab_here"]
    assert os.getxattr(coll, "user.tcia.collection") == b"Odd/Names\x07Collection"
    for pid, api_id in (("_dot_", "."), ("_dotdot_", ".."), ("a_b", "a/b"),
                        ("tab_here", "tab\there")):
        pdir = os.path.join(coll, pid)
        assert os.getxattr(pdir, "user.tcia.patient_id") == api_id.encode()
        assert read_json_file(os.path.join(pdir, "patient.json"))["PatientId"] == api_id
        (study,) = dirs(pdir)
        series = dirs(os.path.join(pdir, study))[0]
        assert series.startswith("1 CT .._.._etc_passwd-"), series
        rj = read_json_file(os.path.join(pdir, study, series, "series.json"))
        assert rj["SeriesDescription"] == "../../etc/passwd"


def test_probes_and_foreign_json_make_no_request(ctx):
    s = ctx.server()
    m = ctx.mount(s)
    mp = m.mountpoint
    # At the top, on a fresh mount: nothing at all is asked.
    for p in (".hidden", ".Trash-0", "desktop.ini", "autorun.inf", "x.json", ".git/HEAD"):
        assert not os.path.exists(os.path.join(mp, p)), p
    assert api_requests(s) == [], api_requests(s)
    # Deeper: once the folders on the way are known, probes in them cost nothing more.
    os.listdir(os.path.join(mp, "Lung-Phantom-CT", "LPC-001"))
    n = len(api_requests(s))
    for p in ("Lung-Phantom-CT/.directory", "Lung-Phantom-CT/desktop.ini",
              "Lung-Phantom-CT/autorun.inf", "Lung-Phantom-CT/.DS_Store",
              "Lung-Phantom-CT/Thumbs.db", "Lung-Phantom-CT/.git/config",
              "Lung-Phantom-CT/other.json", "Lung-Phantom-CT/LPC-001/collection.json",
              "Lung-Phantom-CT/LPC-001/.hidden", "Lung-Phantom-CT/LPC-001/series.json",
              "Lung-Phantom-CT/LPC-001/x/study.json"):
        assert not os.path.exists(os.path.join(mp, p)), p
    assert len(api_requests(s)) == n, api_requests(s)[n:]
    # A missing patient in a listed collection costs nothing more, and stays missing.
    os.listdir(os.path.join(mp, "Lung-Phantom-CT"))
    n = len(api_requests(s))
    for _ in range(3):
        assert not os.path.exists(os.path.join(mp, "Lung-Phantom-CT", "NOBODY"))
    assert len(api_requests(s)) == n


def test_writes_are_erofs_everywhere(ctx):
    s = ctx.server("--series-size-delay", "0")
    m = ctx.mount(s)
    pdir = os.path.join(m.mountpoint, "Lung-Phantom-CT", "LPC-001")
    pj = os.path.join(pdir, "patient.json")
    for cmd in (["touch", os.path.join(pdir, "new")], ["mkdir", os.path.join(pdir, "d")],
                ["rm", "-f", pj], ["mv", pj, os.path.join(pdir, "x")],
                ["sh", "-c", "echo hi > '%s'" % pj], ["sh", "-c", "echo hi >> '%s'" % pj],
                ["rmdir", os.path.join(pdir, dirs(pdir)[0])],
                ["setfattr", "-n", "user.x", "-v", "1", pdir]):
        r = run(cmd, check=False)
        assert r.returncode != 0, cmd
        assert "Read-only file system" in r.stderr or "not found" in r.stderr, (cmd, r.stderr)
    try:
        os.setxattr(pdir, "user.tcia.x", b"1")
        raise TestFailure("setxattr worked")
    except OSError as e:
        assert e.errno == 30     # EROFS


def test_xattrs(ctx):
    s = ctx.server("--series-size-delay", "0")
    m = ctx.mount(s)
    coll = os.path.join(m.mountpoint, "Lung-Phantom-CT")
    pdir = os.path.join(coll, "LPC-002")
    sdir = os.path.join(pdir, dirs(pdir)[0])
    rdir = os.path.join(sdir, dirs(sdir)[0])
    study = s.get_json("getPatientStudy", Collection="Lung-Phantom-CT", PatientID="LPC-002")[0]
    assert os.listxattr(coll) == ["user.tcia.collection"]
    assert os.listxattr(pdir) == ["user.tcia.collection", "user.tcia.patient_id"]
    assert os.listxattr(rdir) == ["user.tcia.collection", "user.tcia.patient_id",
                                  "user.tcia.study_uid", "user.tcia.series_uid",
                                  "user.tcia.file_size", "user.tcia.image_count"]
    srec = s.get_json("getSeries", SeriesInstanceUID=os.getxattr(
        rdir, "user.tcia.series_uid").decode())[0]
    assert int(os.getxattr(rdir, "user.tcia.file_size")) == srec["FileSize"]
    assert int(os.getxattr(rdir, "user.tcia.image_count")) == srec["ImageCount"]
    assert os.getxattr(sdir, "user.tcia.study_uid").decode() == study["StudyInstanceUID"]
    assert os.getxattr(os.path.join(sdir, "study.json"), "user.tcia.patient_id") == b"LPC-002"
    assert os.listxattr(m.mountpoint) == []
    try:
        os.getxattr(coll, "user.tcia.series_uid")
        raise TestFailure("a series UID on a collection")
    except OSError as e:
        assert e.errno == 61     # ENODATA


def test_a_warm_ls_l_does_not_ask_for_acls_again(ctx):
    """ls -l asks every file for its ACLs and its security label: on a mount only its
    user can look at, the kernel keeps the ACLs' answer (there are none), so a warm
    ls -l costs one request a file (the label), not three. With allow_other it would
    cost others a request per folder of a walk instead: there, nothing is kept."""
    s = ctx.server("--series-size-delay", "0")
    for opts, shared in ((["debug"], False), (["debug", "allow_other"], True)):
        m = ctx.mount(s, options=opts)
        coll = os.path.join(m.mountpoint, "Lung-Phantom-CT")
        run(["ls", "-l", coll])
        run(["ls", "-l", coll])
        before = m.log().count("opcode: GETXATTR")
        run(["ls", "-l", coll])
        asked = m.log().count("opcode: GETXATTR") - before
        n = len([e for e in os.listdir(coll) if not e.startswith(".")]) + 1   # and itself
        # The label, and where nothing is kept the ACL (and a folder's default ACL).
        assert asked >= 2 * n if shared else asked == n, (opts, asked, n)
        assert os.getxattr(coll, "user.tcia.collection") == b"Lung-Phantom-CT"
        ctx.unmount(m)


def test_concurrent_listers_share_requests(ctx):
    s = ctx.server()
    s.fault(kind="delay", endpoint="getPatient", seconds=0.5, times=1)
    m = ctx.mount(s)
    coll = os.path.join(m.mountpoint, "CT COLONOGRAPHY")
    os.listdir(m.mountpoint)
    procs = [subprocess.Popen(["ls", coll], stdout=subprocess.PIPE, text=True)
             for _ in range(16)]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len(set(outs)) == 1 and "collection.json" in outs[0]
    assert len(s.requests("getPatient")) == 1


def test_server_gone(ctx):
    s = ctx.server("--series-size-delay", "0")
    m = ctx.mount(s, options=["timeout=2", "retries=1"])
    coll = os.path.join(m.mountpoint, "CT COLONOGRAPHY")
    walked = run(["find", coll]).stdout
    ser = [l for l in walked.splitlines() if l.endswith("series.json")][0]
    with open(ser) as f:
        cached = f.read()
    s.stop()
    # What was seen is still there…
    assert run(["find", coll]).stdout == walked
    with open(ser) as f:
        assert f.read() == cached
    # …and what was not fails within the bound, with a log line naming the URL.
    t0 = time.monotonic()
    r = run(["ls", os.path.join(m.mountpoint, "Lung-Phantom-CT")], check=False)
    dt = time.monotonic() - t0
    assert r.returncode != 0 and "Input/output error" in r.stderr, r.stderr
    assert dt < 2 * 2 + 3, dt
    assert "getPatient?Collection=Lung-Phantom-CT" in m.log()


def test_remount_browses_from_disk(ctx):
    s = ctx.server("--series-size-delay", "0")
    cache = ctx.path("cache")
    m = ctx.mount(s, cache_dir=cache)
    walked = run(["find", os.path.join(m.mountpoint, SARCOMA)]).stdout
    ctx.unmount(m)
    n = len(api_requests(s))
    s.stop()
    # The answers on disk are still fresh: a new mount browses them without the network.
    m2 = ctx.mount(api=s.url, cache_dir=cache, options=["timeout=2", "retries=0"])
    assert run(["find", os.path.join(m2.mountpoint, SARCOMA)]).stdout == \
        walked.replace(m.mountpoint, m2.mountpoint)
    assert os.listdir(os.path.join(cache, "meta"))
    assert len(api_requests(s)) == n


def test_sighup_drops_cached_metadata(ctx):
    s = ctx.server()
    m = ctx.mount(s)
    os.listdir(m.mountpoint)
    os.listdir(m.mountpoint)
    assert len(s.requests("getCollectionValues")) == 1
    m.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "SIGHUP" not in m.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.listdir(m.mountpoint)
    assert len(s.requests("getCollectionValues")) == 2
    assert m.proc.poll() is None      # SIGHUP refreshes; it does not unmount
    ctx.unmount(m)


def test_licence_follows_the_collection_load(ctx):
    """collection.json's licence (a pass over every series of the collection) is kept for
    the load it came from; a new load (here after SIGHUP) brings the licence the archive
    now says to collection.json and CITATION.txt, though the kernel had both files'
    attributes and pages."""
    s = ctx.server("--series-size-delay", "0")
    coll = "Lung-Phantom-CT"
    recs = s.get_json("getSeries", Collection=coll)
    m = ctx.mount(s)
    cj = os.path.join(m.mountpoint, coll, "collection.json")
    cite = os.path.join(m.mountpoint, coll, "CITATION.txt")
    assert read_json_file(cj)["LicenseName"] == recs[0]["LicenseName"]
    with open(cite) as f:
        assert recs[0]["LicenseName"] in f.read()
    assert "Changed Licence" not in recs[0]["LicenseName"]
    for r in recs:
        r["LicenseName"] = "Changed Licence 2.0"
    body = ctx.path("series.json")
    with open(body, "w") as f:
        json.dump(recs, f)
    s.fault(kind="body", endpoint="getSeries", path=body)
    m.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "SIGHUP" not in m.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert read_json_file(cj)["LicenseName"] == "Changed Licence 2.0"
    with open(cite) as f:
        assert "Changed Licence 2.0" in f.read()
    ctx.unmount(m)


def test_rendered_files_follow_a_refresh(ctx):
    """Past meta_ttl, a look loads again, and the kernel's copy of a rendered file goes
    with it: its attributes time out with the TTL and its pages are not kept across
    opens, so a licence changed to another of the same length shows too."""
    s = ctx.server("--series-size-delay", "0")
    coll = "Lung-Phantom-CT"
    recs = s.get_json("getSeries", Collection=coll)
    m = ctx.mount(s, options=["meta_ttl=2"])
    cj = os.path.join(m.mountpoint, coll, "collection.json")
    old = read_json_file(cj)["LicenseName"]
    assert old == recs[0]["LicenseName"]
    new = "X" * len(old)
    for r in recs:
        r["LicenseName"] = new
    body = ctx.path("series.json")
    with open(body, "w") as f:
        json.dump(recs, f)
    s.fault(kind="body", endpoint="getSeries", path=body)
    size = os.stat(cj).st_size
    time.sleep(2.5)
    assert read_json_file(cj)["LicenseName"] == new
    assert os.stat(cj).st_size == size
    ctx.unmount(m)
