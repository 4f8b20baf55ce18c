#!/usr/bin/env python3
"""
Turns llhttp's request test corpus (test/request/*.md of nodejs/llhttp) into
requests.json, the cases hookd's parser is checked against (tests/unit/test_http.c).

    python3 extract.py LLHTTP_CHECKOUT_OR_GIT_DIR [OUT]

Each case: where it came from (file, line, heading), llhttp's parser mode for
it ("request" is llhttp's default, strict mode; "request-lenient-*" modes
loosen one rule), whether its test callback told llhttp to skip every body
(skipBody), the raw bytes (hex) and what llhttp's log says: the first
`error code=N reason="..."` line (null: none), and how many messages llhttp
completed before it. The markdown escapes are undone the way llhttp's own
test runner (test/md-test.ts) does: a trailing newline dropped, a backslash
before a newline joins the lines, every newline is CRLF, then \\r \\n \\t \\f
\\xHH and \\OOO stand for their characters, sent as UTF-8.
"""
import json
import os
import re
import subprocess
import sys


def read_corpus(src):
    """Yields (name, text) for test/request/*.md of a checkout or a bare git dir."""
    req = os.path.join(src, "test", "request")
    if os.path.isdir(req):
        for name in sorted(os.listdir(req)):
            if name.endswith(".md"):
                with open(os.path.join(req, name), encoding="utf-8") as f:
                    yield name, f.read()
        return
    git = ["git", "--git-dir", src]
    names = subprocess.run(git + ["ls-tree", "--name-only", "HEAD", "test/request/"],
                           check=True, capture_output=True, text=True).stdout.split()
    for path in sorted(names):
        if path.endswith(".md"):
            text = subprocess.run(git + ["show", "HEAD:" + path], check=True,
                                  capture_output=True).stdout.decode("utf-8")
            yield os.path.basename(path), text


def unescape(block):
    """The bytes llhttp's runner feeds its parser for one ```http block."""
    s = block
    if s.endswith("\n"):
        s = s[:-1]
    s = re.sub(r"\\(\r\n|\r|\n)", "", s)
    s = re.sub(r"\r\n|\r|\n", "\r\n", s)
    s = s.replace("\\r", "\r").replace("\\n", "\n").replace("\\t", "\t").replace("\\f", "\f")
    s = re.sub(r"\\x([0-9a-fA-F]+)", lambda m: chr(int(m.group(1), 16)), s)
    s = re.sub(r"\\([0-7]{1,3})", lambda m: chr(int(m.group(1), 8)), s)
    if "${" in s:
        raise ValueError("inline JavaScript in a case: not supported")
    # The runner hands the string to the parser as UTF-8 (its logs count
    # "\\xff" as two bytes).
    return s.encode("utf-8")


ERROR = re.compile(r'^off=\S+ error code=(\d+) reason="(.*)"$')


def cases(fname, text):
    lines = text.split("\n")
    heading, meta, inp, inp_line = None, None, None, 0
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^#+\s+(.*)$", line)
        if m:
            heading, meta, inp = m.group(1).strip(), None, None
        m = re.match(r"^<!--\s*meta=(.*?)\s*-->$", line)
        if m:
            meta = json.loads(m.group(1))
        if line.startswith("```") and line[3:].strip():
            kind, start = line[3:].strip(), i + 1
            i += 1
            while lines[i] != "```":
                i += 1
            body = "\n".join(lines[start:i]) + "\n"
            if kind == "http":
                inp, inp_line = unescape(body), start
            elif kind == "log" and inp is not None:
                error, messages = None, 0
                for entry in body.split("\n"):
                    e = ERROR.match(entry)
                    if e:
                        error = {"code": int(e.group(1)), "reason": e.group(2)}
                        break
                    if entry.endswith(" message complete"):
                        messages += 1
                yield {
                    "file": fname,
                    "line": inp_line,
                    "name": heading,
                    "mode": meta.get("type"),
                    "skip_body": bool(meta.get("skipBody")),
                    "raw_hex": inp.hex(),
                    "error": error,
                    "messages": messages,
                }
                inp = None
        i += 1


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[2] if len(sys.argv) == 3 else os.path.join(here, "requests.json")
    found = [c for fname, text in read_corpus(sys.argv[1]) for c in cases(fname, text)]
    with open(out, "w", encoding="utf-8") as f:
        f.write("[\n")
        f.write(",\n".join(json.dumps(c, sort_keys=True) for c in found))
        f.write("\n]\n")
    strict = [c for c in found if c["mode"] == "request"]
    print(f"{len(found)} cases, {len(strict)} in strict mode, "
          f"{sum(1 for c in strict if c['error'])} of them refused", file=sys.stderr)


if __name__ == "__main__":
    main()
