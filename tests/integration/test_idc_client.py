# SPDX-License-Identifier: MIT
# idc.c against the fake IDC over real HTTP (build/idc-query): the release and the
# collections, series in keyset pages, values from paths escaped in the SQL sent,
# listings paged past 1,000 keys with strays left out, 503 bursts retried, and answers
# that are not IDC's refused.

import json
import os
import subprocess

EBADMSG = 74


def query(s, *args, retries=2):
    binary = os.environ["TCIAFS_IDC_QUERY"]
    r = subprocess.run([binary, "-r", str(retries), s.url, s.base + "/{bucket}"] + list(args),
                       capture_output=True, text=True, timeout=60)
    return r.returncode, (json.loads(r.stdout) if r.returncode == 0 else r.stderr)


def fake_sql(s, sql):
    from test_fake_idc import rows
    return rows(s, sql)


def test_version_and_collections(ctx):
    s = ctx.idc_server()
    assert query(s, "version") == (0, "v25")
    rc, colls = query(s, "collections")
    assert rc == 0 and {"id": "tcga_luad", "name": "TCGA-LUAD"} in colls, colls
    assert len(colls) == 3


def test_series_in_keyset_pages(ctx):
    s = ctx.idc_server()
    keys = fake_sql(s, "SELECT PatientID, StudyInstanceUID, SeriesInstanceUID FROM \"index\""
                       " WHERE collection_id = 'tcga_luad' ORDER BY 1, 2, 3")
    want = [r["SeriesInstanceUID"] for r in keys]
    n0 = len(s.requests("sql"))
    rc, got = query(s, "series", "collection=tcga_luad", "limit=2")
    assert rc == 0 and [g["series_uid"] for g in got] == want, got
    # Pages of two: three full ones, then an empty one says the end.
    assert len(s.requests("sql")) - n0 == len(want) // 2 + 1
    sent = [e["query"]["sql"] for e in s.requests("sql")[n0:]]
    # In patients' order, the second page after the first's last key (no row values).
    k = keys[1]
    assert ("(PatientID > '{0}' OR (PatientID = '{0}' AND (StudyInstanceUID > '{1}' OR "
            "(StudyInstanceUID = '{1}' AND SeriesInstanceUID > '{2}'))))".format(
                k["PatientID"].replace("'", "''"), k["StudyInstanceUID"],
                k["SeriesInstanceUID"]) in sent[1]), sent
    assert all(e["query"]["max_rows"] == 2 for e in s.requests("sql")[n0:])
    # What a series record carries: the seed's names, the row as sent, its files.
    one = [g for g in got if g["patient_id"] == "TCGA-05-4249" and g["body_part"] is None]
    assert len(one) == 1, got
    g = one[0]
    assert g["raw"]["Collection"] == "tcga_luad" and g["raw"]["idc"]["BodyPartExamined"] is None
    assert g["bucket"] == "idc-open-data" and g["uuid"] == g["raw"]["idc"]["crdc_series_uuid"]


def test_a_page_that_does_not_move_on_ends_the_answer(ctx):
    # The same full page, whatever is asked: asking again would never end.
    s = ctx.idc_server()
    page = {"columns": ["PatientID"], "rows": [], "truncated": False, "max_rows": 2}
    page["rows"] = fake_sql(s, 'SELECT * FROM "index" WHERE collection_id = \'tcga_luad\' '
                               "ORDER BY PatientID, StudyInstanceUID, SeriesInstanceUID "
                               "LIMIT 2")
    page["columns"] = list(page["rows"][0])
    page["row_count"] = 2
    path = ctx.path("same-page.json")
    with open(path, "w") as f:
        json.dump(page, f)
    s.fault(kind="body", endpoint="sql", path=path, times=-1)
    n0 = len(s.requests("sql"))
    rc, err = query(s, "series", "collection=tcga_luad", "limit=2")
    assert rc != 0 and "ends where the one before it did" in err, (rc, err)
    assert len(s.requests("sql")) - n0 == 2


def test_values_from_paths_cannot_change_the_query(ctx):
    s = ctx.idc_server()
    rc, got = query(s, "series", "collection=tcga_luad", "patient=QA-O'NEIL--01")
    assert rc == 0 and [g["patient_id"] for g in got] == ["QA-O'NEIL--01"], got
    for hostile in ("x' OR '1'='1", "x' OR 1=1 --", "'; DROP TABLE \"index\"; --"):
        rc, got = query(s, "series", "collection=tcga_luad", "patient=" + hostile)
        assert (rc, got) == (0, []), (hostile, rc, got)
    sent = s.requests("sql")[-1]["query"]["sql"]
    assert "PatientID = '''; DROP TABLE \"index\"; --'" in sent, sent
    assert len(fake_sql(s, 'SELECT * FROM "index"')) == 9


def test_listing_pages_and_strays(ctx):
    s = ctx.idc_server()
    big = fake_sql(s, 'SELECT * FROM "index" WHERE instanceCount = 1500')[0]
    n0 = len(s.requests("list"))
    rc, got = query(s, "list", big["aws_bucket"], big["crdc_series_uuid"])
    assert rc == 0 and len(got["objects"]) == 1500 and got["strays"] == 0
    assert len(s.requests("list")) - n0 == 2           # 1,000 keys a page
    assert sum(o["size"] for o in got["objects"]) == round(big["series_size_MB"] * 1e6)
    strays = 0
    for r in fake_sql(s, 'SELECT * FROM "index"'):
        rc, got = query(s, "list", r["aws_bucket"], r["crdc_series_uuid"])
        assert rc == 0 and len(got["objects"]) == r["instanceCount"], (r, got)
        strays += got["strays"]
    assert strays == 1


def test_503_bursts_are_retried_and_bad_answers_refused(ctx):
    s = ctx.idc_server()
    s.fault(kind="503", endpoint="sql", times=2)
    rc, got = query(s, "series", "collection=nlst")
    assert rc == 0 and len(got) == 2
    assert [e["status"] for e in s.requests("sql")] == [503, 503, 200]
    s.fault(kind="503", endpoint="list", times=-1)
    rc, err = query(s, "list", "idc-open-data", "x", retries=1)
    assert rc != 0 and "503" in err, (rc, err)
    s.reset_faults()
    # An API that answers something else than IDC's JSON: refused, said so.
    plain = ctx.server()
    r = subprocess.run([os.environ["TCIAFS_IDC_QUERY"], plain.url, plain.base + "/{bucket}",
                        "version"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0


def test_objects_are_fetched_at_their_listed_size(ctx):
    s = ctx.idc_server()
    row = fake_sql(s, "SELECT * FROM \"index\" WHERE Modality = 'MR'")[0]
    rc, got = query(s, "list", row["aws_bucket"], row["crdc_series_uuid"])
    obj = got["objects"][0]
    out = ctx.path("one.dcm")
    n0 = len(s.requests("object"))
    assert query(s, "get", row["aws_bucket"], obj["key"], str(obj["size"]), out) == (0, out)
    assert os.path.getsize(out) == obj["size"]
    assert len(s.requests("object")) - n0 == 1
    import pydicom
    assert pydicom.dcmread(out).SeriesInstanceUID == row["SeriesInstanceUID"]
    # Shorter or longer than listed: refused, said so; an endless object is cut off.
    rc, err = query(s, "get", row["aws_bucket"], obj["key"], str(obj["size"] + 1), out)
    assert rc == 5 and "listing gave" in err, (rc, err)
    rc, err = query(s, "get", row["aws_bucket"], obj["key"], str(obj["size"] - 7), out)
    assert rc == 27 and "longer than" in err, (rc, err)
    s.fault(kind="endless", endpoint="object", times=1)
    rc, err = query(s, "get", row["aws_bucket"], obj["key"], str(obj["size"]), out)
    assert rc == 27 and "longer than" in err, (rc, err)


def test_patients_and_studies_are_derived_from_the_series(ctx):
    s = ctx.idc_server()
    rc, pats = query(s, "patients", "collection=tcga_luad", "limit=2")
    assert rc == 0, pats
    assert [p["patient_id"] for p in pats] == sorted(
        r["PatientID"] for r in fake_sql(s, "SELECT DISTINCT PatientID FROM \"index\" WHERE "
                                            "collection_id = 'tcga_luad'"))
    p = [p for p in pats if p["patient_id"] == "QA-O'NEIL--01"][0]
    assert p["collection"] == "tcga_luad" and p["raw"]["PatientId"] == "QA-O'NEIL--01"
    assert p["raw"]["idc"]["studies"] == 1
    rc, studies = query(s, "studies", "collection=tcga_luad", "patient=TCGA-05-4249")
    assert rc == 0 and len(studies) == 1, studies
    st = studies[0]
    assert st["series_count"] == 2 and st["date"] == st["raw"]["StudyDate"], st
    assert st["raw"]["Collection"] == "tcga_luad" and st["patient_id"] == "TCGA-05-4249"
    # One PatientID in two collections is two patients, one in each.
    for coll in ("tcga_luad", "nlst"):
        rc, pats = query(s, "patients", "collection=" + coll)
        assert "LUNG1-001" in [p["patient_id"] for p in pats] and \
            all(p["collection"] == coll for p in pats)
