#!/usr/bin/env python3
"""What README.md, man/hookd.8 and HACKING.md name exists, and what exists
is named there:

- every `](#anchor)` link in README.md and HACKING.md is a heading of that
  file (GitHub's anchors: lower case, punctuation dropped, spaces to '-'),
  and README's Contents lists every chapter;
- every metric src/metrics.c exports is in README's "Admin listener" and in
  hookd.8's ADMIN LISTENER, and every hookd_* name either documents is one;
- every command of src/main.c's table and every option its parser takes is
  in hookd.8 and README's "Command line";
- every file in src/, src/schemes/ and src/web/ is in HACKING.md's "Files"
  table (a header by its module's .c, which the table's preamble covers;
  schemes by `schemes/*.c`), and every file the table names exists.

    python3 tests/lint/doc_refs.py [REPO_ROOT]

Exits 0 when all agree, 1 naming every difference.
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from doclint import ROOT, finish, read  # noqa: E402

problems = []


def section(text, heading_re, end_re):
    m = re.search(heading_re + r"(.*?)(?=" + end_re + ")", text, re.S | re.M)
    return m.group(1) if m else ""


readme = read("README.md")
hacking = read("HACKING.md")
man8 = read("man", "hookd.8")

# ---- anchors ----


def anchors(md):
    out = set()
    fenced = False
    for line in md.split("\n"):
        if line.startswith("```"):
            fenced = not fenced
        if fenced or not re.match(r"#{1,6} ", line):
            continue
        title = line.lstrip("#").strip().lower()
        out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


for name, md in (("README.md", readme), ("HACKING.md", hacking)):
    have = anchors(md)
    for a in sorted(set(re.findall(r"\]\(#([^)]+)\)", md))):
        if a not in have:
            problems.append("%s: link #%s names no heading" % (name, a))

# README's Contents names every chapter (## heading) but itself.
contents = section(readme, r"^## Contents\n", r"^## ")
listed = set(re.findall(r"\]\(#([^)]+)\)", contents))
fenced = False
for line in readme.split("\n"):
    if line.startswith("```"):
        fenced = not fenced
    if not fenced and line.startswith("## ") and line != "## Contents":
        a = re.sub(r"[^\w\- ]", "", line[3:].strip().lower()).replace(" ", "-")
        if a not in listed:
            problems.append("README.md: chapter '%s' is not in Contents" % line[3:])

# ---- metrics ----

metrics_c = read("src", "metrics.c")
exported = set(re.findall(r'head\(&sb, "(hookd_\w+)"', metrics_c))
if not exported:
    problems.append("src/metrics.c: no metric found (head(&sb, \"NAME\", ...))")
admin_readme = section(readme, r"^## Admin listener.*?\n", r"^## ")
admin_man = section(man8, r"^\.Sh ADMIN LISTENER\n", r"^\.Sh ")
for doc, text in (("README.md \"Admin listener\"", admin_readme),
                  ("hookd.8 ADMIN LISTENER", admin_man)):
    named = set(re.findall(r"\bhookd_[a-z_]+[a-z]", text))
    for m in sorted(exported - named):
        problems.append("%s: metric %s is not documented" % (doc, m))
    for m in sorted(named - exported):
        problems.append("%s: %s is documented, hookd exports no such metric" % (doc, m))

# ---- the command line ----

main_c = read("src", "main.c")
table = section(main_c, r"\} commands\[\] = \{", r"^\};")
commands = re.findall(r'^\t\{"(\w+)", cmd_', table, re.M)
options = set(re.findall(r'strn?cmp\(a, "(-[-\w=]+)"', main_c)) - {"--"}
cli_readme = section(readme, r"^## Command line\n", r"^## ")
# mdoc writes --x as \-x (Fl adds the first '-'); --config= as \-config Ns =
man_flat = man8.replace("\\-", "-").replace(" Ns = Ns ", "=").replace(" Ns =", "=")
for c in commands:
    if not re.search(r"^\.It Cm %s\b" % c, man8, re.M):
        problems.append("hookd.8 COMMANDS: command %s is not documented" % c)
    if not re.search(r"^\| `%s\b" % c, cli_readme, re.M):
        problems.append("README.md \"Command line\": command %s is not in the table" % c)
for o in sorted(options):
    end = "" if o.endswith("=") else r"(?![-\w])"  # --config=FILE
    if not re.search(r"\bFl %s%s" % (re.escape(o[1:]), end), man_flat):
        problems.append("hookd.8: option %s is not documented" % o)
    if not re.search(r"`[^`]*%s%s" % (re.escape(o), end), cli_readme):
        problems.append("README.md \"Command line\": option %s is not documented" % o)

# ---- HACKING.md's Files table ----

files = section(hacking, r"^## Files\n", r"^## ")
named = set()
for cell in re.findall(r"^\|[^|]*\| ([^|]*) \|", files, re.M):
    named.update(re.findall(r"`([\w./*]+)`", cell))
src = os.path.join(ROOT, "src")
for sub in ("", "schemes", "web"):
    for fn in sorted(os.listdir(os.path.join(src, sub))):
        path = os.path.join(sub, fn) if sub else fn
        if os.path.isdir(os.path.join(src, path)):
            continue
        covered = path in named or (sub == "schemes" and "schemes/*.c" in named)
        if fn.endswith(".h") and not sub:
            covered = covered or fn[:-2] + ".c" in named
        if not covered:
            problems.append("HACKING.md \"Files\": src/%s is not listed" % path)
for path in sorted(named):
    if "*" in path or path in ("src/web/",):
        continue
    if not os.path.exists(os.path.join(src, path)):
        problems.append("HACKING.md \"Files\": %s is listed, src/ has no such file" % path)

finish(problems, "doc_refs: %d metrics, %d commands, %d options, %d files agree"
       % (len(exported), len(commands), len(options), len(named)))
