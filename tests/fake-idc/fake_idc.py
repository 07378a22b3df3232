#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# A stand-in for NCI's Imaging Data Commons as ../shared/docs/idc-api.md describes it: the
# REST API v3 (/version, /collections, POST /sql run against an SQLite copy of its `index`
# table) and the public buckets (S3 list-type=2 listings in XML, objects with Range), on
# 127.0.0.1, standard library only. Nothing in it is random.

import argparse
import hashlib
import json
import os
import random
import re
import signal
import sqlite3
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fake-tcia"))
import dicom  # noqa: E402  (the fake TCIA's DICOM writer)
from fake_tcia import Faults, write_atomic  # noqa: E402  (and its fault rules)

UID_ROOT = "1.3.6.1.4.1.14519.5.2.1.8888"
BUCKETS = ("idc-open-data", "idc-open-data-two", "idc-open-data-cr")
S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
COLUMNS = (
    "collection_id", "PatientID", "PatientAge", "PatientSex", "StudyInstanceUID",
    "StudyDescription", "StudyDate", "SeriesInstanceUID", "Modality", "BodyPartExamined",
    "Manufacturer", "ManufacturerModelName", "SeriesDescription", "SeriesNumber", "SeriesDate",
    "instanceCount", "series_size_MB", "license_short_name", "source_DOI", "aws_bucket",
    "crdc_series_uuid", "series_aws_url", "SOPClassUID", "TransferSyntaxUID",
    "analysis_result_id", "series_init_idc_version", "series_revised_idc_version",
)


def digest(*parts):
    return hashlib.sha256("/".join(str(p) for p in parts).encode()).hexdigest()


def make_uid(*parts):
    return UID_ROOT + "." + str(int(digest(*parts)[:24], 16))[:28]


def make_uuid(*parts):
    h = digest("uuid", *parts)
    return "%s-%s-4%s-8%s-%s" % (h[:8], h[8:12], h[13:16], h[17:20], h[20:32])


# The collections: (collection_id, collection_name, bucket, licence, patients). Each patient:
# (PatientID, [(study description, [(modality, body part, manufacturer, instances), …])]).
# The same PatientID in two collections, NULL body parts and manufacturers, a patient ID
# with a quote and "--" (for the client's SQL escaping), a series of 1,500 files.
COLLECTIONS = [
    ("tcga_luad", "TCGA-LUAD", "idc-open-data", "CC BY 3.0", [
        ("TCGA-05-4244", [("CT CHEST W CONTRAST", [("CT", "CHEST", "SIEMENS", 4),
                                                    ("CT", "CHEST", "SIEMENS", 3)])]),
        ("TCGA-05-4249", [("PET CT", [("PT", "CHEST", "GE MEDICAL SYSTEMS", 5),
                                      ("CT", None, None, 2)])]),
        ("LUNG1-001", [("CT THORAX", [("CT", "LUNG", "Philips", 3)])]),
        ("QA-O'NEIL--01", [("CT ABDOMEN", [("CT", "ABDOMEN", "TOSHIBA", 2)])]),
    ]),
    ("nlst", "NLST", "idc-open-data-two", "CC BY 4.0", [
        ("100002", [("NLST-LSS", [("CT", "CHEST", "SIEMENS", 1500)])]),
        ("LUNG1-001", [("NLST-LSS", [("CT", "CHEST", None, 3)])]),
    ]),
    ("cptac_ccrcc", "CPTAC-CCRCC", "idc-open-data-cr", "CC BY-NC 3.0", [
        ("C3L-00004", [("MR ABDOMEN", [("MR", "KIDNEY", "SIEMENS", 3)])]),
    ]),
]
# The series whose revision left its old folder in the bucket (the index names only the new).
REVISED = ("tcga_luad", "TCGA-05-4244", 0, 1)
# The series whose folder also holds an object that is not DICOM.
STRAY = ("tcga_luad", "TCGA-05-4244", 0, 0)


# --big N: a collection of one series of N 512x512 CT images of noise (about N/2 MB), the
# images as big as the fake TCIA's --big-mb ones, for benchmarks against the NBIA source.
BIG = ("big_series", "Big-Series", "idc-open-data", "CC BY 4.0",
       [("BIG-001", [("CT CHEST HIGH RES", [("CT", "CHEST", "SIEMENS", 0)])])])


# --huge MB: a collection of one slide-microscopy series of one object of MB MiB of
# pixels (IDC's pathology: single files of hundreds of MB to several GB, read by range).
# Its bytes are made on demand for any range, never held; its ETag is multipart-style, as
# S3 gives a big upload (no digest of the content).
HUGE = ("huge_slide", "Huge-Slide", "idc-open-data", "CC BY 4.0",
        [("SLIDE-001", [("SLIDE MICROSCOPY", [("SM", "BREAST", "Leica", 1)])])])
HUGE_PART = 8 << 20         # the part size its multipart ETag counts
SM_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"


class HugeObject:
    """A DICOM file of mb MiB of pixels whose bytes are a pure function of their offset:
    any range is made on demand (each MiB of pixels a different window of one 4 MiB
    block of seeded noise), so a 2 GB object costs 8 MiB of memory."""
    BLOCK = 4 << 20

    def __init__(self, image, mb):
        image = dict(image, Rows=16384, Columns=32 * mb)
        self.header = dicom.dicom_header(image)
        self.size = len(self.header) + 16384 * 32 * mb * 2
        noise = random.Random(image["SOPInstanceUID"]).randbytes(self.BLOCK)
        self.noise = noise + noise

    def read(self, a, b):
        """Bytes a..b-1, in pieces of at most 1 MiB."""
        h = len(self.header)
        if a < h:
            yield self.header[a:min(b, h)]
            a = h
        while a < b:
            o = a - h
            k, j = divmod(o, 1 << 20)
            n = min(b - a, (1 << 20) - j)
            start = (k * 104729 + j) % self.BLOCK
            yield self.noise[start:start + n]
            a += n


class Archive:
    """The index rows, and every object of every bucket (made on first use)."""

    def __init__(self, big=0, scale=0, huge=0):
        self.rows = []          # dicts, one per series, columns as COLUMNS
        self.collections = []   # /collections records
        self.objects = {b: {} for b in BUCKETS}   # bucket -> key -> image dict or bytes
        self.md5 = {}           # (bucket, key) -> the body's MD5, made once
        self.md5_lock = threading.Lock()
        colls = list(COLLECTIONS)
        if big:
            cid, cname, bucket, lic, ((pid, ((sdesc, ((m, b, manu, _),)),)),) = BIG
            colls.append((cid, cname, bucket, lic, [(pid, [(sdesc, [(m, b, manu, big)])])]))
        self.huge_mb = huge
        if huge:
            colls.append(HUGE)
        for cid, cname, bucket, lic, patients in colls:
            nseries = ninst = 0
            size = 0
            mods = set()
            for pid, studies in patients:
                for si, (sdesc, series) in enumerate(studies):
                    study_uid = make_uid(cid, pid, si)
                    date = "2019-%02d-%02d" % (1 + si, 1 + len(pid) % 27)
                    for ri, (mod, part, manu, n) in enumerate(series):
                        key = (cid, pid, si, ri)
                        uid = make_uid(cid, pid, si, ri)
                        uuid = make_uuid(cid, pid, si, ri, "v2" if key == REVISED else "v1")
                        images = [self._image(cid, pid, study_uid, uid, sdesc, date, mod,
                                              part, manu, ri, i) for i in range(n)]
                        if cid == BIG[0]:
                            for im in images:
                                im.update(Rows=512, Columns=512, Noise=True)
                        nbytes = 0
                        for i, im in enumerate(images):
                            k = "%s/%s.dcm" % (uuid, make_uuid(uuid, i))
                            if cid == HUGE[0]:
                                im = HugeObject(im, huge)
                            self.objects[bucket][k] = im
                            nbytes += self.size(bucket, k)
                        if key == STRAY:
                            self.objects[bucket][uuid + "/series_notes.txt"] = \
                                b"not a DICOM file\n"
                        if key == REVISED:
                            old = make_uuid(cid, pid, si, ri, "v1")
                            for i, im in enumerate(images[:-1]):
                                self.objects[bucket]["%s/%s.dcm" % (old, make_uuid(old, i))] = im
                        self.rows.append({
                            "collection_id": cid, "PatientID": pid,
                            "PatientAge": "0%dY" % (40 + len(pid)), "PatientSex": "F" if
                            len(pid) % 2 else "M",
                            "StudyInstanceUID": study_uid, "StudyDescription": sdesc,
                            "StudyDate": date, "SeriesInstanceUID": uid, "Modality": mod,
                            "BodyPartExamined": part, "Manufacturer": manu,
                            "ManufacturerModelName": (manu + " Model") if manu else None,
                            "SeriesDescription": "%s series %d" % (mod, ri + 1),
                            "SeriesNumber": str(ri + 1), "SeriesDate": date,
                            "instanceCount": n, "series_size_MB": nbytes / 1e6,
                            "license_short_name": lic,
                            "source_DOI": "10.7937/fake.%s" % cid,
                            "aws_bucket": bucket, "crdc_series_uuid": uuid,
                            "series_aws_url": "s3://%s/%s/*" % (bucket, uuid),
                            "SOPClassUID": SM_CLASS if mod == "SM" else
                            dicom.SOP_CLASS.get(mod, dicom.SECONDARY_CAPTURE),
                            "TransferSyntaxUID": dicom.EXPLICIT_VR_LE,
                            "analysis_result_id": None,
                            "series_init_idc_version": "v1",
                            "series_revised_idc_version": "v25" if key == REVISED else "v1",
                        })
                        nseries += 1
                        ninst += n
                        size += nbytes
                        mods.add(mod)
            self.collections.append({
                "collection_id": cid, "collection_name": cname,
                "cancer_types": ["Lung Cancer"] if "lu" in cid or cid == "nlst" else
                ["Kidney Cancer"], "tumor_locations": ["Chest"],
                "species": ["Human"], "subjects": len(patients), "supporting_data": None,
                "description": "<p>%s (synthetic, for tciafs tests)</p>" % cname,
                "_detail": {"patients": len(patients), "series": nseries, "instances": ninst,
                            "size_TB": size / 1e12, "modalities": sorted(mods),
                            "licenses": [{"license_short_name": lic}]},
            })
        if scale:
            self._scale(scale)

    def _scale(self, n):
        """Collection scale_test (Scale-Test): n patients of 2 studies of 5 series each,
        index rows only (no objects): an archive-sized walk of the metadata."""
        cid, bucket = "scale_test", "idc-open-data"
        for p in range(n):
            pid = "SCALE-%05d" % p
            for si in range(2):
                study_uid = make_uid(cid, pid, si)
                date = "2001-%02d-%02d" % (1 + si, 1 + p % 28)
                for ri in range(5):
                    uid = make_uid(cid, pid, si, ri)
                    self.rows.append(dict.fromkeys(COLUMNS) | {
                        "collection_id": cid, "PatientID": pid, "PatientAge": "060Y",
                        "PatientSex": "F" if p % 2 else "M", "StudyInstanceUID": study_uid,
                        "StudyDescription": "NLST-LSS", "StudyDate": date,
                        "SeriesInstanceUID": uid, "Modality": "CT", "BodyPartExamined": "CHEST",
                        "Manufacturer": "SIEMENS", "ManufacturerModelName": "SIEMENS Model",
                        "SeriesDescription": "SCALE SERIES %d" % (ri + 1),
                        "SeriesNumber": str(ri + 1), "SeriesDate": date, "instanceCount": 2,
                        "series_size_MB": 0.003, "license_short_name": "CC BY 4.0",
                        "source_DOI": "10.7937/fake.%s" % cid, "aws_bucket": bucket,
                        "crdc_series_uuid": make_uuid(cid, pid, si, ri),
                        "series_init_idc_version": "v1", "series_revised_idc_version": "v1"})
        self.collections.append({
            "collection_id": cid, "collection_name": "Scale-Test", "cancer_types": [],
            "tumor_locations": [], "species": ["Human"], "subjects": n,
            "supporting_data": None, "description": "<p>Scale-Test (synthetic)</p>",
            "_detail": {"patients": n, "series": n * 10, "instances": n * 20,
                        "size_TB": 0, "modalities": ["CT"],
                        "licenses": [{"license_short_name": "CC BY 4.0"}]}})

    @staticmethod
    def _image(cid, pid, study_uid, uid, sdesc, date, mod, part, manu, ri, i):
        return {"PatientID": pid, "PatientName": pid, "StudyInstanceUID": study_uid,
                "SeriesInstanceUID": uid, "SOPInstanceUID": make_uid(uid, i),
                "Modality": mod, "StudyDate": date.replace("-", ""),
                "StudyDescription": sdesc, "SeriesDescription": "%s series %d" % (mod, ri + 1),
                "Manufacturer": manu or "", "BodyPartExamined": part, "SeriesNumber": ri + 1,
                "InstanceNumber": i + 1, "Rows": 16, "Columns": 16}

    def body(self, bucket, key):
        obj = self.objects[bucket][key]
        return obj if isinstance(obj, bytes) else dicom.dicom_file(obj)

    def size(self, bucket, key):
        obj = self.objects[bucket][key]
        if isinstance(obj, HugeObject):
            return obj.size
        return len(obj) if isinstance(obj, bytes) else dicom.dicom_size(obj)

    def etag(self, bucket, key):
        """As S3 gives it: the MD5 of the body for a plain upload, and for a big one
        (multipart) "<hex>-<parts>", which is no digest of the content."""
        obj = self.objects[bucket][key]
        if isinstance(obj, HugeObject):
            return "%s-%d" % (digest("parts", bucket, key)[:32], -(-obj.size // HUGE_PART))
        with self.md5_lock:
            tag = self.md5.get((bucket, key))
        if tag is None:
            tag = hashlib.md5(self.body(bucket, key)).hexdigest()
            with self.md5_lock:
                self.md5[(bucket, key)] = tag
        return tag

    def database(self):
        db = sqlite3.connect(":memory:", check_same_thread=False)
        types = {"instanceCount": "INTEGER", "series_size_MB": "REAL"}
        db.execute('CREATE TABLE "index"(%s)' % ", ".join(
            '"%s" %s' % (c, types.get(c, "TEXT")) for c in COLUMNS))
        db.executemany('INSERT INTO "index" VALUES (%s)' % ", ".join("?" * len(COLUMNS)),
                       [tuple(r[c] for c in COLUMNS) for r in self.rows])
        # Keyset pages of a big collection find their place without a scan, and come in
        # the order asked without a sort (patients' order, as tciafs pages).
        for col in ("SeriesInstanceUID", "StudyInstanceUID", "PatientID"):
            db.execute('CREATE INDEX "by_%s" ON "index"(collection_id, %s)' % (col, col))
        db.execute('CREATE INDEX "by_path" ON "index"(collection_id, PatientID, '
                   'StudyInstanceUID, SeriesInstanceUID)')
        db.commit()
        db.execute("PRAGMA query_only=1")
        return db


def _top_level(sql):
    """sql with string literals blanked and whatever is inside parentheses turned to
    spaces, offsets kept: what is left is the statement's own clauses."""
    out, depth, i = [], 0, 0
    while i < len(sql):
        c = sql[i]
        if c == "'":
            j = i + 1
            while j < len(sql) and not (sql[j] == "'" and sql[j + 1:j + 2] != "'"):
                j += 2 if sql[j] == "'" else 1
            out.append(" " * (min(j, len(sql) - 1) - i + 1))
            i = j + 1
            continue
        depth += c == "("
        out.append(c if depth == 0 or c == "(" else " ")
        depth -= c == ")" and depth > 0
        i += 1
    return "".join(out)


def _split_top(text, masked):
    parts, start = [], 0
    for m in re.finditer(",", masked):
        parts.append(text[start:m.start()].strip())
        start = m.end()
    parts.append(text[start:].strip())
    return parts


def bare_column(sql):
    """The first column of a grouped SELECT that is neither grouped nor aggregated, or None.
    IDC runs /sql on DuckDB, whose binder refuses such a column; SQLite, the fake's engine,
    would take it and pick any row's value. Checks the statement's own SELECT list (plain
    names, with or without AS) against its GROUP BY list (names, positions, ALL)."""
    masked = _top_level(sql)
    sel = re.search(r"(?is)^\s*select\s+(?:distinct\s+)?(.*?)\s+from\s", masked)
    grp = re.search(r"(?is)\sgroup\s+by\s+(.*?)(?=\s+having\s|\s+order\s+by\s|"
                    r"\s+limit\s|\s*$)", masked)
    if not sel or not grp:
        return None
    span = lambda m: (sql[m.start(1):m.end(1)], masked[m.start(1):m.end(1)])
    items = _split_top(*span(sel))
    groups = [g.strip('"').lower() for g in _split_top(*span(grp))]
    if groups == ["all"]:
        return None
    for pos, item in enumerate(items, 1):
        m = re.fullmatch(r'(?is)"?([A-Za-z_][A-Za-z0-9_]*)"?(?:\s+(?:as\s+)?"?\w+"?)?', item)
        if m and m.group(1).lower() not in groups and str(pos) not in groups:
            return m.group(1)
    return None


# The fault rules of POST /_fake/faults: {"kind", "endpoint" (version, collections, sql,
# list, object or *), "times" (-1 = until reset), "sql": only queries that hold this text,
# "seconds" for delay, "by" for the bytes a "lie" adds to listed sizes, "path" for "body":
# a prepared (hostile) answer served in place of the real one}; the fake TCIA's rule book,
# with IDC's kinds.
FAULT_KINDS = {"503", "delay", "lie", "endless", "body", "corrupt", "badrange"}
SQL_MEMO_MIN = 1 << 20      # /sql answers this big are kept once made


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # TCP_NODELAY, as Tomcat and nginx set: a reply written in pieces (headers, chunks,
    # the last chunk) would otherwise wait for the client's delayed ACK, 40 ms a reply
    # on a kept-alive connection, which no real server charges.
    disable_nagle_algorithm = True
    server_version = "fake-idc"

    def log_message(self, fmt, *args):
        pass

    def _log(self, endpoint, query, status, nbytes, fault=None):
        entry = {"t": time.time(), "method": self.command, "path": self.path,
                 "endpoint": endpoint, "query": query, "status": status, "bytes": nbytes,
                 "fault": fault}
        if self.server.log_path:
            with self.server.log_lock, open(self.server.log_path, "a") as f:
                f.write(json.dumps(entry) + "\n")

    def _send(self, status, ctype, body, extra=None, endpoint=None, query=None, fault=None):
        if endpoint and self.server.delay:
            time.sleep(self.server.delay)      # a round trip on a real network
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        # Logged before the body goes: a client that has its answer finds it in the log.
        if endpoint:
            self._log(endpoint, query or {}, status, len(body), fault)
        if self.command != "HEAD":
            self._write(body)

    def _write(self, body):
        """The body at --rate bytes a second when given (a slow link), else at once."""
        rate = self.server.rate
        if not rate:
            return self.wfile.write(body)
        step = max(1024, int(rate / 20))
        for i in range(0, len(body), step):
            if self.server.stopping.is_set():
                return
            self.wfile.write(body[i:i + step])
            self.wfile.flush()
            time.sleep(len(body[i:i + step]) / rate)

    def _json(self, status, obj, endpoint, query=None, fault=None):
        self._send(status, "application/json", json.dumps(obj).encode(), None, endpoint,
                   query, fault)

    def _s3_error(self, status, code, message, endpoint, query):
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code>'
                "<Message>%s</Message></Error>" % (code, escape(message))).encode()
        self._send(status, "application/xml", body, None, endpoint, query)

    def _fault(self, endpoint, query):
        """Applies a fault rule; True when the request is answered by it."""
        rule = self.server.faults.take(endpoint, query or {})
        if not rule:
            return False, None
        if rule["kind"] == "delay":
            time.sleep(float(rule.get("seconds", 1)))
            return False, rule
        if rule["kind"] == "503":
            self._json(503, {"error": {"code": "unavailable", "message": "overloaded"}},
                       endpoint, query, "503")
            return True, rule
        if rule["kind"] == "body":
            with open(rule["path"], "rb") as f:
                body = f.read()
            ctype = "application/xml" if endpoint == "list" else "application/json"
            self._send(200, ctype, body, None, endpoint, query, "body")
            return True, rule
        return False, rule

    # -- control -------------------------------------------------------------------------

    def _control(self, path, body):
        if path == "/_fake/faults":
            try:
                self.server.faults.add(json.loads(body or b"{}"))
            except ValueError as e:
                return self._send(400, "text/plain", str(e).encode())
        elif path == "/_fake/reset":
            self.server.faults.reset()
        elif path == "/_fake/version":
            # A new IDC release: /version says so from now on.
            self.server.version = json.loads(body or b"{}").get("idc_version", "v26")
        else:
            return self._send(404, "text/plain", b"no such control\n")
        self._send(200, "application/json", b'{"ok":true}')

    # -- the API -------------------------------------------------------------------------

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = urllib.parse.urlsplit(self.path).path
        if path.startswith("/_fake/"):
            return self._control(path, body)
        if path != "/v3/sql":
            return self._json(405 if path.startswith("/v3/") else 404,
                              {"detail": "Method Not Allowed"}, "other")
        self._sql(body)

    def _sql(self, body):
        try:
            req = json.loads(body)
        except ValueError:
            return self._json(422, {"detail": [{"type": "json_invalid", "loc": ["body"],
                                                "msg": "JSON decode error"}]}, "sql")
        q = {"sql": req.get("sql") if isinstance(req, dict) else None,
             "max_rows": req.get("max_rows") if isinstance(req, dict) else None}
        done, rule = self._fault("sql", q)
        if done:
            return
        if not isinstance(req, dict) or not isinstance(req.get("sql"), str):
            # A bare body or an old filter body: the schema says "sql" is required.
            return self._json(422, {"detail": [{"type": "missing", "loc": ["body", "sql"],
                                                "msg": "Field required"}]}, "sql", q)
        max_rows = req.get("max_rows", 5000)
        if not isinstance(max_rows, int) or max_rows < 1:
            return self._json(422, {"detail": [{"type": "int_parsing",
                                                "loc": ["body", "max_rows"],
                                                "msg": "Input should be a valid integer"}]},
                              "sql", q)
        max_rows = min(max_rows, 10000)     # silently capped
        sql = req["sql"].strip()
        if not re.match(r"(?is)^(select|with)\b", sql):
            return self._json(400, {"error": {"code": "invalid_query", "message":
                                              "only SELECT statements are allowed"}}, "sql", q)
        bare = bare_column(sql)
        if bare:
            return self._json(400, {"error": {"code": "invalid_query", "message": (
                'Binder Error: column "{0}" must appear in the GROUP BY clause or must be part '
                'of an aggregate function.\nEither add it to the GROUP BY list, or use '
                '"ANY_VALUE({0})" if the exact value of "{0}" is not important.').format(bare)}},
                "sql", q)
        # A big answer is kept once made (the table never changes while the fake runs),
        # so that make bench can time tciafs's pages rather than this Python making them.
        with self.server.db_lock:
            body = self.server.sql_memo.get((sql, max_rows))
        if body is None:
            try:
                with self.server.db_lock:
                    cur = self.server.db.execute(sql)
                    cols = [d[0] for d in cur.description or []]
                    rows = cur.fetchmany(max_rows + 1)
            except (sqlite3.Error, sqlite3.Warning) as e:
                return self._json(400, {"error": {"code": "invalid_query",
                                                  "message": str(e)}}, "sql", q)
            truncated = len(rows) > max_rows
            rows = rows[:max_rows]
            body = json.dumps({"columns": cols, "rows": [dict(zip(cols, r)) for r in rows],
                               "row_count": len(rows), "truncated": truncated,
                               "max_rows": max_rows}).encode()
            if len(body) >= SQL_MEMO_MIN:
                with self.server.db_lock:
                    self.server.sql_memo[(sql, max_rows)] = body
        self._send(200, "application/json", body, None, "sql", q, rule and rule["kind"])

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        parts = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        path = urllib.parse.unquote(parts.path)
        if path == "/v3/version":
            if self._fault("version", query)[0]:
                return
            return self._json(200, {"idc_version": self.server.version,
                                    "idc_index_data_version": self.server.version[1:] + ".0.0",
                                    "api_version": "3.0.0b5", "build": "fake-idc"},
                              "version", query)
        if path == "/v3/collections" or path.startswith("/v3/collections/"):
            return self._collections(path, query)
        if path.startswith("/v3/"):
            return self._json(404, {"detail": "Not Found"}, "other", query)
        bucket, _, key = path.lstrip("/").partition("/")
        if bucket not in BUCKETS:
            return self._s3_error(404, "NoSuchBucket", "The specified bucket does not exist",
                                  "list" if not key else "object", query)
        if not key:
            return self._list(bucket, query)
        self._object(bucket, key, query)

    def _collections(self, path, query):
        if self._fault("collections", query)[0]:
            return
        arc = self.server.archive
        if path == "/v3/collections":
            return self._json(200, [{k: v for k, v in c.items() if k != "_detail"}
                                    for c in arc.collections], "collections", query)
        cid = path[len("/v3/collections/"):]
        for c in arc.collections:
            if c["collection_id"] == cid:
                rec = {k: v for k, v in c.items() if k != "_detail"}
                rec.update(c["_detail"])
                return self._json(200, rec, "collections", query)
        self._json(404, {"detail": "collection not found"}, "collections", query)

    # -- the buckets ---------------------------------------------------------------------

    def _list(self, bucket, query):
        done, rule = self._fault("list", query)
        if done:
            return
        if query.get("list-type") != "2":
            return self._s3_error(400, "InvalidArgument", "use list-type=2", "list", query)
        prefix = query.get("prefix", "")
        try:
            page = min(int(query.get("max-keys", self.server.page_size)), self.server.page_size)
        except ValueError:
            return self._s3_error(400, "InvalidArgument", "max-keys", "list", query)
        keys = sorted(k for k in self.server.archive.objects[bucket] if k.startswith(prefix))
        token = query.get("continuation-token")
        start = 0
        if token is not None:
            try:
                start = keys.index(bytes.fromhex(token).decode()) + 1
            except ValueError:
                return self._s3_error(400, "InvalidArgument",
                                      "The continuation token provided is incorrect", "list",
                                      query)
        chunk = keys[start:start + page]
        more = start + page < len(keys)
        lie = int(rule["by"]) if rule and rule["kind"] == "lie" else 0
        out = ['<?xml version="1.0" encoding="UTF-8"?>',
               '<ListBucketResult xmlns="%s">' % S3_NS,
               "<Name>%s</Name><Prefix>%s</Prefix>" % (bucket, escape(prefix))]
        if token is not None:
            out.append("<ContinuationToken>%s</ContinuationToken>" % escape(token))
        out.append("<KeyCount>%d</KeyCount><MaxKeys>%d</MaxKeys><IsTruncated>%s</IsTruncated>"
                   % (len(chunk), page, "true" if more else "false"))
        if more:
            out.append("<NextContinuationToken>%s</NextContinuationToken>"
                       % chunk[-1].encode().hex())
        arc = self.server.archive
        for k in chunk:
            size = arc.size(bucket, k) + lie
            out.append("<Contents><Key>%s</Key><LastModified>2024-05-01T12:00:00.000Z"
                       "</LastModified><ETag>&quot;%s&quot;</ETag><Size>%d</Size>"
                       "<StorageClass>INTELLIGENT_TIERING</StorageClass></Contents>"
                       % (escape(k), arc.etag(bucket, k), size))
        out.append("</ListBucketResult>")
        self._send(200, "application/xml", "".join(out).encode(), None, "list", query,
                   rule and rule["kind"])

    def _object(self, bucket, key, query):
        done, rule = self._fault("object", query)
        if done:
            return
        arc = self.server.archive
        if key not in arc.objects[bucket]:
            return self._s3_error(404, "NoSuchKey", "The specified key does not exist.",
                                  "object", query)
        if self.server.object_delay:
            time.sleep(self.server.object_delay)    # S3's first byte, on a WAN
        obj = arc.objects[bucket][key]
        huge = isinstance(obj, HugeObject)
        rng = self.headers.get("Range")
        q = dict(query, key=key, range=rng)
        if rule and rule["kind"] == "endless":
            return self._endless(arc.body(bucket, key), q)
        total = arc.size(bucket, key)
        etag = {"ETag": '"%s"' % arc.etag(bucket, key), "Accept-Ranges": "bytes"}
        if not rng:
            a, b, status, extra = 0, total - 1, 200, etag
        else:
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            if not m or (not m.group(1) and not m.group(2)):
                return self._s3_error(416, "InvalidRange", "The requested range is not "
                                      "satisfiable", "object", q)
            if m.group(1):
                a = int(m.group(1))
                b = min(int(m.group(2)), total - 1) if m.group(2) else total - 1
            else:
                a, b = max(total - int(m.group(2)), 0), total - 1
            if a >= total or a > b:
                return self._s3_error(416, "InvalidRange", "The requested range is not "
                                      "satisfiable", "object", q)
            status = 206
            extra = dict(etag, **{"Content-Range": "bytes %d-%d/%d" % (a, b, total)})
            if rule and rule["kind"] == "badrange":
                # A 206 that names another range than the one asked: a lying proxy.
                extra["Content-Range"] = "bytes %d-%d/%d" % (a + 1, b + 1, total)
        pieces = obj.read(a, b + 1) if huge else [arc.body(bucket, key)[a:b + 1]]
        if rule and rule["kind"] == "corrupt":
            # The same length, one byte changed: only a digest can tell.
            body = bytearray(b"".join(pieces))
            body[len(body) // 2] ^= 0xFF
            pieces = [bytes(body)]
        self._send_pieces(status, "application/dicom", b - a + 1, pieces, extra, "object",
                          q, rule and rule["kind"])

    def _send_pieces(self, status, ctype, length, pieces, extra, endpoint, query, fault):
        """An answer whose body comes in pieces (an object made on demand), at
        --object-rate bytes a second on this connection when given."""
        if self.server.delay:
            time.sleep(self.server.delay)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(length))
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        self._log(endpoint, query, status, length, fault)
        if self.command == "HEAD":
            return
        rate, sent, t0 = self.server.object_rate, 0, time.monotonic()
        try:
            for piece in pieces:
                step = max(16384, int(rate / 50)) if rate else len(piece) or 1
                for i in range(0, len(piece), step):
                    if self.server.stopping.is_set():
                        return
                    self.wfile.write(piece[i:i + step])
                    sent += len(piece[i:i + step])
                    if rate:
                        ahead = sent / rate - (time.monotonic() - t0)
                        if ahead > 0:
                            time.sleep(ahead)
        except OSError:
            self.close_connection = True

    def _endless(self, head, query):
        """An object that never ends: its bytes, then zeros, chunked, until the client goes."""
        self.send_response(200)
        self.send_header("Content-Type", "application/dicom")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        # Logged before the body, as every answer is (its length is never known).
        self._log("object", query, 200, None, "endless")
        try:
            data = head
            while not self.server.stopping.is_set():
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                data = b"\0" * 65536
        except OSError:
            pass
        self.close_connection = True


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


def main(argv=None):
    ap = argparse.ArgumentParser(description="Fake IDC (API v3 and public buckets) for tciafs "
                                             "tests.")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--url-file", help="written once listening: the API base URL (…/v3)")
    ap.add_argument("--log", help="append one JSON line per request to this file")
    ap.add_argument("--page-size", type=int, default=1000,
                    help="keys per bucket listing page (S3: at most 1000)")
    ap.add_argument("--delay", type=float, default=0.0,
                    help="seconds before every answer (a round trip on a real network)")
    ap.add_argument("--rate", type=float, default=0.0,
                    help="bytes a second at which answers are sent (0 = at once)")
    ap.add_argument("--scale", type=int, default=0, metavar="N",
                    help="add collection Scale-Test: N patients, 2 studies each, 5 series each "
                         "(index rows only)")
    ap.add_argument("--big", type=int, default=0, metavar="N",
                    help="add collection Big-Series: one series of N 512x512 noisy CT images")
    ap.add_argument("--huge", type=int, default=0, metavar="MB",
                    help="add collection Huge-Slide: one SM object of MB MiB of pixels, made "
                         "on demand (multipart ETag)")
    ap.add_argument("--object-delay", type=float, default=0.0, metavar="S",
                    help="seconds before each object GET's answer (S3's first byte on a WAN)")
    ap.add_argument("--object-rate", type=float, default=0.0, metavar="B",
                    help="bytes a second an object is sent at, per connection (0 = at once)")
    args = ap.parse_args(argv)

    srv = Server(("127.0.0.1", args.port), Handler)
    srv.archive = Archive(big=args.big, scale=args.scale, huge=args.huge)
    srv.object_delay = args.object_delay
    srv.object_rate = args.object_rate
    srv.delay = args.delay
    srv.rate = args.rate
    srv.db = srv.archive.database()
    srv.db_lock = threading.Lock()
    srv.sql_memo = {}
    srv.faults = Faults(FAULT_KINDS)
    srv.version = "v25"
    srv.page_size = max(1, min(args.page_size, 1000))
    srv.log_path = args.log
    srv.log_lock = threading.Lock()
    srv.stopping = threading.Event()
    url = "http://127.0.0.1:%d/v3" % srv.server_address[1]

    def stop(signum, frame):
        srv.stopping.set()
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.url_file:
        write_atomic(args.url_file, url + "\n")
    print("fake-idc: serving %s (buckets at %s/{bucket})" % (url, url[:-3]), file=sys.stderr,
          flush=True)
    srv.serve_forever(poll_interval=0.2)
    srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
