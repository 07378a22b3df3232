# SPDX-License-Identifier: MIT
# Each kind of fault the fake can inject reaches a client: first a plain HTTP client (what
# the fault looks like on the wire), then tciafs itself through the mount (what a user of
# `ls` sees: retried and correct, or an errno within the bound, with a log line).

import io
import json
import os
import subprocess
import time
import urllib.parse
import zipfile
import zlib

from harness import TestFailure, run


def curl_raw(s, endpoint, max_time=30, **params):
    url = s.url + "/" + endpoint + "?" + urllib.parse.urlencode(params)
    t0 = time.monotonic()
    r = subprocess.run(["curl", "-sS", "--max-time", str(max_time), "-D", "/dev/stderr",
                        "-w", "%{stderr}\n%{http_code}", url], capture_output=True, timeout=60)
    dt = time.monotonic() - t0
    err = r.stderr.decode("latin-1")
    code = err.strip().rsplit("\n", 1)[-1]
    return r.returncode, int(code) if code.isdigit() else 0, err, r.stdout, dt


def first_series(s, coll="Lung-Phantom-CT"):
    return s.get_json("getSeries", Collection=coll)[0]["SeriesInstanceUID"]


def test_fault_delay(ctx):
    s = ctx.server()
    s.fault(kind="delay", endpoint="getCollectionValues", seconds=1.0, times=1)
    rc, code, _, body, dt = curl_raw(s, "getCollectionValues")
    assert rc == 0 and code == 200 and json.loads(body) and dt >= 1.0, (rc, code, dt)
    rc, code, _, body, dt = curl_raw(s, "getCollectionValues")
    assert dt < 1.0, dt     # times=1: only the first request waited
    assert [e["fault"] for e in s.requests()] == ["delay", None]


def test_fault_status_and_html(ctx):
    s = ctx.server()
    s.fault(kind="status", endpoint="getPatient", status=503, times=1)
    rc, code, head, body, _ = curl_raw(s, "getPatient", Collection="CT COLONOGRAPHY")
    assert code == 503 and b"<html" in body and "text/html" in head.lower()
    s.fault(kind="html", endpoint="getPatient", times=1)
    rc, code, head, body, _ = curl_raw(s, "getPatient", Collection="CT COLONOGRAPHY")
    assert code == 200 and body.lstrip().startswith(b"<!doctype html")
    rc, code, head, body, _ = curl_raw(s, "getPatient", Collection="CT COLONOGRAPHY")
    assert code == 200 and json.loads(body)


def test_fault_429(ctx):
    s = ctx.server()
    s.fault(kind="429", endpoint="getSeries", retry_after=3, times=1)
    rc, code, head, _, _ = curl_raw(s, "getSeries", Collection="CT COLONOGRAPHY")
    assert code == 429 and "retry-after: 3" in head.lower(), head


def test_fault_reset(ctx):
    s = ctx.server()
    uid = first_series(s)
    s.fault(kind="reset", endpoint="getImage", series=uid, times=1)
    rc, code, _, body, _ = curl_raw(s, "getImage", SeriesInstanceUID=uid, NewFileNames="Yes")
    # 56: failure receiving (reset); 18: partial file. Either way the client sees an error.
    assert rc in (18, 56), rc
    s.fault(kind="reset", endpoint="getPatient", times=1)
    rc, code, _, body, _ = curl_raw(s, "getPatient", Collection="CT COLONOGRAPHY")
    assert rc in (18, 56), rc


def test_fault_truncated_and_corrupt_zip(ctx):
    s = ctx.server()
    uid = first_series(s)
    s.fault(kind="truncate", endpoint="getImage", series=uid, times=1)
    rc, code, _, body, _ = curl_raw(s, "getImage", SeriesInstanceUID=uid, NewFileNames="Yes")
    assert rc == 0 and code == 200 and body[:2] == b"PK"
    try:
        zipfile.ZipFile(io.BytesIO(body))
        raise TestFailure("a truncated zip opened")
    except zipfile.BadZipFile:
        pass
    s.fault(kind="corrupt", endpoint="getImage", series=uid, times=1)
    rc, code, _, body, _ = curl_raw(s, "getImage", SeriesInstanceUID=uid, NewFileNames="Yes")
    zf = zipfile.ZipFile(io.BytesIO(body))    # the structure is intact…
    try:
        bad = zf.testzip()                    # …but the data is not
    except (zipfile.BadZipFile, zlib.error):
        bad = "inflate error"
    assert bad is not None
    # The fault was for that series only; another series is whole.
    other = s.get_json("getSeries", Collection="CT COLONOGRAPHY")[0]["SeriesInstanceUID"]
    s.fault(kind="corrupt", endpoint="getImage", series=uid, times=1)
    rc, code, _, body, _ = curl_raw(s, "getImage", SeriesInstanceUID=other, NewFileNames="Yes")
    assert zipfile.ZipFile(io.BytesIO(body)).testzip() is None


def test_fault_malformed_and_empty(ctx):
    s = ctx.server()
    s.fault(kind="malformed", endpoint="getSeries", times=1)
    rc, code, _, body, _ = curl_raw(s, "getSeries", Collection="CT COLONOGRAPHY")
    assert code == 200
    try:
        json.loads(body)
        raise TestFailure("malformed JSON parsed")
    except ValueError:
        pass
    s.fault(kind="empty", endpoint="getSeries", times=1)
    rc, code, _, body, _ = curl_raw(s, "getSeries", Collection="CT COLONOGRAPHY")
    assert code == 200 and body == b""


def test_fault_hang(ctx):
    s = ctx.server()
    s.fault(kind="hang", endpoint="getCollectionValues", seconds=30, times=1)
    rc, code, _, _, dt = curl_raw(s, "getCollectionValues", max_time=1)
    assert rc == 28 and dt < 5, (rc, dt)     # 28: curl's own timeout


def test_fault_rules_listed_and_reset(ctx):
    s = ctx.server()
    s.fault(kind="status", endpoint="getPatient", status=500)
    status, _, body = s.get("getPatient", Collection="CT COLONOGRAPHY")
    assert status == 500
    s.reset_faults()
    status, _, body = s.get("getPatient", Collection="CT COLONOGRAPHY")
    assert status == 200


# -- the same faults as tciafs meets them -----------------------------------------------

def ls(path, timeout=60):
    t0 = time.monotonic()
    r = subprocess.run(["ls", path], capture_output=True, text=True, timeout=timeout)
    return r, time.monotonic() - t0


def test_mount_retries_5xx_then_succeeds(ctx):
    s = ctx.server()
    s.fault(kind="status", endpoint="getCollectionValues", status=503, times=2)
    m = ctx.mount(s, options=["timeout=5", "retries=3"])
    r, dt = ls(m.mountpoint)
    assert r.returncode == 0 and "Lung-Phantom-CT" in r.stdout, r
    assert [e["status"] for e in s.requests("getCollectionValues")] == [503, 503, 200]
    assert "HTTP 503" in m.log()


def test_mount_honours_retry_after(ctx):
    s = ctx.server()
    s.fault(kind="429", endpoint="getCollectionValues", retry_after=2, times=1)
    m = ctx.mount(s, options=["timeout=5", "retries=2"])
    r, dt = ls(m.mountpoint)
    assert r.returncode == 0 and "CT COLONOGRAPHY" in r.stdout
    log = s.requests("getCollectionValues")
    assert [e["status"] for e in log] == [429, 200]
    assert log[1]["t"] - log[0]["t"] >= 1.9, log


def test_mount_endless_5xx_gives_eio(ctx):
    s = ctx.server()
    s.fault(kind="status", endpoint="getCollectionValues", status=500)
    m = ctx.mount(s, options=["timeout=2", "retries=2"])
    r, dt = ls(m.mountpoint)
    assert r.returncode != 0 and "Input/output error" in r.stderr, r
    assert len(s.requests("getCollectionValues")) == 3


def test_mount_bad_answers_give_errno(ctx):
    s = ctx.server()
    m = ctx.mount(s, options=["timeout=2", "retries=0", "meta_ttl=0"])
    for kind, errtext in (("malformed", "Bad message"), ("html", "Bad message"),
                          ("reset", "Input/output error")):
        s.fault(kind=kind, endpoint="getCollectionValues", times=1)
        r, dt = ls(m.mountpoint)
        assert r.returncode != 0 and errtext in r.stderr, (kind, r.stderr)
    assert "bad answer from TCIA" in m.log()
    # An empty body is "no collections", not an error.
    s.fault(kind="empty", endpoint="getCollectionValues", times=1)
    r, dt = ls(m.mountpoint)
    assert r.returncode == 0 and r.stdout.split() == ["README.txt"], r


def test_mount_hang_is_bounded(ctx):
    s = ctx.server()
    s.fault(kind="hang", endpoint="getCollectionValues", seconds=60)
    m = ctx.mount(s, options=["timeout=2", "retries=1"])
    r, dt = ls(m.mountpoint)
    assert r.returncode != 0 and "Connection timed out" in r.stderr, r
    # Two attempts of at most timeout seconds each, plus one backoff.
    assert dt < 2 * 2 + 2, dt
    assert m.mountpoint in open("/proc/mounts").read() or os.path.ismount(m.mountpoint)
