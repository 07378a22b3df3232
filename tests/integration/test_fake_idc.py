# SPDX-License-Identifier: MIT
# The fake IDC is what ../shared/docs/idc-api.md says IDC serves, over real HTTP: the API's
# answers and errors, /sql on an SQLite copy of `index` with IDC's clamp, S3 listings paged
# in XML with exact sizes, objects with Range, and the quirks (a stray object, a revised
# series' old folder, NULL fields, one PatientID in two collections, faults).

import json
import os
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

import pydicom

from harness import TestFailure, run

S3 = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def http(method, url, body=None, headers=None):
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def sql(s, query, max_rows=None):
    body = {"sql": query}
    if max_rows is not None:
        body["max_rows"] = max_rows
    status, _, out = http("POST", s.url + "/sql", body, {"Content-Type": "application/json"})
    return status, json.loads(out)


def rows(s, query, max_rows=10000):
    status, out = sql(s, query, max_rows)
    if status != 200:
        raise TestFailure("sql %s: %d %s" % (query, status, out))
    return out["rows"]


def listing(s, bucket, prefix, token=None):
    q = {"list-type": "2", "prefix": prefix}
    if token:
        q["continuation-token"] = token
    status, _, body = http("GET", "%s/%s/?%s" % (s.base, bucket, urllib.parse.urlencode(q)))
    assert status == 200, (status, body[:200])
    return ET.fromstring(body)


def list_all(s, bucket, prefix):
    """Every (key, size) under prefix, page by page; and the number of pages."""
    out, token, pages = [], None, 0
    while True:
        root = listing(s, bucket, prefix, token)
        pages += 1
        for c in root.findall(S3 + "Contents"):
            out.append((c.find(S3 + "Key").text, int(c.find(S3 + "Size").text)))
        if root.find(S3 + "IsTruncated").text != "true":
            return out, pages
        token = root.find(S3 + "NextContinuationToken").text


def test_version_and_collections(ctx):
    s = ctx.idc_server()
    status, _, body = http("GET", s.url + "/version")
    v = json.loads(body)
    assert status == 200 and v["idc_version"] == "v25" and v["api_version"].startswith("3."), v
    status, _, body = http("GET", s.url + "/collections")
    colls = {c["collection_id"]: c for c in json.loads(body)}
    assert colls["tcga_luad"]["collection_name"] == "TCGA-LUAD", colls
    for c in colls.values():
        assert set(c) == {"collection_id", "collection_name", "cancer_types",
                          "tumor_locations", "species", "subjects", "supporting_data",
                          "description"}, c
    status, _, body = http("GET", s.url + "/collections/nlst")
    d = json.loads(body)
    assert status == 200 and d["series"] == 2 and d["instances"] == 1503, d
    assert http("GET", s.url + "/collections/nope")[0] == 404
    # A new release, as a control: /version says so from then on.
    http("POST", s.base + "/_fake/version", {"idc_version": "v26"})
    assert json.loads(http("GET", s.url + "/version")[2])["idc_version"] == "v26"


def test_sql_answers_and_errors_as_idc(ctx):
    s = ctx.idc_server()
    status, out = sql(s, 'SELECT collection_id, count(*) AS n FROM "index" GROUP BY 1 '
                         "ORDER BY 1")
    assert status == 200 and out["columns"] == ["collection_id", "n"], out
    assert out["rows"] == [{"collection_id": "cptac_ccrcc", "n": 1},
                           {"collection_id": "nlst", "n": 2},
                           {"collection_id": "tcga_luad", "n": 6}], out
    assert out["max_rows"] == 5000 and out["truncated"] is False   # the default
    # max_rows is capped at 10,000, silently; truncated says there was more.
    many = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 12000) "
            "SELECT x FROM c")
    status, out = sql(s, many, 50000)
    assert status == 200 and out["max_rows"] == 10000 and out["row_count"] == 10000, \
        {k: out[k] for k in ("max_rows", "row_count", "truncated")}
    assert out["truncated"] is True
    # Errors: 400 invalid_query for what is not one SELECT, 422 for a body without "sql".
    for bad in ('DELETE FROM "index"', 'SELECT 1; SELECT 2', "SELEC nonsense",
                'SELECT * FROM "index" WHERE', "DROP TABLE \"index\""):
        status, out = sql(s, bad)
        assert status == 400 and out["error"]["code"] == "invalid_query", (bad, status, out)
    status, _, body = http("POST", s.url + "/sql", {"filters": {"collection_id": ["nlst"]}},
                           {"Content-Type": "application/json"})
    assert status == 422 and "detail" in json.loads(body), (status, body)
    # A column neither grouped nor aggregated is refused, as IDC's engine (DuckDB) refuses
    # it; SQLite alone would pick any row's value.
    status, out = sql(s, 'SELECT PatientID, collection_id, count(*) AS n FROM "index" '
                         "GROUP BY PatientID ORDER BY PatientID")
    assert status == 400 and out["error"]["code"] == "invalid_query", (status, out)
    assert 'column "collection_id" must appear in the GROUP BY' in out["error"]["message"], out
    status, out = sql(s, 'SELECT PatientID, collection_id AS c, count(*) AS n FROM "index" '
                         "WHERE PatientID <> 'a,b' GROUP BY PatientID, collection_id ORDER BY 1, 2")
    # One PatientID in two collections is two groups.
    assert status == 200 and out["row_count"] == 7, out
    assert [r["c"] for r in out["rows"] if r["PatientID"] == "LUNG1-001"] == ["nlst",
                                                                            "tcga_luad"], out
    # The table is whole after all that.
    assert rows(s, 'SELECT count(*) AS n FROM "index"') == [{"n": 9}]


def test_sql_rows_carry_the_index_columns(ctx):
    s = ctx.idc_server()
    r = rows(s, 'SELECT * FROM "index" ORDER BY SeriesInstanceUID')
    assert len(r) == 9
    for row in r:
        for col in ("collection_id", "PatientID", "StudyInstanceUID", "SeriesInstanceUID",
                    "Modality", "instanceCount", "series_size_MB", "aws_bucket",
                    "crdc_series_uuid", "license_short_name", "source_DOI"):
            assert col in row, (col, row)
        assert isinstance(row["instanceCount"], int) and isinstance(row["series_size_MB"],
                                                                    float), row
        assert row["series_aws_url"].endswith("/*"), row
    # NULL fields arrive as null; one PatientID lives in two collections.
    assert any(x["BodyPartExamined"] is None for x in r)
    assert any(x["Manufacturer"] is None for x in r)
    assert {x["collection_id"] for x in r if x["PatientID"] == "LUNG1-001"} == {"tcga_luad",
                                                                                 "nlst"}
    # A patient ID with a quote and "--", found with standard SQL quoting, and only it.
    pid = "QA-O'NEIL--01"
    got = rows(s, "SELECT PatientID FROM \"index\" WHERE PatientID = '%s'"
               % pid.replace("'", "''"))
    assert got == [{"PatientID": pid}], got
    # Keyset pages cover every series once.
    seen, last = [], ""
    while True:
        page = rows(s, "SELECT SeriesInstanceUID FROM \"index\" WHERE SeriesInstanceUID > '%s'"
                       " ORDER BY SeriesInstanceUID LIMIT 4" % last)
        if not page:
            break
        seen += [p["SeriesInstanceUID"] for p in page]
        last = seen[-1]
    assert seen == [x["SeriesInstanceUID"] for x in r]


def test_listings_are_paged_with_exact_sizes(ctx):
    s = ctx.idc_server("--page-size", "100")
    big = rows(s, 'SELECT * FROM "index" WHERE instanceCount = 1500')[0]
    keys, pages = list_all(s, big["aws_bucket"], big["crdc_series_uuid"] + "/")
    assert len(keys) == 1500 and pages == 15, (len(keys), pages)
    assert len({k for k, _ in keys}) == 1500
    assert all(k.endswith(".dcm") for k, _ in keys)
    # Sizes are the objects' own; series_size_MB is their sum in decimal MB.
    total = sum(n for _, n in keys)
    assert abs(total / 1e6 - big["series_size_MB"]) < 1e-6, (total, big["series_size_MB"])
    status, _, body = http("GET", "%s/%s/%s" % (s.base, big["aws_bucket"], keys[7][0]))
    assert status == 200 and len(body) == keys[7][1]
    # A bad token, a bucket that does not exist, a listing of another type.
    status, _, body = http("GET", "%s/%s/?list-type=2&prefix=x&continuation-token=zz"
                           % (s.base, big["aws_bucket"]))
    assert status == 400 and b"InvalidArgument" in body
    assert http("GET", s.base + "/no-such-bucket/?list-type=2")[0] == 404
    assert http("GET", "%s/%s/?prefix=x" % (s.base, big["aws_bucket"]))[0] == 400


def test_stray_objects_and_revised_series(ctx):
    s = ctx.idc_server()
    r = rows(s, 'SELECT * FROM "index"')
    strays = []
    for row in r:
        keys, _ = list_all(s, row["aws_bucket"], row["crdc_series_uuid"] + "/")
        dcm = [k for k, _ in keys if k.endswith(".dcm")]
        assert len(dcm) == row["instanceCount"], row
        strays += [k for k, _ in keys if not k.endswith(".dcm")]
    assert len(strays) == 1, strays
    revised = [x for x in r if x["series_revised_idc_version"] != x["series_init_idc_version"]]
    assert len(revised) == 1
    # The old folder stays in the bucket, with what the series held before; the index
    # names only the new one.
    all_keys, _ = list_all(s, revised[0]["aws_bucket"], "")
    folders = {k.split("/")[0] for k, _ in all_keys}
    assert folders - {x["crdc_series_uuid"] for x in r}, "no old folder"


def test_objects_are_dicom_and_honour_ranges(ctx):
    s = ctx.idc_server()
    row = rows(s, "SELECT * FROM \"index\" WHERE Modality = 'MR'")[0]
    keys, _ = list_all(s, row["aws_bucket"], row["crdc_series_uuid"] + "/")
    url = "%s/%s/%s" % (s.base, row["aws_bucket"], keys[0][0])
    status, _, body = http("GET", url)
    path = ctx.path("one.dcm")
    with open(path, "wb") as f:
        f.write(body)
    ds = pydicom.dcmread(path)
    assert ds.SeriesInstanceUID == row["SeriesInstanceUID"] and ds.PatientID == row["PatientID"]
    assert run(["dcmdump", "-q", path], check=False).returncode == 0
    status, h, part = http("GET", url, headers={"Range": "bytes=128-131"})
    assert status == 206 and part == b"DICM" and h["Content-Range"] == \
        "bytes 128-131/%d" % len(body), (status, h, part)
    status, h, part = http("GET", url, headers={"Range": "bytes=-10"})
    assert status == 206 and part == body[-10:]
    assert http("GET", url, headers={"Range": "bytes=%d-" % len(body)})[0] == 416
    assert http("GET", url + "x")[0] == 404


def test_faults_and_request_log(ctx):
    s = ctx.idc_server()
    http("POST", s.base + "/_fake/faults", {"kind": "503", "endpoint": "sql", "times": 2})
    assert sql(s, "SELECT 1 AS x")[0] == 503
    assert sql(s, "SELECT 1 AS x")[0] == 503
    assert sql(s, "SELECT 1 AS x") == (200, {"columns": ["x"], "rows": [{"x": 1}],
                                             "row_count": 1, "truncated": False,
                                             "max_rows": 5000})
    row = rows(s, 'SELECT * FROM "index" LIMIT 1')[0]
    prefix = row["crdc_series_uuid"] + "/"
    honest, _ = list_all(s, row["aws_bucket"], prefix)
    http("POST", s.base + "/_fake/faults", {"kind": "lie", "endpoint": "list", "by": 3,
                                            "times": 1})
    lying, _ = list_all(s, row["aws_bucket"], prefix)
    assert [n + 3 for _, n in honest] == [n for _, n in lying]
    # An object that never ends: more than it is, until the client stops reading.
    http("POST", s.base + "/_fake/faults", {"kind": "endless", "endpoint": "object"})
    url = "%s/%s/%s" % (s.base, row["aws_bucket"], honest[0][0])
    with urllib.request.urlopen(url, timeout=30) as r:
        assert len(r.read(10 * honest[0][1])) == 10 * honest[0][1]
    http("POST", s.base + "/_fake/reset", b"")
    kinds = [e["endpoint"] for e in s.requests()]
    assert {"sql", "list", "object"} <= set(kinds), kinds
    assert [e["status"] for e in s.requests("sql")][:3] == [503, 503, 200]
