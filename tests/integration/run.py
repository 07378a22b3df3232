#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Integration test runner: finds test_*(ctx) functions in test_*.py files, gives each a
# private folder and a harness.Context, always cleans up (even on failure, Ctrl-C or
# SIGTERM), and ends with the line "N passed, N failed". Exit status 0 only if all pass.

import argparse
import glob
import importlib.util
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402


class Interrupted(BaseException):
    pass


def discover(directory, pattern):
    tests = []
    for path in sorted(glob.glob(os.path.join(directory, "test_*.py"))):
        name = os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        for attr in sorted(vars(mod)):
            fn = getattr(mod, attr)
            if attr.startswith("test_") and callable(fn):
                full = "%s.%s" % (name, attr)
                if not pattern or any(p in full for p in pattern.split(",")):
                    tests.append((full, fn))
    return tests


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="the tciafs binary to test")
    ap.add_argument("--dir", default=HERE, help="folder of test_*.py files")
    ap.add_argument("-k", dest="pattern", help="only tests whose name contains this (or one of a,b,…)")
    ap.add_argument("--keep", action="store_true", help="keep each test's folder")
    args = ap.parse_args()

    binary = os.path.abspath(args.bin)
    if not os.access(binary, os.X_OK):
        print("run.py: %s is not an executable" % binary, file=sys.stderr)
        return 2
    os.environ["TCIAFS_BIN"] = binary
    os.environ["TCIAFS_QUERY"] = os.path.join(os.path.dirname(binary), "tcia-query")
    os.environ["TCIAFS_IDC_QUERY"] = os.path.join(os.path.dirname(binary), "idc-query")

    def on_signal(signum, frame):
        raise Interrupted("signal %d" % signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    tests = discover(args.dir, args.pattern)
    root = tempfile.mkdtemp(prefix="tciafs-it-")
    passed = failed = 0
    interrupted = False
    try:
        for name, fn in tests:
            workdir = os.path.join(root, name)
            os.makedirs(workdir)
            ctx = harness.Context(binary, workdir)
            t0 = time.monotonic()
            error = None
            try:
                fn(ctx)
            except Interrupted:
                interrupted = True
                error = "interrupted"
            except Exception:
                error = traceback.format_exc()
            finally:
                problems = ctx.cleanup()
            if problems and not error:
                error = "\n".join(problems)
            dt = time.monotonic() - t0
            if error:
                failed += 1
                print("FAIL %s (%.1fs)\n%s" % (name, dt, indent(error)), flush=True)
                for m in ctx.mounts:
                    print(indent("tciafs log:\n" + tail(m.err_path)), flush=True)
            else:
                passed += 1
                print("PASS %s (%.1fs)" % (name, dt), flush=True)
            if interrupted:
                break
    finally:
        for p in harness.mounts_under(root):
            harness.run(["fusermount3", "-u", "-z", p], check=False)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    if not tests:
        print("run.py: no tests found", file=sys.stderr)
        failed += 1
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 0 if failed == 0 and not interrupted else 1


def indent(text):
    return "\n".join("    " + line for line in text.rstrip().splitlines())


def tail(path, n=40):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no log)"


if __name__ == "__main__":
    sys.exit(main())
