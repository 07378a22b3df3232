# SPDX-License-Identifier: MIT
# The views beyond the archive's own tree (issue 9), through the mount and checked
# against the fake's data: facet folders of symbolic links, manifests (.tcia and plain,
# CRLF, duplicates, unknown UIDs, malformed), the CSV tables and CITATION.txt.

import csv
import io
import json
import os
import re
import subprocess

from harness import TestFailure, mounted, run

COLLECTIONS = ["CT COLONOGRAPHY", "Lung-Phantom-CT", "Odd/Names\x07Collection",
               "Soft-tissue-Sarcoma"]
FACETS = {".by-modality": "Modality", ".by-bodypart": "BodyPartExamined",
          ".by-manufacturer": "Manufacturer"}


def sanitize(name):
    # tree_sanitize_name for the fake's values: '/' and control characters become '_'.
    return re.sub(r"[/\x00-\x1f\x7f]", "_", name)


def api_requests(s):
    return [e for e in s.requests() if e.get("endpoint")]


def series_uid(path):
    return os.getxattr(path, "user.tcia.series_uid").decode()


def test_facets_link_to_exactly_the_matching_series(ctx):
    s = ctx.server()
    m = ctx.mount(s)
    for api in COLLECTIONS:
        coll = os.path.join(m.mountpoint, sanitize(api))
        records = s.get_json("getSeries", Collection=api)
        listing = os.listdir(coll)
        for d in FACETS:
            assert d in listing, (d, listing)
        for d, key in FACETS.items():
            want = {}
            for r in records:
                want.setdefault(sanitize(r[key]) if r.get(key) else "_unknown",
                                set()).add(r["SeriesInstanceUID"])
            got = {}
            for value in os.listdir(os.path.join(coll, d)):
                vdir = os.path.join(coll, d, value)
                for link in os.listdir(vdir):
                    p = os.path.join(vdir, link)
                    assert os.path.islink(p), p
                    target = os.readlink(p)
                    # Relative, to the canonical folder, inside the collection.
                    assert target.startswith("../../") and not os.path.isabs(target), target
                    real = os.path.realpath(p)
                    assert real.startswith(coll + "/"), (p, real)
                    assert os.path.isdir(real)
                    assert os.lstat(p).st_size == len(target.encode())
                    got.setdefault(value, set()).add(series_uid(real))
            # Every value of the value list has a folder; the series in it are exactly
            # those whose attribute has that value.
            for v in s.get_json({"Modality": "getModalityValues",
                                 "BodyPartExamined": "getBodyPartValues",
                                 "Manufacturer": "getManufacturerValues"}[key],
                                Collection=api):
                if v.get(key):
                    assert sanitize(v[key]) in os.listdir(os.path.join(coll, d)), v
            assert got == want, (api, d, got, want)


def test_facets_cost_no_request_after_a_bulk_load(ctx):
    s = ctx.server("--scale", "50", "--series-size-delay", "0")
    m = ctx.mount(s)
    coll = os.path.join(m.mountpoint, "Scale-Test")
    # A look at one patient loads that patient only; a facet loads the collection's
    # studies and series in bulk, once.
    pat = os.path.join(coll, "SCALE-00007")
    run(["ls", "-l", os.path.join(pat, sorted(os.listdir(pat))[0])])
    ct = os.path.join(coll, ".by-modality", "CT")
    bulk = len(api_requests(s))
    os.listdir(ct)
    assert sorted(e["endpoint"] for e in api_requests(s)[bulk:]) == \
        ["getPatientStudy", "getSeries"], api_requests(s)[bulk:]
    before = len(api_requests(s))
    links = os.listdir(ct)
    assert len(links) == 500, len(links)
    for link in links:
        os.stat(os.path.join(ct, link))     # follows the link to the series folder
    for value in ("CHEST",):
        assert len(os.listdir(os.path.join(coll, ".by-bodypart", value))) == 500
    assert len(api_requests(s)) == before, [e["endpoint"] for e in api_requests(s)[before:]]
    # Listing the values themselves asks the value lists, once each at most, all three
    # at once: one held back, the others are asked for before its answer.
    s.fault(kind="delay", endpoint="getModalityValues", seconds=1.5, times=1)
    os.listdir(os.path.join(coll, ".by-manufacturer"))
    extra = [e["endpoint"] for e in api_requests(s)[before:]]
    assert len(extra) <= 3 and all(e.endswith("Values") for e in extra), extra
    held = s.requests("getModalityValues")[-1]
    assert held["fault"] == "delay", held
    for other in ("getBodyPartValues", "getManufacturerValues"):
        e = s.requests(other)[-1]
        assert e["t"] < held["t"] + held["dt"], (held, e)
    # Nothing was downloaded.
    assert not s.requests("getImage")


def write(path, text, newline="\n"):
    with open(path, "w", newline="") as f:
        f.write(text.replace("\n", newline))
    return path


def test_manifests_link_known_and_list_missing(ctx):
    s = ctx.server()
    sarcoma = s.get_json("getSeries", Collection="Soft-tissue-Sarcoma")
    lung = s.get_json("getSeries", Collection="Lung-Phantom-CT")
    known = [sarcoma[0]["SeriesInstanceUID"], sarcoma[3]["SeriesInstanceUID"],
             lung[1]["SeriesInstanceUID"]]
    unknown = ["1.2.3.4.5.6.7.8.9", "1.2.840.99999.1"]
    tcia = write(ctx.path("my basket.tcia"),
                 "downloadServerUrl=https://nbia.cancerimagingarchive.net/nbia-download/servlet/DownloadServlet\n"
                 "includeAnnotation=true\nnoOfrRetry=4\ndatabasketId=manifest-1600709154662.tcia\n"
                 "manifestVersion=3.0\nListOfSeriesToDownload=\n" +
                 "\n".join([known[0], unknown[0], known[1], known[0], known[2], unknown[1],
                            known[1]]) + "\n", newline="\r\n")
    plain = write(ctx.path("uids.txt"), "# two series\n%s\n\n%s\n" % (known[2], unknown[0]))
    m = ctx.mount(s, options=["manifest=" + tcia, "manifest=" + plain])
    assert "manifests" in os.listdir(m.mountpoint)
    assert sorted(os.listdir(os.path.join(m.mountpoint, "manifests"))) == ["my basket", "uids"]
    d = os.path.join(m.mountpoint, "manifests", "my basket")
    names = os.listdir(d)
    assert "missing.txt" in names
    links = [n for n in names if n != "missing.txt"]
    assert len(links) == 3, names
    got = set()
    for n in links:
        p = os.path.join(d, n)
        assert os.path.islink(p)
        assert os.readlink(p).startswith("../../")
        real = os.path.realpath(p)
        assert os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(real)))) == \
            m.mountpoint, real
        got.add(series_uid(real))
    assert got == set(known), (got, known)
    with open(os.path.join(d, "missing.txt")) as f:
        assert f.read() == "".join(u + "\n" for u in unknown)
    assert os.stat(os.path.join(d, "missing.txt")).st_size == sum(len(u) + 1 for u in unknown)
    # A manifest costs a lookup per collection and per unknown UID, not one per series.
    by_uid = [e for e in s.requests("getSeries") if "SeriesInstanceUID" in e.get("query", "")]
    assert len(by_uid) <= 2 + len(unknown), by_uid
    d2 = os.path.join(m.mountpoint, "manifests", "uids")
    assert len([n for n in os.listdir(d2) if n != "missing.txt"]) == 1
    with open(os.path.join(d2, "missing.txt")) as f:
        assert f.read() == unknown[0] + "\n"
    # Following a link opens the series like its canonical folder does.
    p = os.path.join(d, links[0])
    assert "LICENSE" in os.listdir(p)


def test_malformed_manifest_fails_the_mount_with_its_line(ctx):
    s = ctx.server()
    bad = write(ctx.path("bad.tcia"), "manifestVersion=3.0\nListOfSeriesToDownload=\n"
                "1.2.3\n1.2.three\n")
    mp = ctx.path("mnt-bad")
    os.makedirs(mp)
    for path, where in ((bad, "bad.tcia:4:"), (ctx.path("absent.tcia"), "absent.tcia")):
        r = subprocess.run([ctx.binary, "-f", "-o", "api=%s,cache_dir=%s,manifest=%s"
                            % (s.url, ctx.path("cache-bad"), path), mp],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 1, r
        assert where in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not mounted(mp)
    assert not api_requests(s)


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        text = f.read()
    if os.stat(path).st_size != len(text.encode()):
        raise TestFailure("%s: stat size %d, content %d bytes" % (
            path, os.stat(path).st_size, len(text.encode())))
    return list(csv.DictReader(io.StringIO(text, newline="")))


def as_text(v):
    if isinstance(v, str):
        return v
    if v is None:
        return ""
    return json.dumps(v)


def test_tables_hold_every_record(ctx):
    s = ctx.server()
    m = ctx.mount(s)
    for api in COLLECTIONS:
        coll = os.path.join(m.mountpoint, sanitize(api))
        for table, endpoint, ident, attr in (
                ("series.csv", "getSeries", "SeriesInstanceUID", "user.tcia.series_uid"),
                ("studies.csv", "getPatientStudy", "StudyInstanceUID", "user.tcia.study_uid"),
                ("patients.csv", "getPatient", "PatientId", "user.tcia.patient_id")):
            records = s.get_json(endpoint, Collection=api)
            rows = read_csv(os.path.join(coll, table))
            keys = []
            for r in records:
                keys += [k for k in r if k not in keys]
            with open(os.path.join(coll, table), newline="") as f:
                header = next(csv.reader(f))
            assert header == keys + ["Path"], (table, header)
            assert len(rows) == len(records), (table, len(rows), len(records))
            by_id = {r[ident]: r for r in records}
            for row in rows:
                rec = by_id[row[ident]]
                assert {k: row[k] for k in keys} == \
                    {k: as_text(rec.get(k)) for k in keys}, (row, rec)
                # The last column is the folder, ready to open.
                assert os.path.isdir(row["Path"]), row["Path"]
                assert os.getxattr(row["Path"], attr).decode() == row[ident]
    # The hard case is there: a description with a comma, quotes and a line break.
    rows = read_csv(os.path.join(m.mountpoint, "Odd_Names_Collection", "series.csv"))
    assert 'Say "hi", then\nbye' in [r["SeriesDescription"] for r in rows]
    assert not s.requests("getImage")


def test_tables_keep_numbers_and_nested_values_as_sent(ctx):
    # The catalog keeps each object as sent; the table's cells are that text, numbers
    # included (1.50 stays 1.50, not 1.5), nested values compacted.
    s = ctx.server()
    recs = s.get_json("getSeries", Collection="Lung-Phantom-CT")
    quirks = ', "Quirk": 1.50, "Tiny": 2.5E-7, "Nested": [ 1, {"a" : "b c"} ]'
    text = "[" + ", ".join(json.dumps(r)[:-1] + (quirks if i == 0 else "") + "}"
                           for i, r in enumerate(recs)) + "]"
    body = ctx.path("series.json")
    with open(body, "w") as f:
        f.write(text)
    s.fault(kind="body", endpoint="getSeries", path=body)
    m = ctx.mount(s)
    rows = read_csv(os.path.join(m.mountpoint, "Lung-Phantom-CT", "series.csv"))
    row = [r for r in rows if r["SeriesInstanceUID"] == recs[0]["SeriesInstanceUID"]][0]
    assert (row["Quirk"], row["Tiny"], row["Nested"]) == \
        ("1.50", "2.5E-7", '[1,{"a":"b c"}]'), row
    assert all(r["Quirk"] == "" for r in rows if r is not row)


def test_citation(ctx):
    s = ctx.server()
    m = ctx.mount(s)
    for api in COLLECTIONS:
        coll = os.path.join(m.mountpoint, sanitize(api))
        records = s.get_json("getSeries", Collection=api)
        with open(os.path.join(coll, "CITATION.txt"), encoding="utf-8") as f:
            text = f.read()
        assert os.stat(os.path.join(coll, "CITATION.txt")).st_size == len(text.encode())
        # Fields are single-line: control characters in a value become spaces.
        assert "Collection: " + re.sub(r"[\x00-\x1f\x7f]", " ", api) + "\n" in text
        with open(os.path.join(coll, "collection.json"), encoding="utf-8") as f:
            meta = json.load(f)
        for key in ("CollectionURI", "LicenseName", "LicenseURI"):
            values = {r[key] for r in records}
            for v in values:
                assert v in text, (api, key, v)
            got = meta[key] if isinstance(meta[key], list) else [meta[key]]
            assert set(got) == values, (key, got, values)
        assert "10.1007/s10278-013-9622-7" in text
