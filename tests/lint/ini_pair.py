#!/usr/bin/env python3
"""hookd.ini (the checkout's example, run by scripts/quickstart.sh) and
packaging/hookd.ini (what the Debian package installs as
/etc/hookd/hookd.ini) must say the same thing, except for the settings
listed in DIFFERENCES below, each with the reason it differs. Comments may
differ freely: each file speaks to its own reader.

    python3 tests/lint/ini_pair.py [REPO_INI PACKAGE_INI]

Exits 0 when they agree, 1 naming every setting that drifted.
"""
import os
import sys

# (section, key): (value in hookd.ini, value in packaging/hookd.ini);
# None means the file does not set the key.
DIFFERENCES = {
    # The checkout's journal is off so that the quick start writes nothing
    # outside it; the package keeps one where Debian keeps state.
    ("server", "state_dir"): (None, "/var/lib/hookd"),
    # quickstart.sh makes the token next to hookd.ini; the package's
    # postinst makes it in /etc/hookd.
    ("endpoint northflank", "secret_file"): ("northflank.token", "/etc/hookd/northflank.token"),
    # The package's postinst makes a user for the hooks; the checkout's
    # quick start runs hookd as whoever starts it, and its hooks with it.
    ("server", "hook_user"): (None, "hookd-hooks"),
    # ... and a writable home for them, which is also where they run; the
    # checkout's hooks run in hooks.d, as whoever starts hookd.
    ("server", "workdir"): (None, "/var/lib/hookd-hooks"),
    # The package serves /healthz and /metrics for its unit's operators.
    ("admin", "listen"): (None, "127.0.0.1:9100"),
}


def settings(path):
    """Every (section, key) -> value of an INI file, as hookd reads it:
    full-line comments start with ';' or '#', an inline comment is ' ;'."""
    out = {}
    section = None
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line[0] in ";#":
                continue
            if line.startswith("["):
                if not line.endswith("]"):
                    raise SystemExit(f"{path}:{lineno}: bad section line")
                section = " ".join(line[1:-1].split())
                continue
            if " ;" in line:
                line = line[: line.index(" ;")].rstrip()
            key, sep, value = line.partition("=")
            if not sep or section is None:
                raise SystemExit(f"{path}:{lineno}: not a key = value line in a section")
            out[(section, key.strip())] = value.strip()
    return out


def main(argv):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    repo_ini, pkg_ini = (argv[1:3] if len(argv) == 3 else
                         (os.path.join(root, "hookd.ini"),
                          os.path.join(root, "packaging", "hookd.ini")))
    repo, pkg = settings(repo_ini), settings(pkg_ini)
    problems = []
    for name in sorted(set(repo) | set(pkg) | set(DIFFERENCES)):
        got = (repo.get(name), pkg.get(name))
        want = DIFFERENCES.get(name, (got[0], got[0]))
        if got != want:
            section, key = name
            problems.append(f"[{section}] {key}: hookd.ini has {got[0]!r}, "
                            f"packaging/hookd.ini has {got[1]!r}; expected {want[0]!r} and {want[1]!r}")
    for line in problems:
        print(line)
    if problems:
        print("hookd.ini and packaging/hookd.ini drifted apart: make them agree, or document "
              "the difference in tests/lint/ini_pair.py")
        return 1
    print(f"ok: {len(repo)} and {len(pkg)} settings, {len(DIFFERENCES)} documented differences")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
