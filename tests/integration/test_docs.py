# SPDX-License-Identifier: MIT
# The man page renders without warnings and documents every option --help lists, and the
# README documents them too: docs change with the behaviour they describe.

import os
import re
import subprocess

from harness import ROOT, run


def help_options():
    out = run([os.environ["TCIAFS_BIN"], "--help"]).stdout
    return sorted(set(re.findall(r"^\s+-o ([a-z_]+)", out.split("FUSE options:")[0], re.M)))


def test_man_pages_render_cleanly(ctx):
    for page, heading in (("tciafs.1", "THE WALK GUARD"), ("tciafs-prefetch.1", "EXIT STATUS")):
        r = subprocess.run(["groff", "-ww", "-man", "-Tutf8", os.path.join(ROOT, "docs", page)],
                           capture_output=True, text=True,
                           env=dict(os.environ, LC_ALL="C.UTF-8"))
        assert r.returncode == 0 and r.stderr == "", (page, r.stderr)
        text = re.sub(".\b", "", r.stdout)      # drop the overstrike used for bold
        assert heading in text, text[:500]


def test_every_option_is_documented(ctx):
    opts = help_options()
    assert len(opts) >= 12, opts
    man = open(os.path.join(ROOT, "docs", "tciafs.1")).read()
    readme = open(os.path.join(ROOT, "README.md")).read()
    for o in opts:
        assert re.search(r"\.B[I]? %s\b" % o, man), "man page lacks " + o
        assert "`%s" % o in readme, "README lacks " + o
