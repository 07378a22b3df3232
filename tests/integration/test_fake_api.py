# SPDX-License-Identifier: MIT
# The fake TCIA against ../shared/docs/tcia-api.md: each endpoint fetched with curl, its
# field names and JSON types checked against the samples there, and the quirks the doc
# records (empty bodies, PatientId, StudyDesc vs StudyDescription, string sizes, the zip).

import hashlib
import io
import json
import re
import subprocess
import urllib.parse
import zipfile

from harness import TestFailure, run

DATE_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+$")

# The real series record in tcia-api.md §2, field by field: name -> JSON type.
SERIES_TYPES = {
    "SeriesInstanceUID": str, "StudyInstanceUID": str, "Modality": str, "SeriesDate": str,
    "SeriesDescription": str, "BodyPartExamined": str, "SeriesNumber": int,
    "Collection": str, "PatientID": str, "Manufacturer": str, "ManufacturerModelName": str,
    "SoftwareVersions": str, "ImageCount": int, "TimeStamp": str, "LicenseName": str,
    "LicenseURI": str, "CollectionURI": str, "FileSize": int, "DateReleased": str,
    "StudyDesc": str, "StudyDate": str, "ProtocolName": str, "AnnotationsFlag": str,
}
SERIES_ALWAYS = {"SeriesInstanceUID", "StudyInstanceUID", "Modality", "SeriesNumber",
                 "Collection", "PatientID", "ImageCount", "FileSize", "TimeStamp",
                 "DateReleased", "StudyDesc", "StudyDate", "LicenseName", "LicenseURI",
                 "CollectionURI"}
STUDY_TYPES = {
    "StudyInstanceUID": str, "PatientID": str, "StudyDate": str, "StudyDescription": str,
    "PatientAge": str, "SeriesCount": int, "PatientName": str, "PatientSex": str,
    "PatientBirthDate": str, "EthnicGroup": str, "StudyID": str,
    "AdmittingDiagnosesDescription": str, "Collection": str,
    "LongitudinalTemporalEventType": str, "LongitudinalTemporalOffsetFromEvent": int,
}
PATIENT_TYPES = {
    "PatientId": str, "PatientName": str, "PatientSex": str, "PatientBirthDate": str,
    "EthnicGroup": str, "Collection": str, "Phantom": str, "SpeciesDescription": str,
}


def curl(server, endpoint, **params):
    """GET with curl (an ordinary client); returns (status, headers text, body text)."""
    url = server.url + "/" + endpoint
    if params:
        url += "?" + urllib.parse.urlencode(params)
    r = subprocess.run(["curl", "-sS", "-D", "/dev/stderr", "-w", "%{stderr}%{http_code}",
                        url], capture_output=True, timeout=60)
    if r.returncode != 0:
        raise TestFailure("curl %s: exit %d %s" % (url, r.returncode, r.stderr))
    err = r.stderr.decode("latin-1")
    head, _, code = err.rpartition("\r\n\r\n")
    return int(code), head, r.stdout.decode("utf-8")


def curl_bytes(server, endpoint, path, **params):
    url = server.url + "/" + endpoint + "?" + urllib.parse.urlencode(params)
    r = run(["curl", "-sS", "-D", path + ".headers", "-o", path, "-w", "%{http_code}", url])
    with open(path, "rb") as f, open(path + ".headers") as h:
        return int(r.stdout), h.read(), f.read()


def curl_json(server, endpoint, **params):
    code, _, body = curl(server, endpoint, **params)
    if code != 200:
        raise TestFailure("%s: HTTP %d" % (endpoint, code))
    return json.loads(body) if body.strip() else None


def check_types(rec, types, what):
    for k, v in rec.items():
        if v is None:
            raise TestFailure("%s: %s is null; missing attributes must be left out" % (what, k))
        if k in types and not isinstance(v, types[k]):
            raise TestFailure("%s: %s is %s, want %s" % (what, k, type(v).__name__,
                                                         types[k].__name__))
        if isinstance(v, bool):
            raise TestFailure("%s: %s is a boolean" % (what, k))


def test_collection_values(ctx):
    s = ctx.server()
    data = curl_json(s, "getCollectionValues")
    assert isinstance(data, list) and len(data) >= 3
    for el in data:
        assert list(el) == ["Collection"] and isinstance(el["Collection"], str), el
    names = [el["Collection"] for el in data]
    assert any(" " in n for n in names), names
    assert any("/" in n for n in names), names


def test_value_endpoints(ctx):
    s = ctx.server()
    mods = curl_json(s, "getModalityValues", Collection="Soft-tissue-Sarcoma")
    assert mods == [{"Modality": "MR"}], mods
    parts = curl_json(s, "getBodyPartValues", Collection="CT COLONOGRAPHY")
    # Some elements lack the key (tcia-api.md §2).
    assert {"BodyPartExamined": "COLON"} in parts and {} in parts, parts
    manu = curl_json(s, "getManufacturerValues", Collection="Soft-tissue-Sarcoma",
                     Modality="MR")
    assert {"Manufacturer": "SIEMENS / MIM Software"} in manu, manu
    for el in manu:
        assert list(el) == ["Manufacturer"], el
    parts = curl_json(s, "getBodyPartValues", Collection="Lung-Phantom-CT", Modality="CT")
    assert parts == [{"BodyPartExamined": "CHEST"}], parts


def test_patient(ctx):
    s = ctx.server()
    pats = curl_json(s, "getPatient", Collection="Soft-tissue-Sarcoma")
    assert len(pats) == 3
    for p in pats:
        # getPatient says PatientId (lower-case d), as clients since 2023 read it.
        assert "PatientId" in p and "PatientID" not in p, p
        check_types(p, PATIENT_TYPES, "patient")
        assert set(p) <= set(PATIENT_TYPES), set(p) - set(PATIENT_TYPES)
    # Missing attributes are left out: one patient has no SpeciesDescription.
    assert any("SpeciesDescription" not in p for p in pats)


def test_patient_study(ctx):
    s = ctx.server()
    studies = curl_json(s, "getPatientStudy", Collection="Lung-Phantom-CT")
    assert len(studies) == 4
    for st in studies:
        check_types(st, STUDY_TYPES, "study")
        assert "StudyDescription" in st and "StudyDesc" not in st
        assert DATE_TIME.match(st["StudyDate"]), st["StudyDate"]
        assert st["SeriesCount"] >= 1
    one = curl_json(s, "getPatientStudy", Collection="Lung-Phantom-CT", PatientID="LPC-001")
    assert len(one) == 2 and all(x["PatientID"] == "LPC-001" for x in one)
    by_uid = curl_json(s, "getPatientStudy", StudyInstanceUID=one[0]["StudyInstanceUID"])
    assert by_uid == [one[0]]
    # SeriesCount agrees with getSeries.
    for st in studies:
        series = curl_json(s, "getSeries", StudyInstanceUID=st["StudyInstanceUID"])
        assert len(series) == st["SeriesCount"]


def test_series(ctx):
    s = ctx.server()
    series = curl_json(s, "getSeries", Collection="Soft-tissue-Sarcoma")
    assert len(series) >= 6
    for rec in series:
        check_types(rec, SERIES_TYPES, "series")
        missing = SERIES_ALWAYS - set(rec)
        assert not missing, missing
        assert "StudyDescription" not in rec
        for k in ("SeriesDate", "TimeStamp", "DateReleased", "StudyDate"):
            assert DATE_TIME.match(rec[k]), (k, rec[k])
    descs = [r["SeriesDescription"] for r in series]
    assert "Axial FSE/T2 FS ONLY TUMOR - RESEARCH" in descs
    assert "KNEE       *AXT2SP" in descs
    assert any(len(d.encode()) == 300 for d in descs)
    assert any(any(ord(c) > 127 for c in d) for d in descs)
    # Missing attributes are left out, not sent as null.
    assert any("SoftwareVersions" not in r for r in series)
    # Filters narrow the answer.
    one = curl_json(s, "getSeries", SeriesInstanceUID=series[0]["SeriesInstanceUID"])
    assert one == [series[0]]
    by_pat = curl_json(s, "getSeries", Collection="Soft-tissue-Sarcoma", PatientID="STS_001")
    assert by_pat and all(r["PatientID"] == "STS_001" for r in by_pat)


def test_naming_hazards(ctx):
    s = ctx.server()
    studies = curl_json(s, "getPatientStudy", Collection="Soft-tissue-Sarcoma",
                        PatientID="STS_003")
    keys = [(x["StudyDate"], x["StudyDescription"]) for x in studies]
    assert len(keys) == 2 and keys[0] == keys[1], keys
    assert studies[0]["StudyInstanceUID"] != studies[1]["StudyInstanceUID"]
    series = curl_json(s, "getSeries", Collection="Soft-tissue-Sarcoma", PatientID="STS_003")
    tails = [r["SeriesInstanceUID"][-5:] for r in series if r["SeriesNumber"] == 9]
    assert tails == ["42424", "42424"], tails
    odd = [c["Collection"] for c in curl_json(s, "getCollectionValues") if "/" in c["Collection"]]
    pats = curl_json(s, "getPatient", Collection=odd[0])
    ids = {p["PatientId"] for p in pats}
    assert {"..", ".", "a/b", "tab\there"} <= ids, ids


def test_series_size(ctx):
    s = ctx.server("--series-size-delay", "0")
    rec = curl_json(s, "getSeries", Collection="Lung-Phantom-CT")[0]
    size = curl_json(s, "getSeriesSize", SeriesInstanceUID=rec["SeriesInstanceUID"])
    assert len(size) == 1 and set(size[0]) == {"TotalSizeInBytes", "ObjectCount"}
    # The size is a string with a decimal point; the count an integer (tcia-api.md §2).
    assert isinstance(size[0]["TotalSizeInBytes"], str)
    assert re.match(r"^\d+\.\d+$", size[0]["TotalSizeInBytes"])
    assert isinstance(size[0]["ObjectCount"], int)
    assert float(size[0]["TotalSizeInBytes"]) == rec["FileSize"]
    assert size[0]["ObjectCount"] == rec["ImageCount"]


def test_series_size_is_slow(ctx):
    s = ctx.server("--series-size-delay", "0.5")
    uid = curl_json(s, "getSeries", Collection="Lung-Phantom-CT")[0]["SeriesInstanceUID"]
    curl_json(s, "getSeriesSize", SeriesInstanceUID=uid)
    entry = s.requests("getSeriesSize")[-1]
    assert entry["dt"] >= 0.5, entry


def test_image_zip(ctx):
    s = ctx.server()
    rec = curl_json(s, "getSeries", Collection="Lung-Phantom-CT")[0]
    code, headers, data = curl_bytes(s, "getImage", ctx.path("s.zip"), NewFileNames="Yes",
                                     SeriesInstanceUID=rec["SeriesInstanceUID"])
    assert code == 200
    # Made on the fly: no Content-Length (tcia-api.md §3).
    assert "content-length" not in headers.lower(), headers
    zf = zipfile.ZipFile(io.BytesIO(data))
    assert zf.testzip() is None
    names = zf.namelist()
    assert "LICENSE" in names
    dcm = [n for n in names if n != "LICENSE"]
    assert len(dcm) == rec["ImageCount"]
    for n in names:
        assert "/" not in n, n       # flat
    assert all(re.match(r"^1-\d{3}\.dcm$", n) for n in dcm), dcm
    assert sum(zf.getinfo(n).file_size for n in dcm) == rec["FileSize"]
    # Without NewFileNames NBIA numbers the files as it zips them.
    code, _, data = curl_bytes(s, "getImage", ctx.path("t.zip"),
                               SeriesInstanceUID=rec["SeriesInstanceUID"])
    plain = zipfile.ZipFile(io.BytesIO(data))
    names = plain.namelist()
    assert [n for n in names if n != "LICENSE"] == \
        ["%08d.dcm" % i for i in range(1, rec["ImageCount"] + 1)], names
    # getImageWithMD5Hash: the same files under the same names, plus md5hashes.csv, a
    # header then "<name>,<md5>" for each DICOM file (tcia-api.md §2).
    code, _, data = curl_bytes(s, "getImageWithMD5Hash", ctx.path("m.zip"),
                               SeriesInstanceUID=rec["SeriesInstanceUID"])
    assert code == 200
    hashed = zipfile.ZipFile(io.BytesIO(data))
    assert hashed.testzip() is None
    assert sorted(hashed.namelist()) == sorted(names + ["md5hashes.csv"])
    lines = hashed.read("md5hashes.csv").decode().splitlines()
    assert lines[0] == "Filename,MD5Hash"
    sums = dict(line.split(",") for line in lines[1:])
    assert sorted(sums) == sorted(n for n in names if n != "LICENSE")
    for n, h in sums.items():
        assert hashlib.md5(hashed.read(n)).hexdigest() == h == \
            hashlib.md5(plain.read(n)).hexdigest()


def test_unknown_series_gets_empty_zip(ctx):
    s = ctx.server()
    code, _, data = curl_bytes(s, "getImage", ctx.path("e.zip"), NewFileNames="Yes",
                               SeriesInstanceUID="1.2.3.4.5")
    assert code == 200
    assert zipfile.ZipFile(io.BytesIO(data)).namelist() == []


def test_empty_results_are_empty_bodies(ctx):
    s = ctx.server()
    for ep, params in (("getPatient", {"Collection": "No-Such"}),
                       ("getSeries", {"Collection": "No-Such"}),
                       ("getPatientStudy", {"PatientID": "nobody"}),
                       ("getSeriesSize", {"SeriesInstanceUID": "1.2.3"})):
        code, headers, body = curl(s, ep, **params)
        assert code == 200 and body == "", (ep, code, body)
    # Some endpoints say [] instead (tcia-api.md §4 "sometimes []").
    code, _, body = curl(s, "getSOPInstanceUIDs", SeriesInstanceUID="1.2.3")
    assert code == 200 and body == "[]"


def test_parameter_names_are_case_sensitive(ctx):
    s = ctx.server()
    code, _, body = curl(s, "getPatient", collection="Lung-Phantom-CT")
    assert code == 400, code
    code, _, body = curl(s, "getNoSuchThing")
    assert code == 404 and "<html" in body
    code, _, body = curl(s, "getPatient", Collection="Lung-Phantom-CT", format="json")
    assert code == 200 and json.loads(body)


def test_sop_and_single_image(ctx):
    s = ctx.server()
    rec = curl_json(s, "getSeries", Collection="CT COLONOGRAPHY")[0]
    sops = curl_json(s, "getSOPInstanceUIDs", SeriesInstanceUID=rec["SeriesInstanceUID"])
    assert len(sops) == rec["ImageCount"]
    assert all(list(x) == ["SOPInstanceUID"] for x in sops)
    code, headers, data = curl_bytes(s, "getSingleImage", ctx.path("one.dcm"),
                                     SeriesInstanceUID=rec["SeriesInstanceUID"],
                                     SOPInstanceUID=sops[0]["SOPInstanceUID"])
    assert code == 200 and data[128:132] == b"DICM"
    assert sops[0]["SOPInstanceUID"].encode() in data


def test_new_and_updated(ctx):
    s = ctx.server()
    # Dates in v4 parameters are MM-DD-YYYY.
    pats = curl_json(s, "NewPatientsInCollection", Collection="Lung-Phantom-CT",
                     fromDate="01-01-2021")
    assert [p["PatientId"] for p in pats] == ["LPC-001"], pats
    studies = curl_json(s, "NewStudiesInPatientCollection", Collection="Lung-Phantom-CT",
                        PatientID="LPC-001", fromDate="01-01-2021")
    assert len(studies) == 1 and studies[0]["StudyDescription"] == "CT CHEST FOLLOW UP"
    series = curl_json(s, "getUpdatedSeries", fromDate="01-01-2021")
    assert len(series) == 1 and series[0]["SeriesNumber"] == 7470024
    code, _, body = curl(s, "getUpdatedSeries", fromDate="2021-01-01")
    assert code == 400
    none = curl_json(s, "NewPatientsInCollection", Collection="Lung-Phantom-CT",
                     fromDate="01-01-2030")
    assert none is None


def test_patient_by_collection_and_modality(ctx):
    s = ctx.server()
    pats = curl_json(s, "getPatientByCollectionAndModality", Collection="CT COLONOGRAPHY",
                     Modality="CT")
    assert len(pats) == 2
    code, _, _ = curl(s, "getPatientByCollectionAndModality", Collection="CT COLONOGRAPHY")
    assert code == 400


def test_scale(ctx):
    s = ctx.server("--scale", "1000")
    pats = s.get_json("getPatient", Collection="Scale-Test")
    assert len(pats) == 1000
    series = s.get_json("getSeries", Collection="Scale-Test", timeout=120)
    assert len(series) == 10000
    assert len({r["SeriesInstanceUID"] for r in series}) == 10000


def test_request_log(ctx):
    s = ctx.server()
    curl(s, "getPatient", Collection="CT COLONOGRAPHY")
    curl(s, "getPatient", Collection="No-Such")
    log = s.requests()
    assert len(log) == 2
    e = log[0]
    assert e["endpoint"] == "getPatient" and e["query"] == {"Collection": "CT COLONOGRAPHY"}
    assert e["status"] == 200 and e["bytes"] > 0 and e["path"].startswith("/nbia-api/services/v4/")
    assert log[1]["bytes"] == 0
    assert isinstance(e["t"], float)
