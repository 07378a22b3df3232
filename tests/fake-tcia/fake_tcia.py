#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# The fake TCIA: an HTTP server on 127.0.0.1 that answers the NBIA v4 API as
# ../shared/docs/tcia-api.md describes it, over the synthetic archive of archive.py.
# It logs every request as one JSON line and injects faults on demand (see README.md).
# Standard library only.

import argparse
import datetime
import gzip
import json
import os
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import archive  # noqa: E402

PREFIX = "/nbia-api/services/v4/"

# Parameters each endpoint accepts. Names are case-sensitive on the real service; the fake
# answers 400 to any other name so that a client typo shows up in tests instead of silently
# widening a query.
ENDPOINTS = {
    "getCollectionValues": (),
    "getModalityValues": ("Collection", "BodyPartExamined"),
    "getBodyPartValues": ("Collection", "Modality"),
    "getManufacturerValues": ("Collection", "Modality", "BodyPartExamined"),
    "getPatient": ("Collection",),
    "getPatientStudy": ("Collection", "PatientID", "StudyInstanceUID"),
    "getSeries": ("Collection", "PatientID", "StudyInstanceUID", "SeriesInstanceUID",
                  "Modality", "BodyPartExamined", "Manufacturer", "ManufacturerModelName"),
    "getSeriesSize": ("SeriesInstanceUID",),
    "getImage": ("SeriesInstanceUID", "NewFileNames"),
    "getImageWithMD5Hash": ("SeriesInstanceUID",),
    "getSOPInstanceUIDs": ("SeriesInstanceUID",),
    "getSingleImage": ("SeriesInstanceUID", "SOPInstanceUID"),
    "NewPatientsInCollection": ("Collection", "fromDate"),
    "NewStudiesInPatientCollection": ("Collection", "PatientID", "fromDate"),
    "getUpdatedSeries": ("fromDate",),
    "getPatientByCollectionAndModality": ("Collection", "Modality"),
}

HTML_ERROR = (
    "<!doctype html><html lang=\"en\"><head><title>HTTP Status {code} – {reason}</title>"
    "</head><body><h1>HTTP Status {code} – {reason}</h1><hr class=\"line\" />"
    "<p><b>Type</b> Status Report</p><p><b>Description</b> The server encountered an "
    "unexpected condition that prevented it from fulfilling the request.</p>"
    "<hr class=\"line\" /><h3>Apache Tomcat</h3></body></html>"
)

FAULT_KINDS = {"delay", "status", "429", "reset", "truncate", "corrupt", "malformed",
               "html", "empty", "hang", "zipfile", "slow", "body", "huge", "redirect",
               "endless"}


class Faults:
    """Rules switched on and off at run time through POST /_fake/faults.

    A rule: {"kind": one of FAULT_KINDS, "endpoint": name or "*", "series": optional
    SeriesInstanceUID, "times": how many requests it hits (-1 = until reset),
    "status": for "status" and "redirect", "seconds": for "delay"/"hang", "retry_after":
    for "429", "location": for "redirect"}. Endpoint "token" is the token endpoint.
    The first live rule that matches a request applies to it.
    """

    def __init__(self, kinds=FAULT_KINDS):
        self.kinds = kinds
        self.lock = threading.Lock()
        self.rules = []

    def add(self, rule):
        if rule.get("kind") not in self.kinds:
            raise ValueError("unknown fault kind %r" % rule.get("kind"))
        rule.setdefault("endpoint", "*")
        rule.setdefault("times", -1)
        with self.lock:
            self.rules.append(rule)

    def reset(self):
        with self.lock:
            self.rules = []

    def take(self, endpoint, query):
        with self.lock:
            for rule in self.rules:
                if rule["times"] == 0:
                    continue
                if rule["endpoint"] not in ("*", endpoint):
                    continue
                if "series" in rule and query.get("SeriesInstanceUID") != rule["series"]:
                    continue
                if "sql" in rule and rule["sql"] not in (query.get("sql") or ""):
                    continue
                if rule["times"] > 0:
                    rule["times"] -= 1
                return dict(rule)
        return None

    def snapshot(self):
        with self.lock:
            return [dict(r) for r in self.rules]


TOKEN_PATH = "/auth/token"


class Tokens:
    """Bearer tokens for --auth USER:PASS: password and refresh grants, client_id nbia."""

    def __init__(self, auth, ttl):
        self.enabled = bool(auth)
        self.user, _, self.password = (auth or "").partition(":")
        self.ttl = ttl
        self.lock = threading.Lock()
        self.access = {}
        self.refresh = {}
        self.n = 0

    def _issue(self):
        now = time.time()
        self.n += 1
        acc = "acc-%d-%s" % (self.n, os.urandom(8).hex())
        ref = "ref-%d-%s" % (self.n, os.urandom(8).hex())
        self.access[acc] = now + self.ttl
        self.refresh[ref] = now + self.ttl * 10
        return 200, {"access_token": acc, "expires_in": self.ttl, "refresh_token": ref,
                     "refresh_expires_in": self.ttl * 10, "token_type": "bearer"}

    def grant(self, form):
        with self.lock:
            if form.get("client_id") != "nbia":
                return 400, {"error": "invalid_client"}
            if form.get("grant_type") == "password":
                if form.get("username") == self.user and form.get("password") == self.password:
                    return self._issue()
                return 401, {"error": "invalid_grant"}
            if form.get("grant_type") == "refresh_token":
                until = self.refresh.pop(form.get("refresh_token"), 0)
                if until > time.time():
                    return self._issue()
                return 400, {"error": "invalid_grant"}
            return 400, {"error": "unsupported_grant_type"}

    def valid(self, header):
        if not header.startswith("Bearer "):
            return False
        with self.lock:
            return self.access.get(header[7:], 0) > time.time()

    def revoke_all(self):
        with self.lock:
            self.access.clear()


class RequestLog:
    def __init__(self, path):
        self.lock = threading.Lock()
        self.f = open(path, "a", encoding="utf-8") if path else None

    def write(self, entry):
        if not self.f:
            return
        line = json.dumps(entry, ensure_ascii=False, sort_keys=True)
        with self.lock:
            self.f.write(line + "\n")
            self.f.flush()


def parse_mdy(value):
    # v4 dates are MM-DD-YYYY (tcia-api.md §2).
    return datetime.datetime.strptime(value, "%m-%d-%Y")


def released(rec):
    return datetime.datetime.strptime(rec["DateReleased"][:10], "%Y-%m-%d")


class BadRequest(Exception):
    pass


class Api:
    """Answers one endpoint: returns (content_type, body_bytes) or a special tuple."""

    # Answers this big are kept once made (the archive never changes while the fake
    # runs): a scaled collection's getSeries is 167 MB of JSON that Python takes seconds
    # to make and compress, time a benchmark would otherwise charge to the client.
    MEMO_MIN = 1 << 20

    def __init__(self, arc, series_size_delay):
        self.arc = arc
        self.series_size_delay = series_size_delay
        self._memo = {}
        self._memo_gz = {}
        self._memo_lock = threading.Lock()

    def call(self, endpoint, q):
        key = (endpoint, tuple(sorted(q.items())))
        with self._memo_lock:
            hit = self._memo.get(key)
        if hit:
            return hit
        result = getattr(self, "ep_" + endpoint)(q)
        if result[0] != "zip" and len(result[1]) >= self.MEMO_MIN:
            with self._memo_lock:
                self._memo[key] = result
        return result

    def gzip(self, body):
        """body gzip-compressed; kept for an answer that is kept."""
        with self._memo_lock:
            gz = self._memo_gz.get(id(body))
            kept = any(r[1] is body for r in self._memo.values())
        if gz is None:
            gz = gzip.compress(body, compresslevel=6, mtime=0)
            if kept:
                with self._memo_lock:
                    self._memo_gz[id(body)] = gz
        return gz

    # JSON helpers -----------------------------------------------------------------------

    @staticmethod
    def _json(items, empty=b""):
        # No results is HTTP 200 with an empty body on the real service (tcia-api.md §4).
        if not items:
            return ("application/json", empty)
        return ("application/json", json.dumps(items, ensure_ascii=False).encode("utf-8"))

    def _series_matching(self, q):
        out = []
        for s in self.arc.candidates("series", q):
            rec = self.arc.series_record(s)
            if all(rec.get(k) == v for k, v in q.items() if k != "format"):
                out.append(rec)
        return out

    @staticmethod
    def _values(records, key):
        seen, out = set(), []
        for rec in records:
            v = rec.get(key)
            marker = v if v is not None else object()
            if v is not None and marker in seen:
                continue
            if v is None:
                # Some elements simply lack the key (tcia-api.md §2, getBodyPartValues).
                if None in seen:
                    continue
                seen.add(None)
                out.append({})
                continue
            seen.add(v)
            out.append({key: v})
        return out

    # Endpoints -------------------------------------------------------------------------

    def ep_getCollectionValues(self, q):
        return self._json([{"Collection": c} for c in self.arc.collections])

    def ep_getModalityValues(self, q):
        return self._json(self._values(self._series_matching(q), "Modality"))

    def ep_getBodyPartValues(self, q):
        return self._json(self._values(self._series_matching(q), "BodyPartExamined"))

    def ep_getManufacturerValues(self, q):
        return self._json(self._values(self._series_matching(q), "Manufacturer"))

    def ep_getPatient(self, q):
        out = [p for p in self.arc.candidates("patients", q)
               if "Collection" not in q or p["Collection"] == q["Collection"]]
        return self._json(out)

    def ep_getPatientStudy(self, q):
        keys = {"Collection": "Collection", "PatientID": "PatientID",
                "StudyInstanceUID": "StudyInstanceUID"}
        out = [s for s in self.arc.candidates("studies", q)
               if all(s.get(keys[k]) == v for k, v in q.items() if k in keys)]
        return self._json(out)

    def ep_getSeries(self, q):
        return self._json(self._series_matching(q))

    def ep_getSeriesSize(self, q):
        # The real call is slow (tcia-api.md §2).
        if self.series_size_delay:
            time.sleep(self.series_size_delay)
        s = self.arc.series.get(q.get("SeriesInstanceUID", ""))
        if not s:
            return self._json([])
        # TotalSizeInBytes is a string with a decimal point; ObjectCount an integer.
        return self._json([{"TotalSizeInBytes": "%.1f" % s.total_size(),
                            "ObjectCount": s.image_count}])

    def ep_getImage(self, q):
        s = self.arc.series.get(q.get("SeriesInstanceUID", ""))
        new_names = q.get("NewFileNames", "No") == "Yes"
        return ("zip", s, (new_names, False))

    def ep_getImageWithMD5Hash(self, q):
        # The same zip with NBIA's counter names, plus md5hashes.csv (tcia-api.md §2).
        return ("zip", self.arc.series.get(q.get("SeriesInstanceUID", "")), (False, True))

    def ep_getSOPInstanceUIDs(self, q):
        s = self.arc.series.get(q.get("SeriesInstanceUID", ""))
        uids = s.sop_uids() if s else []
        return self._json([{"SOPInstanceUID": u} for u in uids], empty=b"[]")

    def ep_getSingleImage(self, q):
        s = self.arc.series.get(q.get("SeriesInstanceUID", ""))
        data = s.dicom_bytes(q.get("SOPInstanceUID", "")) if s else None
        if data is None:
            return ("application/json", b"")
        return ("application/dicom", data)

    def _need(self, q, *names):
        for n in names:
            if n not in q:
                raise BadRequest("missing required parameter %s" % n)

    def _since(self, q):
        try:
            return parse_mdy(q["fromDate"])
        except ValueError:
            raise BadRequest("fromDate must be MM-DD-YYYY")

    def ep_NewPatientsInCollection(self, q):
        self._need(q, "Collection", "fromDate")
        since = self._since(q)
        pids = {r["PatientID"] for r in self.arc.all_series()
                if r["Collection"] == q["Collection"] and released(r) >= since}
        return self._json([p for p in self.arc.patients
                           if p["Collection"] == q["Collection"] and p["PatientId"] in pids])

    def ep_NewStudiesInPatientCollection(self, q):
        self._need(q, "Collection", "fromDate")
        since = self._since(q)
        uids = {r["StudyInstanceUID"] for r in self.arc.all_series()
                if r["Collection"] == q["Collection"] and released(r) >= since
                and ("PatientID" not in q or r["PatientID"] == q["PatientID"])}
        return self._json([s for s in self.arc.studies if s["StudyInstanceUID"] in uids])

    def ep_getUpdatedSeries(self, q):
        self._need(q, "fromDate")
        since = self._since(q)
        return self._json([r for r in self.arc.all_series() if released(r) >= since],
                          empty=b"[]")

    def ep_getPatientByCollectionAndModality(self, q):
        self._need(q, "Collection", "Modality")
        pids = {r["PatientID"] for r in self.arc.all_series()
                if r["Collection"] == q["Collection"] and r["Modality"] == q["Modality"]}
        return self._json([p for p in self.arc.patients
                           if p["Collection"] == q["Collection"] and p["PatientId"] in pids])


class ChunkedWriter:
    """A write-only stream that sends HTTP/1.1 chunks, counting bytes. The zip is made on
    the fly, like the real one, so no Content-Length is sent (tcia-api.md §3)."""

    def __init__(self, wfile, limit=None):
        self.wfile = wfile
        self.sent = 0
        self.limit = limit

    def write(self, data):
        if not data:
            return 0
        if self.limit is not None:
            data = data[: max(0, self.limit - self.sent)]
            if not data:
                return 0
        self.wfile.write(b"%x\r\n" % len(data) + bytes(data) + b"\r\n")
        self.sent += len(data)
        return len(data)

    def flush(self):
        self.wfile.flush()

    def finish(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class SlowWriter:
    """Passes writes on at about `rate` bytes a second (a slow link), in small pieces."""

    def __init__(self, inner, rate, stopping):
        self.inner = inner
        self.rate = rate
        self.stopping = stopping

    def write(self, data):
        data = bytes(data)
        step = max(1024, int(self.rate / 20))
        for i in range(0, len(data), step):
            if self.stopping.is_set():
                raise BrokenPipeError("server stopping")
            self.inner.write(data[i:i + step])
            self.inner.flush()
            time.sleep(len(data[i:i + step]) / self.rate)
        return len(data)

    def flush(self):
        self.inner.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY, as Tomcat and nginx set: a reply written in pieces (headers, chunks,
    # the last chunk) would otherwise wait for the client's delayed ACK, 40 ms a reply
    # on a kept-alive connection, which no real server charges.
    disable_nagle_algorithm = True
    server_version = "Apache-Coyote/1.1"
    sys_version = ""

    def log_message(self, fmt, *args):
        pass  # the JSON request log replaces the default stderr lines

    # -- plumbing -------------------------------------------------------------------------

    def _log(self, status, nbytes):
        """Writes the request's log line once, before the response can complete, so that
        a client that has its answer always finds the request in the log."""
        entry = getattr(self, "_entry", None)
        if entry is None or self._logged:
            return
        self._logged = True
        entry.update(status=status, bytes=nbytes, fault=self._fault, gzip=self.gzipped)
        entry["dt"] = round(time.time() - entry["t"], 6)
        self.server.reqlog.write(entry)

    def _send(self, status, ctype, body, extra=None):
        self._log(status, len(body))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        return len(body)

    def _html_error(self, status, reason):
        body = HTML_ERROR.format(code=status, reason=reason).encode()
        return self._send(status, "text/html;charset=utf-8", body)

    def _reset(self, partial):
        """Send the start of a body, then reset the connection (RST, not FIN)."""
        self._log(200, len(partial))
        self.send_response(200)
        self.send_header("Content-Type", "application/zip" if partial[:2] == b"PK"
                         else "application/json")
        self.send_header("Content-Length", str(len(partial) * 2 + 1))
        self.end_headers()
        self.wfile.write(partial)
        self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                   struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True
        return len(partial)

    def _sleep(self, seconds):
        self.server.stopping.wait(seconds)

    # -- control API ----------------------------------------------------------------------

    def _control(self, path):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if path == "/_fake/faults" and self.command == "POST":
            try:
                rule = json.loads(body or b"{}")
                self.server.faults.add(rule)
            except ValueError as e:
                return self._send(400, "text/plain", str(e).encode() + b"\n")
            return self._send(200, "application/json", b'{"ok":true}\n')
        if path == "/_fake/faults" and self.command == "GET":
            return self._send(200, "application/json",
                              json.dumps(self.server.faults.snapshot()).encode() + b"\n")
        if path == "/_fake/revoke" and self.command == "POST":
            self.server.tokens.revoke_all()
            return self._send(200, "application/json", b'{"ok":true}\n')
        if path == "/_fake/reset" and self.command == "POST":
            self.server.faults.reset()
            return self._send(200, "application/json", b'{"ok":true}\n')
        return self._send(404, "text/plain", b"unknown control call\n")

    # -- API ------------------------------------------------------------------------------

    def do_POST(self):
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith("/_fake/"):
            self._control(path)
            return
        if path == TOKEN_PATH:
            self._token()
            return
        self._html_error(405, "Method Not Allowed")

    # -- the legacy OpenID token endpoint (tcia-api.md §1), only with --auth -------------

    def _token(self):
        t0 = time.time()
        length = int(self.headers.get("Content-Length") or 0)
        form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode("utf-8", "replace")))
        grant = form.get("grant_type")
        rule = self.server.faults.take("token", {})
        if rule and rule["kind"] == "redirect":
            self.server.reqlog.write({"t": round(t0, 6), "method": "POST", "path": TOKEN_PATH,
                                      "endpoint": "token", "query": {"grant_type": grant},
                                      "status": int(rule.get("status", 307)), "bytes": 0,
                                      "fault": "redirect", "dt": 0})
            self._entry = None
            self._send(int(rule.get("status", 307)), "text/plain", b"moved\n",
                       {"Location": rule["location"]})
            return
        status, body = self.server.tokens.grant(form)
        body = json.dumps(body).encode()
        # Never log secrets: the grant type is enough to count what the client did.
        self.server.reqlog.write({"t": round(t0, 6), "method": "POST", "path": TOKEN_PATH,
                                  "endpoint": "token", "query": {"grant_type": grant},
                                  "status": status, "bytes": len(body), "fault": None,
                                  "dt": round(time.time() - t0, 6)})
        self._entry = None
        self._send(status, "application/json", body)

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path.startswith("/_fake/"):
            self._control(url.path)
            return
        entry = {"t": round(time.time(), 6), "method": "GET", "path": url.path,
                 "status": 0, "bytes": 0, "fault": None,
                 "ua": self.headers.get("User-Agent", ""), "gzip": False,
                 "authorization": "Authorization" in self.headers}
        self.gzipped = False
        self._entry = entry
        self._logged = False
        self._fault = None
        try:
            pairs = urllib.parse.parse_qsl(url.query, keep_blank_values=True, strict_parsing=False)
            q = dict(pairs)
            entry["query"] = q
            endpoint = url.path[len(PREFIX):] if url.path.startswith(PREFIX) else None
            entry["endpoint"] = endpoint
            status, sent, fault = self._dispatch(endpoint, q)
            self._fault = fault
            self._log(status, sent)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            self._log(-1, 0)
        finally:
            self._log(0, 0)

    def _dispatch(self, endpoint, q):
        if endpoint not in ENDPOINTS:
            return 404, self._html_error(404, "Not Found"), None
        if self.server.tokens.enabled and not self.server.tokens.valid(
                self.headers.get("Authorization", "")):
            return 401, self._html_error(401, "Unauthorized"), None
        bad = [k for k in q if k not in ENDPOINTS[endpoint] and k != "format"]
        if bad:
            return 400, self._send(400, "text/plain",
                                   ("unknown parameter: %s\n" % bad[0]).encode()), None
        if self.server.delay:
            self._sleep(self.server.delay)
        rule = self.server.faults.take(endpoint, q)
        kind = rule["kind"] if rule else None
        self._fault = kind
        self._rule = rule
        if kind == "delay":
            self._sleep(float(rule.get("seconds", 1)))
        elif kind == "hang":
            self._sleep(float(rule.get("seconds", 3600)))
            self.close_connection = True
            return 0, 0, kind
        elif kind == "status":
            code = int(rule.get("status", 500))
            return code, self._html_error(code, "Internal Server Error"), kind
        elif kind == "429":
            body = HTML_ERROR.format(code=429, reason="Too Many Requests").encode()
            extra = {"Retry-After": str(rule.get("retry_after", 1))}
            return 429, self._send(429, "text/html", body, extra), kind
        elif kind == "html":
            body = HTML_ERROR.format(code=200, reason="Service Notice").encode()
            return 200, self._send(200, "text/html;charset=utf-8", body), kind
        elif kind == "empty":
            return 200, self._send(200, "application/json", b""), kind
        elif kind == "body":
            # A prepared (hostile) answer, served as if the API had sent it (after
            # "seconds", when given: a record that comes late).
            if rule.get("seconds"):
                self._sleep(float(rule["seconds"]))
            with open(rule["path"], "rb") as f:
                body = f.read()
            return 200, self._send(200, "application/json", body), kind
        elif kind == "huge" and rule.get("gzip"):
            return 200, self._bomb(int(rule.get("mb", 300)), endpoint), kind
        elif kind == "huge":
            return 200, self._huge(int(rule.get("mb", 300)), endpoint), kind
        elif kind == "redirect":
            code = int(rule.get("status", 302))
            return code, self._send(code, "text/plain", b"moved\n",
                                    {"Location": rule["location"]}), kind
        try:
            result = self.server.api.call(endpoint, q)
        except BadRequest as e:
            return 400, self._send(400, "text/plain", (str(e) + "\n").encode()), kind
        if result[0] == "zip":
            return self._zip(result[1], result[2], kind)
        ctype, body = result
        if kind == "malformed" and body:
            body = body[: max(1, len(body) // 2)] + b",{]"
        elif kind == "malformed":
            body = b"[{\"Collection\":"
        elif kind == "reset":
            return 200, self._reset(body[: max(1, len(body) // 2)]), kind
        elif kind == "slow":
            return 200, self._trickle(ctype, body, float(rule.get("rate", 150))), kind
        extra = None
        if len(body) > 512 and "gzip" in self.headers.get("Accept-Encoding", ""):
            # Compress JSON when the client accepts it, as a servlet container's filter does.
            body = self.server.api.gzip(body)
            extra = {"Content-Encoding": "gzip"}
            self.gzipped = True
        return 200, self._send(200, ctype, body, extra), kind

    def _zip(self, series, how, kind):
        new_names, md5 = how
        if self.server.zip_delay:
            self._sleep(self.server.zip_delay)
        if series is None:
            # An unknown series still gets 200 and an empty zip (tcia-api.md §3).
            body = archive.empty_zip()
            return 200, self._chunked(lambda w: w.write(body)), kind
        if kind == "zipfile":
            # Serve a prepared (hostile) zip as this series' answer.
            with open(self._rule["path"], "rb") as f:
                data = f.read()
            return 200, self._chunked(lambda w: w.write(data)), kind
        if kind == "endless":
            # A zip that never ends: a local header, then zeros until the client stops.
            def produce(w):
                w.write(b"PK\x03\x04" + b"\0" * 26)
                block = b"\0" * 65536
                try:
                    while not self.server.stopping.is_set():
                        w.write(block)
                except (BrokenPipeError, ConnectionResetError):
                    pass
            return 200, self._chunked(produce), kind
        if kind == "slow":
            rate = float(self._rule.get("rate", 65536))
            return 200, self._chunked(lambda w: series.write_zip(SlowWriter(w, rate, self.server.stopping), new_names, md5)), kind
        if kind in ("truncate", "corrupt", "reset"):
            data = series.zip_bytes(new_names, md5)
            if kind == "truncate":
                data = data[: len(data) // 2]
            elif kind == "corrupt":
                data = archive.corrupt(data)
            else:
                return 200, self._reset(data[: len(data) // 2]), kind
            return 200, self._chunked(lambda w: w.write(data)), kind
        cache = self.server.zip_cache
        if cache:
            path = os.path.join(cache, "%s.%d%d.zip" % (series.uid, int(new_names), int(md5)))
            if not os.path.exists(path):
                tmp = "%s.%d.tmp" % (path, threading.get_ident())
                with open(tmp, "wb") as f:
                    series.write_zip(f, new_names, md5)
                os.rename(tmp, path)
            return 200, self._chunked(lambda w: self._copy_file(self._link(w), path)), kind
        return 200, self._chunked(lambda w: series.write_zip(self._link(w), new_names, md5)), kind

    def _link(self, w):
        """The zip's way out: at --rate bytes a second when given (a slow link)."""
        rate = self.server.rate
        return SlowWriter(w, rate, self.server.stopping) if rate else w

    @staticmethod
    def _copy_file(w, path):
        with open(path, "rb") as f:
            while True:
                block = f.read(1 << 20)
                if not block:
                    break
                w.write(block)

    def _huge(self, mb, endpoint):
        """A well-formed list that goes on for mb MB, chunked, with no length."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        key = {"getCollectionValues": "Collection"}.get(endpoint, "PatientId")
        element = json.dumps({key: "x" * 200}).encode() + b","
        block = element * (65536 // len(element))
        w = ChunkedWriter(self.wfile)
        try:
            w.write(b"[")
            while w.sent < mb * 1024 * 1024 and not self.server.stopping.is_set():
                w.write(block)
            w.write(element[:-1] + b"]")
            w.finish()
        except (BrokenPipeError, ConnectionResetError):
            pass
        self._log(200, w.sent)
        return w.sent

    def _trickle(self, ctype, body, rate):
        """Sends an answer at `rate` bytes a second in small steady pieces: fast enough
        for any stall limit, slow enough that only an overall deadline ends it."""
        self._log(200, len(body))
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        step = max(1, int(rate / 10))
        try:
            for i in range(0, len(body), step):
                if self.server.stopping.is_set():
                    break
                self.wfile.write(body[i:i + step])
                self.wfile.flush()
                time.sleep(step / rate)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        return len(body)

    def _bomb(self, mb, endpoint):
        """The same well-formed list as _huge, gzip-compressed (about 1000:1): a few
        hundred kB on the wire that inflate to mb MB. Compressed once per server."""
        key = (mb, endpoint)
        with self.server.bomb_lock:
            data = self.server.bombs.get(key)
            if data is None:
                name = {"getCollectionValues": "Collection"}.get(endpoint, "PatientId")
                element = json.dumps({name: "x" * 200}).encode() + b","
                block = element * (65536 // len(element))
                z = zlib.compressobj(9, zlib.DEFLATED, 31)
                parts = [z.compress(b"[")]
                part = z.compress(block)
                parts.append(part)
                for _ in range(mb * 16 - 1):
                    parts.append(z.compress(block))
                parts.append(z.compress(element[:-1] + b"]"))
                parts.append(z.flush())
                data = b"".join(parts)
                self.server.bombs[key] = data
        return self._send(200, "application/json", data, {"Content-Encoding": "gzip"})

    def _chunked(self, produce):
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Disposition", "attachment; filename=images.zip")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        w = ChunkedWriter(self.wfile)
        produce(w)
        self._log(200, w.sent)
        w.finish()
        return w.sent


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


def write_atomic(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Fake TCIA (NBIA v4) server for tciafs tests.")
    ap.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    ap.add_argument("--port-file", help="write the port here once listening")
    ap.add_argument("--url-file", help="write the API base URL here once listening")
    ap.add_argument("--log", help="append one JSON line per API request to this file")
    ap.add_argument("--scale", type=int, default=0,
                    help="add collection Scale-Test with this many patients (10 series each)")
    ap.add_argument("--big-mb", type=int, default=0,
                    help="add collection Big-Series: one series of about this many MB")
    ap.add_argument("--zip-cache", metavar="DIR",
                    help="keep each generated zip in DIR and serve it from there after")
    ap.add_argument("--delay", type=float, default=0.0,
                    help="seconds to wait before answering every API request (a round "
                         "trip on a real network)")
    ap.add_argument("--rate", type=float, default=0.0,
                    help="bytes a second at which zips are sent (a slow link; 0 = as fast "
                         "as it goes)")
    ap.add_argument("--zip-delay", type=float, default=0.0,
                    help="further seconds before a zip's first byte (the real service "
                         "assembles the zip before it sends anything)")
    ap.add_argument("--auth", metavar="USER:PASS",
                    help="require bearer tokens from POST %s (legacy v2 flow)" % TOKEN_PATH)
    ap.add_argument("--token-ttl", type=int, default=7200,
                    help="seconds an access token lives (default 7200, as TCIA's did)")
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"),
                    help="serve HTTPS with this certificate and key")
    ap.add_argument("--series-size-delay", type=float, default=0.3,
                    help="seconds getSeriesSize takes (the real one is slow)")
    args = ap.parse_args(argv)

    arc = archive.Archive(scale=args.scale, big_mb=args.big_mb)
    srv = Server(("127.0.0.1", args.port), Handler)
    srv.api = Api(arc, args.series_size_delay)
    srv.faults = Faults()
    srv.tokens = Tokens(args.auth, args.token_ttl)
    srv.reqlog = RequestLog(args.log)
    srv.delay = args.delay
    srv.zip_delay = args.zip_delay
    srv.rate = args.rate
    srv.zip_cache = args.zip_cache
    srv.stopping = threading.Event()
    srv.bomb_lock = threading.Lock()
    srv.bombs = {}
    port = srv.server_address[1]
    scheme = "http"
    if args.tls:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls[0], args.tls[1])
        srv.socket = tls.wrap_socket(srv.socket, server_side=True)
        scheme = "https"
    url = "%s://127.0.0.1:%d%s" % (scheme, port, PREFIX.rstrip("/"))

    def stop(signum, frame):
        srv.stopping.set()
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.port_file:
        write_atomic(args.port_file, "%d\n" % port)
    if args.url_file:
        write_atomic(args.url_file, url + "\n")
    print("fake-tcia: serving %s" % url, file=sys.stderr, flush=True)
    srv.serve_forever(poll_interval=0.2)
    srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
