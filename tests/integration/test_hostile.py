# SPDX-License-Identifier: MIT
# Hostile API answers (issue 6, item 4): the corpus in tests/hostile/api/ (written by
# make_api.py) served through the fake in place of the real answer, and a gigantic one
# streamed. Each gives either a listing of safe names or a clean errno with a log line;
# the mount survives, nothing appears outside the cache, and a good answer already held
# is not lost to a bad one.

import json
import os
import subprocess
import time

from harness import run

HOSTILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hostile", "api")
BAD = ["deep-list", "deep-field", "object", "bad-utf8", "unterminated", "scalars",
       "duplicate-keys"]


def corpus(name):
    return os.path.abspath(os.path.join(HOSTILE, name))


def ls(path):
    return subprocess.run(["ls", "-a", path], capture_output=True, text=True, timeout=60)


BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


def safe(name):
    b = name.encode("utf-8", "surrogateescape")
    return (0 < len(b) <= 255 and "/" not in name and not name.startswith(".") and
            not any(ord(c) < 0x20 or ord(c) == 0x7f or c in BIDI for c in name))


def test_answers_that_are_not_the_api_give_ebadmsg(ctx):
    s = ctx.server()
    for case in BAD:
        s.reset_faults()
        s.fault(kind="body", endpoint="getCollectionValues",
                path=corpus("getCollectionValues-%s.json" % case))
        m = ctx.mount(s, options=["retries=0"], name="mnt-" + case)
        t0 = time.monotonic()
        r = ls(m.mountpoint)
        assert r.returncode != 0 and "Bad message" in r.stderr, (case, r)
        assert time.monotonic() - t0 < 10, case
        assert "bad answer from TCIA" in m.log(), (case, m.log())
        # The mount lives on, and the next good answer is shown.
        s.reset_faults()
        r = ls(m.mountpoint)
        assert r.returncode == 0 and "Lung-Phantom-CT" in r.stdout, (case, r)
        ctx.unmount(m)


def test_a_bad_answer_does_not_replace_a_good_one(ctx):
    s = ctx.server()
    m = ctx.mount(s, options=["retries=0", "meta_ttl=0"])
    good = ls(m.mountpoint).stdout
    assert "Lung-Phantom-CT" in good
    s.fault(kind="body", endpoint="getCollectionValues",
            path=corpus("getCollectionValues-unterminated.json"))
    r = ls(m.mountpoint)
    assert r.returncode == 0 and r.stdout == good, r
    assert len(s.requests("getCollectionValues")) >= 2     # it did ask again
    assert "bad answer from TCIA" in m.log()
    # On disk too: a new mount (server still lying) is served the good answer kept.
    ctx.unmount(m)
    m2 = ctx.mount(s, options=["retries=0", "meta_ttl=0"], cache_dir=ctx.path("cache2"))
    r = ls(m2.mountpoint)
    assert r.returncode == 0 and r.stdout == good, r
    assert "serving what the catalog has" in m2.log()


def test_hostile_collection_names(ctx):
    s = ctx.server()
    s.fault(kind="body", endpoint="getCollectionValues",
            path=corpus("getCollectionValues-names.json"))
    m = ctx.mount(s)
    names = [n for n in os.listdir(m.mountpoint) if n != "README.txt"]
    assert len(names) == 16, names
    assert all(safe(n) for n in names), names
    got = set()
    for n in names:
        p = os.path.join(m.mountpoint, n)
        assert os.path.isdir(p), n
        got.add(os.getxattr(p, "user.tcia.collection"))
    assert b"L" * 10240 in got and b"../../etc" in got and b"" in got, got
    assert {"_dot_", "_dotdot_", "_empty_", "a_b", "_README.txt", "_manifests",
            "evil_gpj.exe", "_isolate_"} <= set(names)
    assert not os.path.exists(os.path.join(ctx.workdir, "etc"))


def test_hostile_patient_ids_and_wrong_types(ctx):
    s = ctx.server()
    s.fault(kind="body", endpoint="getPatient", path=corpus("getPatient-names.json"))
    m = ctx.mount(s)
    coll = os.path.join(m.mountpoint, "Lung-Phantom-CT")
    names = os.listdir(coll)
    pats = [n for n in names if os.path.isdir(os.path.join(coll, n)) and
            not n.startswith(".")]
    # 16 hostile names + 3 that would hide our files + 42; the object, array, null,
    # true and missing IDs are no patient.
    assert len(pats) == 20, pats
    assert all(safe(n) for n in pats), pats
    assert "42" in pats and "_patients.csv" in pats and "collection.json_" in pats
    # Our own files are still ours.
    for f in ("collection.json", "patients.csv", "CITATION.txt"):
        assert os.path.isfile(os.path.join(coll, f)), f
    rows = run(["cat", os.path.join(coll, "patients.csv")]).stdout
    assert rows.count("\n") >= 21


def test_hostile_series_records(ctx):
    s = ctx.server("--series-size-delay", "0")
    s.fault(kind="body", endpoint="getSeries", path=corpus("getSeries-wrong-types.json"))
    m = ctx.mount(s)
    coll = os.path.join(m.mountpoint, "Lung-Phantom-CT")
    pat = os.path.join(coll, "LPC-001")
    study = os.path.join(pat, sorted(d for d in os.listdir(pat) if d != "patient.json")[0])
    sers = [d for d in os.listdir(study) if d != "study.json"]
    # Eight records with every field of a wrong type, the one whose UID is a path and the
    # one with a NUL in its UID; the two without a usable UID are not shown.
    assert len(sers) == 10, sers
    assert all(safe(n) for n in sers), sers
    for d in sers:
        p = os.path.join(study, d)
        uid = os.getxattr(p, "user.tcia.series_uid").decode()
        with open(os.path.join(p, "series.json")) as f:
            # As the API sent it; the xattr shows an embedded NUL as U+FFFD.
            assert json.load(f)["SeriesInstanceUID"] == uid.replace("\ufffd", "\x00")
    # The tables and facets render; values of the wrong type count as unknown.
    run(["cat", os.path.join(coll, "series.csv")])
    assert "_unknown" in os.listdir(os.path.join(coll, ".by-modality"))
    # The UID that is a path is never used as one: opening the folder is an error and
    # nothing is created outside the store.
    evil = [d for d in sers if "evil" in d]
    assert len(evil) == 1, sers
    r = ls(os.path.join(study, evil[0]))
    assert r.returncode != 0 and "Input/output error" in r.stderr, r
    assert "not a DICOM UID" in m.log()
    assert not os.path.exists("/tmp/tciafs-evil")
    # The UID with a NUL keeps all of itself (U+FFFD for the NUL): never fetched as the
    # real series whose UID it starts with. Its CollectionURI's line break stays out of
    # CITATION.txt's lines.
    nul = [d for d in sers if "\ufffd" in os.getxattr(os.path.join(study, d),
                                                     "user.tcia.series_uid").decode()]
    assert len(nul) == 1, sers
    r = ls(os.path.join(study, nul[0]))
    assert r.returncode != 0 and "Input/output error" in r.stderr, r
    assert [e for e in s.requests("getImage")] == []
    with open(os.path.join(coll, "CITATION.txt")) as f:
        assert "\nHow to cite: forged" not in f.read()
    assert ls(m.mountpoint).returncode == 0


def test_gigantic_answer_is_refused_with_bounded_memory(ctx):
    s = ctx.server()
    s.fault(kind="huge", endpoint="getPatient", mb=300)
    m = ctx.mount(s, options=["retries=0"])
    t0 = time.monotonic()
    r = ls(os.path.join(m.mountpoint, "Lung-Phantom-CT"))
    assert r.returncode != 0, r
    assert time.monotonic() - t0 < 60
    # Memory stays bounded: the answer is cut off at the cap (256 MiB), not held whole
    # and then parsed into a tree several times its size.
    with open("/proc/%d/status" % m.proc.pid) as f:
        rss = [int(line.split()[1]) for line in f if line.startswith("VmHWM:")][0]
    assert rss < 700 * 1024, rss
    assert "File too large" in r.stderr and "File too large" in m.log(), (r, m.log())
    assert ls(m.mountpoint).returncode == 0
