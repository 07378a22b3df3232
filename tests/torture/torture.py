#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# The fault campaign and the crash campaign of issue 6, through real mounts against the
# fake TCIA. `make torture` runs the long versions and writes docs/reliability.md;
# `make check` runs short ones. Exit status 1 if anything was wrong: a file that read
# back other bytes than the archive's, a store holding a partial series, a caller held
# longer than the budget, a mount that died under faults, leftovers in tmp/ after start-up.
#
# 1. Faults: random faults (delays, 5xx, 429, resets, truncated and corrupt zips,
#    malformed JSON, HTML pages, empty answers, slow bodies) switched on and off while
#    several readers walk the tree and read series. Every byte read is compared with the
#    archive; every call is timed.
# 2. Crashes: kill -9 of tciafs at random moments while series download (and now and
#    then of the fake server mid-body); after each, the store is checked file by file
#    against the archive and the next start-up must leave nothing in tmp/.
# 3. Catalog damage (issue 32): random pages of the catalog overwritten while walks list
#    patients and studies; every listing is the reference's, whole, or an error.
# 4. Over-long zips (issue 32): series opened by UID whose records give a small FileSize
#    while the server streams without end; tmp/ never holds more than the cap.

import argparse
import collections
import datetime
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from harness import Context, mounted  # noqa: E402

FAULTS = ["delay", "status", "429", "reset", "truncate", "corrupt", "malformed", "html",
          "empty", "slow", "endless", "huge", "redirect"]
ENDPOINTS = ["getCollectionValues", "getPatient", "getPatientStudy", "getSeries",
             "getSeriesSize", "getImage", "getModalityValues", "getBodyPartValues",
             "getManufacturerValues"]
TIMEOUT, RETRIES = 2, 2
# The longest any one call may take: each attempt of a request is bounded by ten times
# the timeout (a metadata answer's whole-transfer bound), plus backoff between attempts.
# Loads a call waits on run one at a time and a failed one is shared, not retried, so
# the bound of one request plus slack is the budget. What it catches is a hang.
BUDGET = (RETRIES + 1) * 10 * TIMEOUT + 10


def reference(server):
    """Every series of the archive: uid -> (path parts, {file name: bytes})."""
    ref = {}
    for c in server.get_json("getCollectionValues"):
        for r in server.get_json("getSeries", Collection=c["Collection"]):
            status, _, body = server.get("getImage", SeriesInstanceUID=r["SeriesInstanceUID"])
            assert status == 200
            zf = zipfile.ZipFile(io.BytesIO(body))
            ref[r["SeriesInstanceUID"]] = {n: zf.read(n) for n in zf.namelist()}
    return ref


def series_dirs(mp):
    """Every series folder reachable under the mount (walks; may raise OSError)."""
    out = []
    for coll in sorted(os.listdir(mp)):
        cdir = os.path.join(mp, coll)
        if not os.path.isdir(cdir):
            continue
        for pat in os.listdir(cdir):
            pdir = os.path.join(cdir, pat)
            if pat.startswith(".") or not os.path.isdir(pdir):
                continue
            for study in os.listdir(pdir):
                sdir = os.path.join(pdir, study)
                if not os.path.isdir(sdir):
                    continue
                for ser in os.listdir(sdir):
                    if ser != "study.json":
                        out.append(os.path.join(sdir, ser))
    return out


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ops = 0
        self.errors = collections.Counter()
        self.files_ok = 0
        self.bytes_ok = 0
        self.mismatches = []
        self.max_call = 0.0
        self.hangs = []

    def call(self, fn, *args):
        """Runs one call on the mount, timed; OSErrors are counted and re-raised."""
        t0 = time.monotonic()
        try:
            return fn(*args)
        except OSError as e:
            with self.lock:
                self.errors[e.strerror or str(e)] += 1
            raise
        finally:
            dt = time.monotonic() - t0
            with self.lock:
                self.ops += 1
                self.max_call = max(self.max_call, dt)
                if dt > BUDGET:
                    self.hangs.append((getattr(fn, "__name__", "?"), args, dt))


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def check_series(stats, ref, d):
    """Lists a series folder (which fetches it) and reads every file in it."""
    names = stats.call(os.listdir, d)
    uid = stats.call(os.getxattr, d, "user.tcia.series_uid").decode()
    for n in names:
        if n == "series.json":
            continue
        data = stats.call(read_file, os.path.join(d, n))
        want = ref.get(uid, {}).get(n)
        with stats.lock:
            if data != want:
                stats.mismatches.append((d, n, len(data), None if want is None else len(want)))
            else:
                stats.files_ok += 1
                stats.bytes_ok += len(data)


def reader(stats, ref, mp, stop, rnd):
    while not stop.is_set():
        try:
            dirs = series_dirs(mp)
            rnd.shuffle(dirs)
            for d in dirs[:3]:
                check_series(stats, ref, d)
                if stop.is_set():
                    break
            # Metadata too: the JSON files and the tables.
            for coll in os.listdir(mp):
                p = os.path.join(mp, coll, rnd.choice(["collection.json", "series.csv",
                                                       "CITATION.txt"]))
                if os.path.isdir(os.path.join(mp, coll)):
                    stats.call(read_file, p)
        except OSError:
            time.sleep(0.05)


def random_fault(rnd, uids):
    kind = rnd.choice(FAULTS)
    rule = {"kind": kind, "times": rnd.randint(1, 3)}
    if kind in ("truncate", "corrupt", "endless"):
        rule["endpoint"] = "getImage"
    elif kind == "huge":
        # A gzip bomb where metadata is expected (issue 14): refused at the memory cap.
        rule["endpoint"] = rnd.choice([e for e in ENDPOINTS if e != "getImage"])
        rule.update(gzip=True, mb=300)
    else:
        rule["endpoint"] = rnd.choice(ENDPOINTS)
    if rule["endpoint"] == "getImage" and rnd.random() < 0.5:
        rule["series"] = rnd.choice(uids)
    if kind == "delay":
        rule["seconds"] = rnd.uniform(0.2, 3 * TIMEOUT)
    elif kind == "status":
        rule["status"] = rnd.choice([500, 502, 503, 504])
    elif kind == "429":
        rule["retry_after"] = 1
    elif kind == "slow" and rule["endpoint"] == "getImage":
        rule["rate"] = rnd.choice([20000, 100000, 400000])
    elif kind == "slow":
        rule["rate"] = 150      # a metadata trickle: only the overall deadline ends it
    elif kind == "redirect":
        rule["location"] = "http://127.0.0.1:9/nowhere"     # a port nobody listens on
    return rule


def fault_campaign(ctx, seconds, readers, seed, log):
    rnd = random.Random(seed)
    s = ctx.server("--series-size-delay", "0.05")
    ref = reference(s)
    uids = sorted(ref)
    cache = ctx.path("fault-cache")
    m = ctx.mount(s, cache_dir=cache,
                  options=["timeout=%d" % TIMEOUT, "retries=%d" % RETRIES, "meta_ttl=2",
                           "walk_budget=0", "cache_size=200K"])
    stats = Stats()
    stop = threading.Event()
    threads = [threading.Thread(target=reader, args=(stats, ref, m.mountpoint, stop,
                                                     random.Random(seed + i)), daemon=True)
               for i in range(readers)]
    for t in threads:
        t.start()
    injected = collections.Counter()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if rnd.random() < 0.2:
            s.reset_faults()
        rule = random_fault(rnd, uids)
        s.fault(**rule)
        injected[rule["kind"]] += 1
        time.sleep(rnd.uniform(0.05, 0.4))
        if m.proc.poll() is not None or not mounted(m.mountpoint):
            break
    s.reset_faults()
    stop.set()
    for t in threads:
        t.join(BUDGET + 10)
    stuck = sum(t.is_alive() for t in threads)
    alive = m.proc.poll() is None and mounted(m.mountpoint)
    # The archive is healthy again: after the failure memory (3 s) and the metadata TTL
    # (2 s), every series must read back whole and right.
    time.sleep(3.5)
    final = Stats()
    final_errors = []
    for d in series_dirs(m.mountpoint) if alive else []:
        try:
            check_series(final, ref, d)
        except OSError as e:
            final_errors.append((d, str(e)))
    # With the cache capped at 200 kB, series come and go; what is stored must be whole.
    partial = verify_store(cache, ref)
    code = m.stop()
    result = {
        "seconds": seconds, "readers": readers, "faults": dict(injected),
        "faults_total": sum(injected.values()), "calls": stats.ops + final.ops,
        "errors_seen": dict(stats.errors), "files_verified": stats.files_ok + final.files_ok,
        "bytes_verified": stats.bytes_ok + final.bytes_ok,
        "mismatches": stats.mismatches + final.mismatches, "hangs": stats.hangs,
        "stuck_threads": stuck, "max_call_s": round(max(stats.max_call, final.max_call), 2),
        "mount_survived": alive and code == 0, "final_errors": final_errors,
        "partial_series": partial, "series": len(ref),
    }
    log("faults: %s" % json.dumps({k: v for k, v in result.items() if k != "errors_seen"}))
    ok = (not result["mismatches"] and not result["hangs"] and not stuck and
          result["mount_survived"] and not final_errors and not partial)
    return ok, result


def verify_store(cache, ref):
    """Series in the store that are not exactly the archive's (names and bytes)."""
    bad = []
    sdir = os.path.join(cache, "series")
    for uid in os.listdir(sdir) if os.path.isdir(sdir) else []:
        d = os.path.join(sdir, uid)
        names = set(os.listdir(d)) - {".manifest"}
        want = ref.get(uid)
        if want is None or names != set(want) or ".manifest" not in os.listdir(d):
            bad.append((uid, "names"))
            continue
        for n in names:
            with open(os.path.join(d, n), "rb") as f:
                if f.read() != want[n]:
                    bad.append((uid, n))
    return bad


def crash_campaign(ctx, kills, seed, log):
    rnd = random.Random(seed)
    s = ctx.server("--series-size-delay", "0", "--big-mb", "4")
    ref = reference(s)
    cache = ctx.path("crash-cache")
    result = {"kills": 0, "kills_mid_download": 0, "server_kills": 0, "store_checks": 0, "series_verified": 0,
              "partial": [], "tmp_left": [], "died": [], "stuck": 0, "mount_failures": 0,
              "stops": 0, "stops_mid_download": 0, "slow_stops": [], "max_stop_s": 0.0}
    for i in range(kills):
        # Empty the store (between mounts) most times, so that there is work to kill.
        sdir = os.path.join(cache, "series")
        if rnd.random() < 0.8 and os.path.isdir(sdir):
            subprocess.run(["rm", "-rf", sdir])
        try:
            m = ctx.mount(s, cache_dir=cache, name="crash%d" % i,
                          options=["timeout=%d" % TIMEOUT, "retries=1", "walk_budget=0",
                                   "max_fetches=4"])
        except AssertionError as e:
            result["mount_failures"] += 1
            log("crash %d: mount failed: %s" % (i, e))
            continue
        tmp = os.path.join(cache, "tmp")
        left = [f for f in os.listdir(tmp)] if os.path.isdir(tmp) else []
        if left:
            result["tmp_left"].append((i, left))
        if rnd.random() < 0.8:
            s.fault(kind="slow", endpoint="getImage", rate=rnd.choice([100000, 400000,
                                                                        1600000]))
        stop = threading.Event()
        stats = Stats()
        threads = [threading.Thread(target=reader, args=(stats, ref, m.mountpoint, stop,
                                                         random.Random(seed * 1000 + i * 10 + k)),
                                    daemon=True) for k in range(3)]
        for t in threads:
            t.start()
        time.sleep(rnd.uniform(0.1, 1.5))
        if any(f.endswith(".zip") for f in os.listdir(tmp)):
            result["kills_mid_download"] += 1
        server_too = rnd.random() < 0.1
        if server_too:
            s.proc.kill()       # mid-body, as often as not
            result["server_kills"] += 1
        if m.proc.poll() is not None:
            # It died before we killed it (a sanitizer report, a crash): a failure.
            result["died"].append((i, m.proc.returncode, m.log()[-2000:]))
        if not server_too and rnd.random() < 0.25:
            # An orderly stop instead (issue 14): SIGTERM ends downloads in flight, the
            # daemon exits 0 within 2 s, and the store is as clean as after a kill -9.
            mid = any(f.endswith(".zip") for f in os.listdir(tmp))
            t0 = time.monotonic()
            m.proc.terminate()
            try:
                m.proc.wait(30)
            except subprocess.TimeoutExpired:
                m.proc.kill()
                m.proc.wait()
            dt = time.monotonic() - t0
            result["stops"] += 1
            result["stops_mid_download"] += mid
            result["max_stop_s"] = round(max(result["max_stop_s"], dt), 2)
            if dt > 2 or m.proc.returncode != 0:
                result["slow_stops"].append((i, round(dt, 2), m.proc.returncode))
            m.exit_code = m.proc.returncode
        else:
            m.proc.kill()
            m.proc.wait()
            result["kills"] += 1
            m.exit_code = -9
        subprocess.run(["fusermount3", "-u", "-z", m.mountpoint], capture_output=True)
        stop.set()
        for t in threads:
            t.join(30)
            result["stuck"] += t.is_alive()
        if stats.mismatches:
            result["partial"].append((i, "read", stats.mismatches))
        bad = verify_store(cache, ref)
        result["store_checks"] += 1
        result["series_verified"] += len(os.listdir(os.path.join(cache, "series")))
        if bad:
            result["partial"].append((i, bad))
        if server_too:
            s.proc.wait()
            s = ctx.server("--series-size-delay", "0", "--big-mb", "4")
        else:
            s.reset_faults()
    # One more start-up: it must leave nothing in tmp/ either.
    m = ctx.mount(s, cache_dir=cache, name="crash-final")
    left = os.listdir(os.path.join(cache, "tmp"))
    if left:
        result["tmp_left"].append(("final", left))
    m.stop()
    log("crashes: %s" % json.dumps(result))
    ok = (not result["partial"] and not result["tmp_left"] and not result["stuck"] and
          not result["died"] and not result["slow_stops"] and
          result["kills"] + result["stops"] >= kills - result["mount_failures"] and
          not result["mount_failures"])
    return ok, result


def walk_listings(mp, coll):
    """{relative folder: sorted names} of a collection's patients and studies."""
    out = {}
    cdir = os.path.join(mp, coll)
    for pat in sorted(p for p in os.listdir(cdir) if p.startswith("SCALE-")):
        names = sorted(os.listdir(os.path.join(cdir, pat)))
        out[pat] = names
        for study in names:
            if study != "patient.json":
                out[pat + "/" + study] = sorted(os.listdir(os.path.join(cdir, pat, study)))
    return out


def damage_campaign(ctx, rounds, seed, log):
    """Pages of the catalog overwritten at random during walks (SIGHUP between rounds
    makes every listing go back to the catalog or the archive): each listing must be the
    reference's or an error, never short or wrong."""
    import signal
    import glob
    rnd = random.Random(seed)
    # Big enough that the catalog's pages do not all fit in the connections' caches.
    s = ctx.server("--scale", "600", "--series-size-delay", "0")
    coll = "Scale-Test"
    ref_m = ctx.mount(s, cache_dir=ctx.path("damage-ref-cache"), name="damage-ref")
    ref = walk_listings(ref_m.mountpoint, coll)
    ref_m.stop()
    cache = ctx.path("damage-cache")
    m = ctx.mount(s, cache_dir=cache, options=["walk_budget=0"])
    stats = collections.Counter()
    wrong = []
    for r in range(rounds):
        paths = glob.glob(os.path.join(cache, "catalog-*.sqlite"))
        if paths and os.path.getsize(paths[0]) > 16384:
            size = os.path.getsize(paths[0])
            with open(paths[0], "r+b") as f:
                for _ in range(rnd.randint(1, 8)):
                    page = rnd.randrange(1, size // 16384 + 1)
                    f.seek(page * 16384 + rnd.randrange(0, 16384 - 512))
                    f.write(bytes(rnd.randrange(256) for _ in range(rnd.choice((16, 512)))))
                    stats["pages_damaged"] += 1
        for key in rnd.sample(sorted(ref), min(len(ref), 80)):
            try:
                got = sorted(os.listdir(os.path.join(m.mountpoint, coll, key)))
            except OSError as e:
                stats["errors"] += 1
                stats["error " + (e.strerror or "?")] += 1
                continue
            stats["listings"] += 1
            if got != ref[key]:
                wrong.append((r, key, len(got), len(ref[key])))
        os.kill(m.proc.pid, signal.SIGHUP)      # everything asked again from here on
        time.sleep(0.05)
    alive = m.proc.poll() is None and mounted(m.mountpoint)
    # After the damage stops, a walk is whole and right.
    final = walk_listings(m.mountpoint, coll) if alive else {}
    code = m.stop()
    log_text = m.log()
    result = {"rounds": rounds, "pages_damaged": stats["pages_damaged"],
              "listings": stats["listings"], "errors": stats["errors"],
              "renewals": log_text.count("found damaged while in use; moved aside"),
              "wrong": wrong, "final_right": final == ref, "mount_survived": alive and code == 0}
    log("damage: %s" % json.dumps(result))
    return not wrong and result["final_right"] and result["mount_survived"], result


def overlong_campaign(ctx, opens, seed, log):
    """Series opened by UID, each with a record saying FileSize n (random, 300 B to
    1 MB) and a zip without end: tmp/ never holds more than the cap (16 MiB + 2n while
    the record is not there, 2n + 16 MiB after), and nothing is stored."""
    rnd = random.Random(seed)
    s = ctx.server("--series-size-delay", "0")
    recs = [r for c in s.get_json("getCollectionValues")
            for r in s.get_json("getSeries", Collection=c["Collection"])]
    cache = ctx.path("overlong-cache")
    m = ctx.mount(s, cache_dir=cache, options=["retries=0", "max_series=1G",
                                                "walk_budget=0", "meta_ttl=0"])
    tmp = os.path.join(cache, "tmp")
    peak_over, refused, stored, peak = 0, 0, 0, 0
    for i in range(opens):
        rec = dict(rnd.choice(recs), FileSize=rnd.choice((300, rnd.randrange(300, 1 << 20))))
        body = ctx.path("overlong-%d.json" % i)
        with open(body, "w") as f:
            json.dump([rec], f)
        s.reset_faults()
        s.fault(kind="body", endpoint="getSeries", path=body)
        s.fault(kind="endless", endpoint="getImage")
        cap = 16 * (1 << 20) + 2 * rec["FileSize"]
        done = threading.Event()
        seen = [0]

        def watch():
            while not done.is_set():
                total = 0
                for root, _, files in os.walk(tmp):
                    for n in files:
                        try:
                            total += os.lstat(os.path.join(root, n)).st_size
                        except OSError:
                            pass
                seen[0] = max(seen[0], total)
                time.sleep(0.002)
        t = threading.Thread(target=watch)
        t.start()
        try:
            os.listdir(os.path.join(m.mountpoint, ".tciafs", "series",
                                    rec["SeriesInstanceUID"]))
        except OSError:
            refused += 1
        done.set()
        t.join()
        peak = max(peak, seen[0])
        if seen[0] > cap:
            peak_over += 1
        stored += len(os.listdir(os.path.join(cache, "series")))
        s.reset_faults()
        time.sleep(3.1)         # the failure memory: the next open asks again
    alive = m.proc.poll() is None and mounted(m.mountpoint)
    left = os.listdir(tmp)
    code = m.stop()
    result = {"opens": opens, "refused": refused, "over_cap": peak_over, "stored": stored,
              "peak_tmp_bytes": peak, "tmp_left": left,
              "mount_survived": alive and code == 0}
    log("overlong: %s" % json.dumps(result))
    return (refused == opens and not peak_over and not stored and not left and
            result["mount_survived"]), result


def hostile_count():
    root = os.path.join(HERE, "..", "hostile")
    return {d: len([f for f in os.listdir(os.path.join(root, d)) if not f.startswith(".")])
            for d in ("zips", "api")}


def fuzz_runs():
    runs = {}
    for name in ("tcia", "names", "unzip", "view"):
        p = os.path.join(HERE, "..", "..", "build-fuzz", "fuzz_%s.log" % name)
        try:
            with open(p) as f:
                lines = [l for l in f if l.startswith("Done ")]
        except OSError:
            continue
        if lines:
            runs[name] = int(lines[-1].split()[1])
    return runs


def report(path, faults, crashes, damage, overlong, seed, elapsed):
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=HERE).stdout.strip() or "?"
    hostile = hostile_count()
    fuzz = fuzz_runs()
    lines = [
        "# tciafs reliability figures",
        "",
        "Written by `make torture` (tests/torture/torture.py, seed %d) on %s, commit %s, "
        "in %.0f s. `make check` runs a short version of the same campaigns."
        % (seed, datetime.date.today().isoformat(), commit, elapsed),
        "",
        "| what was tried | figure |",
        "| --- | --- |",
        "| faults injected while %d readers walked and read (%d s) | %d (%s) |"
        % (faults["readers"], faults["seconds"], faults["faults_total"],
           ", ".join("%s %d" % kv for kv in sorted(faults["faults"].items()))),
        "| calls on the mount during the fault campaign | %d |" % faults["calls"],
        "| errors callers got (expected under faults) | %s |"
        % (", ".join("%s: %d" % kv for kv in sorted(faults["errors_seen"].items())) or "none"),
        "| files read back and compared with the archive | %d (%d bytes) |"
        % (faults["files_verified"], faults["bytes_verified"]),
        "| longest call (budget %d s) | %.2f s |" % (BUDGET, faults["max_call_s"]),
        "| kill -9 of tciafs while readers fetched (a download in tmp/ at the moment) "
        "| %d (%d) |" % (crashes["kills"], crashes["kills_mid_download"]),
        "| kill -9 of the server mid-body | %d |" % crashes["server_kills"],
        "| SIGTERM while readers fetched (a download in tmp/ at the moment); longest stop "
        "(bound 2 s) | %d (%d); %.2f s |" % (crashes["stops"], crashes["stops_mid_download"],
                                           crashes["max_stop_s"]),
        "| store checks after a kill (each series verified file by file) | %d (%d series) |"
        % (crashes["store_checks"], crashes["series_verified"]),
        "| catalog damage: rounds of random pages overwritten during walks (pages); "
        "listings compared with the reference; errors callers got; catalogs set aside "
        "| %d (%d); %d; %d; %d |" % (damage["rounds"], damage["pages_damaged"],
                                    damage["listings"], damage["errors"], damage["renewals"]),
        "| **listings short or wrong** from a damaged catalog; a walk whole and right "
        "after | **%d**; %s |" % (len(damage["wrong"]), "yes" if damage["final_right"] else "NO"),
        "| over-long zips opened by UID (record FileSize 300 B–1 MB, zip without end): "
        "refused; over the cap in tmp/; stored | %d: %d; **%d**; %d |"
        % (overlong["opens"], overlong["refused"], overlong["over_cap"], overlong["stored"]),
        "| most bytes in tmp/ at once during them (cap 16 MiB + 2 × FileSize) | %d |"
        % overlong["peak_tmp_bytes"],
        "| hostile inputs in tests/hostile (zips, API answers), each with a test | %d, %d |"
        % (hostile["zips"], hostile["api"]),
        "| fuzz executions in the last `make fuzz` (build-fuzz/) | %s |"
        % (", ".join("%s %d" % kv for kv in sorted(fuzz.items())) or "not run"),
        "| **hangs** (calls over budget, stuck callers) | **%d** |"
        % (len(faults["hangs"]) + faults["stuck_threads"] + crashes["stuck"]),
        "| **bytes lost or wrong** (mismatched reads, partial series stored) | **%d** |"
        % (len(faults["mismatches"]) + len(faults["partial_series"]) + len(crashes["partial"])),
        "| leftovers in tmp/ after a start-up | %d |" % len(crashes["tmp_left"]),
        "| mount alive after the fault, damage and over-long campaigns | %s, %s, %s |"
        % tuple("yes" if x["mount_survived"] else "NO" for x in (faults, damage, overlong)),
        "",
        "Also covered by `make check`: the network gone (a server that never answers and one "
        "that is not there: 16 callers answered within the bound, unmount at once; "
        "tests/integration/test_resilience.py), every fault kind on its own "
        "(test_faults.py, test_fetch.py), the hostile corpus (test_hostile.py, "
        "test_unzip.c), fuzzing (make fuzz), ASan+UBSan over the whole suite and valgrind "
        "over the unit tests.",
        "",
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--readers", type=int, default=4)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--damage-rounds", type=int, default=3)
    ap.add_argument("--overlong", type=int, default=2)
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    ap.add_argument("--report", help="write the figures here (markdown)")
    args = ap.parse_args()
    os.environ["TCIAFS_BIN"] = os.path.abspath(args.bin)
    t0 = time.monotonic()
    work = tempfile.mkdtemp(prefix="tciafs-torture-")
    ctx = Context(os.path.abspath(args.bin), work)
    ok = False

    def log(msg):
        print("torture: " + msg, flush=True)

    log("seed %d (rerun with --seed %d)" % (args.seed, args.seed))
    try:
        ok1, faults = fault_campaign(ctx, args.seconds, args.readers, args.seed, log)
        ok2, crashes = crash_campaign(ctx, args.kills, args.seed, log)
        ok3, damage = damage_campaign(ctx, args.damage_rounds, args.seed, log)
        ok4, overlong = overlong_campaign(ctx, args.overlong, args.seed, log)
        ok = ok1 and ok2 and ok3 and ok4
        if args.report:
            report(args.report, faults, crashes, damage, overlong, args.seed,
                   time.monotonic() - t0)
            log("figures written to %s" % args.report)
    finally:
        ctx.cleanup()
        if ok:
            subprocess.run(["rm", "-rf", work])
        else:
            log("kept %s for a look" % work)
    log("%s in %.0f s" % ("PASS" if ok else "FAIL", time.monotonic() - t0))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
