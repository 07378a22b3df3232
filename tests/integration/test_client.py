# SPDX-License-Identifier: MIT
# The TCIA client (tcia.c, http.c, metacache.c) against the fake server, driven through
# build/tcia-query: every endpoint's typed records agree with what the server sent, each
# injected fault is handled as issue 3 states (requests counted from the server's log),
# concurrent identical asks make one request, and downloads run in bounded memory.

import json
import os
import subprocess
import time

from harness import TestFailure

EBADMSG, EIO, ENOENT, ETIMEDOUT, EINVAL, ENETDOWN = 74, 5, 2, 110, 22, 100
EACCES_CODE = 13


def query(s, endpoint, *params, opts=(), expect=0, timeout=120):
    cmd = [os.environ["TCIAFS_QUERY"]] + list(opts) + [s.url if hasattr(s, "url") else s,
                                                       endpoint] + list(params)
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    dt = time.monotonic() - t0
    if r.returncode != expect:
        raise TestFailure("%s: exit %d (want %d): %s" % (" ".join(cmd), r.returncode, expect,
                                                         r.stderr))
    out = json.loads(r.stdout) if r.returncode == 0 else None
    return out, r.stderr, dt


def same_raw(records, server_records):
    """Each record's raw object equals the server's, key order included."""
    assert len(records) == len(server_records), (len(records), len(server_records))
    for mine, theirs in zip(records, server_records):
        assert mine["raw"] == theirs, (mine["raw"], theirs)
        assert list(mine["raw"]) == list(theirs)


def test_every_endpoint(ctx):
    s = ctx.server("--series-size-delay", "0")
    colls = s.get_json("getCollectionValues")
    out, _, _ = query(s, "collections")
    assert [v["value"] for v in out["result"]] == [c["Collection"] for c in colls]
    same_raw(out["result"], colls)

    for ep, key, params in (("modalities", "Modality", {"Collection": "Soft-tissue-Sarcoma"}),
                            ("bodyparts", "BodyPartExamined", {"Collection": "CT COLONOGRAPHY"}),
                            ("manufacturers", "Manufacturer", {"Collection": "Soft-tissue-Sarcoma"})):
        api = {"modalities": "getModalityValues", "bodyparts": "getBodyPartValues",
               "manufacturers": "getManufacturerValues"}[ep]
        theirs = [x for x in s.get_json(api, **params) if key in x]   # {} elements are skipped
        out, _, _ = query(s, ep, *["%s=%s" % kv for kv in params.items()])
        assert [v["value"] for v in out["result"]] == [x[key] for x in theirs]

    pats = s.get_json("getPatient", Collection="Soft-tissue-Sarcoma")
    out, _, _ = query(s, "patients", "Collection=Soft-tissue-Sarcoma")
    same_raw(out["result"], pats)
    assert [p["patient_id"] for p in out["result"]] == [p["PatientId"] for p in pats]

    studies = s.get_json("getPatientStudy", Collection="Lung-Phantom-CT")
    out, _, _ = query(s, "studies", "Collection=Lung-Phantom-CT")
    same_raw(out["result"], studies)
    for mine, theirs in zip(out["result"], studies):
        assert mine["study_uid"] == theirs["StudyInstanceUID"]
        assert mine["description"] == theirs["StudyDescription"]
        assert mine["series_count"] == theirs["SeriesCount"]
        assert mine["date"] == theirs["StudyDate"]

    series = s.get_json("getSeries", Collection="Soft-tissue-Sarcoma")
    out, _, _ = query(s, "series", "Collection=Soft-tissue-Sarcoma")
    same_raw(out["result"], series)
    for mine, theirs in zip(out["result"], series):
        assert mine["series_uid"] == theirs["SeriesInstanceUID"]
        assert mine["number"] == str(theirs["SeriesNumber"])
        assert mine["image_count"] == theirs["ImageCount"]
        assert mine["file_size"] == theirs["FileSize"]
        assert mine["description"] == theirs["SeriesDescription"]
    uid = series[0]["SeriesInstanceUID"]
    out, _, _ = query(s, "series", "SeriesInstanceUID=" + uid)
    assert len(out["result"]) == 1

    size = s.get_json("getSeriesSize", SeriesInstanceUID=uid)[0]
    out, _, _ = query(s, "size", "SeriesInstanceUID=" + uid)
    assert out["result"]["total_bytes"] == int(float(size["TotalSizeInBytes"]))
    assert out["result"]["object_count"] == size["ObjectCount"]
    assert out["result"]["raw"] == size
    query(s, "size", "SeriesInstanceUID=1.2.3", expect=ENOENT)

    sops = s.get_json("getSOPInstanceUIDs", SeriesInstanceUID=uid)
    out, _, _ = query(s, "sops", "SeriesInstanceUID=" + uid)
    assert [v["value"] for v in out["result"]] == [x["SOPInstanceUID"] for x in sops]

    for ep, args, api, params in (
            ("newpatients", ["Collection=Lung-Phantom-CT", "fromDate=01-01-2021"],
             "NewPatientsInCollection", {"Collection": "Lung-Phantom-CT", "fromDate": "01-01-2021"}),
            ("patientsbymodality", ["Collection=CT COLONOGRAPHY", "Modality=CT"],
             "getPatientByCollectionAndModality", {"Collection": "CT COLONOGRAPHY", "Modality": "CT"}),
            ("newstudies", ["Collection=Lung-Phantom-CT", "PatientID=LPC-001", "fromDate=01-01-2021"],
             "NewStudiesInPatientCollection",
             {"Collection": "Lung-Phantom-CT", "PatientID": "LPC-001", "fromDate": "01-01-2021"}),
            ("updated", ["fromDate=01-01-2021"], "getUpdatedSeries", {"fromDate": "01-01-2021"})):
        out, _, _ = query(s, ep, *args)
        theirs = s.get_json(api, **params)
        assert theirs, ep
        same_raw(out["result"], theirs)
    query(s, "newpatients", "Collection=Lung-Phantom-CT", expect=EINVAL)

    out, _, _ = query(s, "image", "SeriesInstanceUID=" + uid, "out=" + ctx.path("s.zip"))
    status, _, body = s.get("getImage", SeriesInstanceUID=uid)
    assert open(ctx.path("s.zip"), "rb").read() == body
    assert out["result"]["bytes"] == len(body) == out["result"]["progress_last"]
    sop = sops[0]["SOPInstanceUID"]
    query(s, "single", "SeriesInstanceUID=" + uid, "SOPInstanceUID=" + sop,
          "out=" + ctx.path("one.dcm"))
    assert open(ctx.path("one.dcm"), "rb").read()[128:132] == b"DICM"
    # Every request carried the real parameter names (the fake answers 400 otherwise).
    assert all(e["status"] == 200 for e in s.requests()), \
        [e for e in s.requests() if e["status"] != 200]


def test_empty_results(ctx):
    s = ctx.server()
    out, _, _ = query(s, "patients", "Collection=No-Such")
    assert out["result"] == []
    out, _, _ = query(s, "sops", "SeriesInstanceUID=1.2.3")     # answered with []
    assert out["result"] == []
    s.fault(kind="empty", endpoint="getSeries", times=1)
    out, _, _ = query(s, "series", "Collection=CT COLONOGRAPHY")
    assert out["result"] == []


def test_5xx_then_success_is_retried(ctx):
    s = ctx.server()
    s.fault(kind="status", status=502, endpoint="getPatient", times=2)
    out, err, _ = query(s, "patients", "Collection=CT COLONOGRAPHY", opts=["-r", "3"])
    assert len(out["result"]) == 2
    assert [e["status"] for e in s.requests("getPatient")] == [502, 502, 200]
    assert "HTTP 502 (attempt 1/4)" in err and "HTTP 502 (attempt 2/4)" in err, err


def test_429_waits_retry_after(ctx):
    s = ctx.server()
    s.fault(kind="429", endpoint="getPatient", retry_after=2, times=1)
    out, err, dt = query(s, "patients", "Collection=CT COLONOGRAPHY", opts=["-r", "2"])
    log = s.requests("getPatient")
    assert [e["status"] for e in log] == [429, 200]
    assert log[1]["t"] - log[0]["t"] >= 1.9, log
    assert "HTTP 429" in err


def test_endless_5xx_is_bounded(ctx):
    s = ctx.server()
    s.fault(kind="status", status=500, endpoint="getSeries")
    _, err, dt = query(s, "series", "Collection=CT COLONOGRAPHY", opts=["-r", "2", "-T", "2"],
                       expect=EIO)
    assert len(s.requests("getSeries")) == 3
    assert "getSeries" in err and "failed" in err
    s.reset_faults()
    s.fault(kind="hang", endpoint="getSeries", seconds=60)
    _, err, dt = query(s, "series", "Collection=CT COLONOGRAPHY", opts=["-r", "1", "-T", "2"],
                       expect=ETIMEDOUT)
    # Two attempts of at most TIMEOUT seconds each, and one backoff between them.
    assert dt < 2 * 2 + 3, dt


def test_malformed_and_html_are_ebadmsg(ctx):
    s = ctx.server()
    for kind in ("malformed", "html"):
        s.fault(kind=kind, endpoint="getSeries", times=1)
        _, err, _ = query(s, "series", "Collection=CT COLONOGRAPHY", expect=EBADMSG)
        assert "bad answer from TCIA" in err and "getSeries" in err, err
    # Not retried: a bad body is not a transient failure.
    assert len(s.requests("getSeries")) == 2


def test_reset_mid_download_leaves_nothing(ctx):
    s = ctx.server()
    uid = s.get_json("getSeries", Collection="Lung-Phantom-CT")[0]["SeriesInstanceUID"]
    s.fault(kind="reset", endpoint="getImage", series=uid)
    out_path = ctx.path("s.zip")
    _, err, _ = query(s, "image", "SeriesInstanceUID=" + uid, "out=" + out_path,
                      opts=["-r", "1"], expect=EIO)
    assert not os.path.exists(out_path) and not os.path.exists(out_path + ".part")
    assert len(s.requests("getImage")) == 2      # retried once, from the start
    assert "attempt 2/2" in err
    # A reset then a good answer: the retry rewinds, so the file is exactly the zip.
    s.reset_faults()
    s.fault(kind="reset", endpoint="getImage", series=uid, times=1)
    query(s, "image", "SeriesInstanceUID=" + uid, "out=" + out_path, opts=["-r", "1"])
    status, _, body = s.get("getImage", SeriesInstanceUID=uid)
    assert open(out_path, "rb").read() == body


def test_error_page_never_reaches_the_file(ctx):
    s = ctx.server()
    uid = s.get_json("getSeries", Collection="Lung-Phantom-CT")[0]["SeriesInstanceUID"]
    s.fault(kind="status", status=503, endpoint="getImage", times=1)
    out_path = ctx.path("s.zip")
    query(s, "image", "SeriesInstanceUID=" + uid, "out=" + out_path, opts=["-r", "1"])
    with open(out_path, "rb") as f:
        assert f.read(2) == b"PK"


def test_16_threads_one_request(ctx):
    s = ctx.server()
    s.fault(kind="delay", endpoint="getSeries", seconds=0.5)
    out, _, _ = query(s, "series", "Collection=Soft-tissue-Sarcoma", opts=["-j", "16"])
    assert out["ok_threads"] == 16
    assert len(s.requests("getSeries")) == 1, s.requests("getSeries")


def test_disk_cache_and_offline(ctx):
    s = ctx.server()
    cache = ctx.path("meta")
    query(s, "patients", "Collection=CT COLONOGRAPHY", opts=["-c", cache])
    assert len(s.requests("getPatient")) == 1
    # A new process (a remount) answers from disk while the answer is fresh.
    out, _, _ = query(s, "patients", "Collection=CT COLONOGRAPHY", opts=["-c", cache])
    assert len(out["result"]) == 2 and len(s.requests("getPatient")) == 1
    assert all((os.stat(os.path.join(cache, f)).st_mode & 0o777) == 0o600
               for f in os.listdir(cache))
    # Expired (TTL 0) and the server failing: the old answer is served, with a warning.
    s.fault(kind="status", status=500, endpoint="getPatient")
    out, err, _ = query(s, "patients", "Collection=CT COLONOGRAPHY",
                        opts=["-c", cache, "-t", "0", "-r", "0"])
    assert len(out["result"]) == 2 and "serving an answer from" in err, err
    # Offline: no request at all; what is held is served, the rest is EIO.
    n = len(s.requests())
    out, _, _ = query(s, "patients", "Collection=CT COLONOGRAPHY", opts=["-c", cache, "-o"])
    assert len(out["result"]) == 2
    query(s, "patients", "Collection=Lung-Phantom-CT", opts=["-c", cache, "-o"],
          expect=EIO)
    assert len(s.requests()) == n


def peak_rss_kib(cmd):
    """Runs cmd to the end; returns (exit status, stdout, its own peak RSS in KiB)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, out, usage.ru_maxrss


def test_download_memory_is_bounded(ctx):
    s = ctx.server("--big-mb", "96")
    uid = s.get_json("getSeries", Collection="Big-Series")[0]["SeriesInstanceUID"]
    small = s.get_json("getSeries", Collection="CT COLONOGRAPHY")[0]["SeriesInstanceUID"]
    q = os.environ["TCIAFS_QUERY"]
    rc, _, base_kib = peak_rss_kib([q, s.url, "image", "SeriesInstanceUID=" + small,
                                    "out=" + ctx.path("small.zip")])
    assert rc == 0
    rc, out, big_kib = peak_rss_kib([q, s.url, "image", "SeriesInstanceUID=" + uid,
                                     "out=" + ctx.path("big.zip")])
    assert rc == 0
    size = json.loads(out)["result"]["bytes"]
    assert size > 96 * 1024 * 1024, size
    # Streaming 100 MB costs no more than a few buffers over a 5 kB download.
    assert big_kib - base_kib < 8 * 1024, (base_kib, big_kib)


def test_user_agent_and_gzip(ctx):
    s = ctx.server()
    out, _, _ = query(s, "series", "Collection=Soft-tissue-Sarcoma")
    e = s.requests("getSeries")[0]
    assert e["ua"].startswith("tciafs/"), e["ua"]
    assert e["gzip"] is True           # accepted, and decoded: the records parsed
    assert len(out["result"]) >= 6


def test_proxy_from_environment(ctx):
    # The API URL points at a closed port; only a proxy taken from http_proxy can answer.
    # The fake serves absolute-form request lines too, so it can stand in as the proxy.
    proxy = ctx.server()
    env = dict(os.environ, http_proxy=proxy.base, no_proxy="", NO_PROXY="")
    r = subprocess.run([os.environ["TCIAFS_QUERY"], "-r", "0",
                        "http://127.0.0.1:9/nbia-api/services/v4", "collections"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert len(proxy.requests("getCollectionValues")) == 1


def test_tls_is_verified(ctx):
    key, cert = ctx.path("key.pem"), ctx.path("cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1"], check=True,
                   capture_output=True)
    s = ctx.server("--tls", cert, key)
    assert s.url.startswith("https://")
    _, err, _ = query(s, "collections", opts=["-r", "0"], expect=EIO)
    assert "certificate" in err.lower(), err
    assert s.requests() == []
