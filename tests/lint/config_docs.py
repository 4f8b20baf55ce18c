#!/usr/bin/env python3
"""The config keys the code takes and the ones the documents describe are
the same, with the same defaults.

    python3 tests/lint/config_docs.py [REPO_ROOT]

The keys come from src/config.c's key tables (server_keys, endpoint_keys,
event_keys, admin_keys, their macros expanded), the schemes and their
scheme-limited keys from src/schemes/*.c, the defaults from config_new and
endpoint_init. Each key must be an `.It Ic KEY` of its section in
man/hookd.ini.5 and a row of its table in README's "Configuration", and
nothing may be documented there that the code does not take. A default the
code sets must be the one both documents give; a scheme-limited key must
name the schemes that take it, in both.

Exits 0 when all agree, 1 naming every difference.
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from doclint import ROOT, finish, read  # noqa: E402

problems = []


# ---- the code ----

config_c = read("src", "config.c")
# #define NAME(ARGS) BODY, continuation lines joined
macros = {}
for m in re.finditer(r"^#define (\w+)\(([^)]*)\)((?:.*\\\n)*.*)$", config_c, re.M):
    macros[m.group(1)] = m.group(3).replace("\\\n", "\n")


def entries(body):
    """(key, setter, field, by_scheme) of a key table's text, macros expanded."""
    out = []
    for m in re.finditer(r'\{\s*"(\w+)",\s*(\w+),\s*([^,]*),([^}]*)\}'
                         r'|\b(DUR_POS|DUR_NONNEG)\("(\w+)",\s*\w+\(([^)]*)\)\)'
                         r"|\b([A-Z][A-Z_]+)\(", body):
        if m.group(1):
            field = re.sub(r".*[(\s.]", "", m.group(3).strip().rstrip(")"))
            out.append((m.group(1), m.group(2), field, "BY_SCHEME" in m.group(4)))
        elif m.group(5):
            field = m.group(7).strip().split(".")[-1]
            out.append((m.group(6), "set_duration", field, False))
        elif m.group(8) in macros and m.group(8) not in ("DUR_POS", "DUR_NONNEG"):
            out.extend(entries(macros[m.group(8)]))
    return out


def table(name):
    m = re.search(r"struct keydef %s\[\] = \{(.*?)\n\};" % name, config_c, re.S)
    if not m:
        sys.exit("config_docs: no key table %s in src/config.c" % name)
    return entries(m.group(1))


code = {
    "server": table("server_keys"),
    "endpoint": table("endpoint_keys"),
    "event": table("event_keys"),
    "admin": table("admin_keys"),
}

schemes = {}  # name -> its scheme-limited keys
scheme_dir = os.path.join(ROOT, "src", "schemes")
for fn in sorted(os.listdir(scheme_dir)):
    text = read("src", "schemes", fn)
    name = re.search(r'\.name = "(\w+)"', text)
    if not name:
        continue
    keys = re.search(r"\.keys = \(const char \*const\[\]\)\{(.*?)\}", text, re.S)
    schemes[name.group(1)] = set(re.findall(r'"(\w+)"', keys.group(1))) if keys else set()
by_scheme = {k for k, _, _, b in code["endpoint"] if b}
for s, keys in schemes.items():
    for k in sorted(keys - by_scheme):
        problems.append("scheme %s takes '%s', which is no scheme-limited endpoint key" % (s, k))


def function_body(name):
    m = re.search(r"\n[^\n]*\b%s\([^)]*\)\n\{(.*?)\n\}" % name, config_c, re.S)
    return m.group(1) if m else ""


def evaluate(expr):
    """A default's C expression as text a document would show, or None."""
    expr = expr.strip()
    m = re.fullmatch(r'(?:xstrdup|split_words|abs_path)\((?:c, )?"([^"]*)"(?:, NULL)?\)', expr)
    if m:
        return m.group(1)
    if expr in ("true", "false"):
        return "yes" if expr == "true" else "no"
    if expr == "-1":
        return None  # unset
    m = re.fullmatch(r"[A-Z]+(?:_[A-Z0-9]+)*_([A-Z0-9]+)", expr)
    if m:
        return m.group(1).lower()  # MODE_SYNC, HMAC_SHA256, LOG_FORMAT_LOGFMT
    if expr == "scheme_default()":
        return re.search(r"return &scheme_(\w+);", read("src", "schemes", "registry.c")).group(1)
    num = expr
    for unit, ms in (("MS_DAY", 86400000), ("MS_HOUR", 3600000), ("MS_MINUTE", 60000),
                     ("MS_SECOND", 1000)):
        num = num.replace(unit, str(ms))
    if re.fullmatch(r"[0-9 *+]+", num):
        return eval(num)  # only digits and operators: checked above
    return None


def defaults(body, var):
    out = {}
    for m in re.finditer(r"^\s*((?:%s->[\w.]+ = )+)(.*);$" % var, body, re.M):
        value = evaluate(m.group(2))
        for target in re.findall(r"%s->([\w.]+) = " % var, m.group(1)):
            out[target.split(".")[-1]] = (target.startswith("server_opts."), value)
    return out


server_defaults = defaults(function_body("config_new"), "c")
endpoint_defaults = defaults(function_body("endpoint_init"), "ep")


def code_default(section, setter, field):
    """(known, value): known False when the code sets none we can read."""
    if section == "endpoint" and field in endpoint_defaults:
        return True, endpoint_defaults[field][1]
    if section in ("server", "event") and field in server_defaults:
        return True, server_defaults[field][1]
    return False, None


SIZES = {"": 1, "k": 1024, "kib": 1024, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30}
DURATIONS = {"ms": 1, "": 1000, "s": 1000, "m": 60000, "h": 3600000, "d": 86400000}


def normal(setter, text):
    """A documented default in the code's terms (ms, bytes), or None: unset."""
    text = text.strip().strip("`")
    if text.lower() in ("", "unset", "none", "off", "—", "everyone", "no bound"):
        return None
    m = re.fullmatch(r"([0-9]+)\s*([a-z]*)", text, re.I)
    if m and setter in ("set_duration", "set_respond_within") and m.group(2) in DURATIONS:
        return int(m.group(1)) * DURATIONS[m.group(2)]
    if m and setter == "set_size" and m.group(2).lower() in SIZES:
        return int(m.group(1)) * SIZES[m.group(2).lower()]
    if m and not m.group(2):
        return int(m.group(1))
    if setter == "set_bool":
        return {"yes": "yes", "true": "yes", "on": "yes", "1": "yes"}.get(text.lower(), "no")
    return text


# ---- man/hookd.ini.5 ----

man = read("man", "hookd.ini.5")
MAN_SECTIONS = {"server": "SERVER", "endpoint": "ENDPOINTS", "event": "EVENTS", "admin": "ADMIN"}


def man_items(sh):
    """KEY -> (default text or None when unknown, schemes it says 'For')."""
    m = re.search(r"^\.Sh %s\n(.*?)(?=^\.Sh )" % sh, man, re.S | re.M)
    if not m:
        problems.append("man/hookd.ini.5: no section %s" % sh)
        return {}
    lines = m.group(1).split("\n")
    out = {}
    depth = 0
    for i, line in enumerate(lines):
        if line.startswith(".Bl"):
            depth += 1
        elif line.startswith(".El"):
            depth -= 1
        if depth != 1 or not line.startswith(".It Ic "):
            continue
        head = line[len(".It Ic "):]
        keys = re.findall(r"(?:^|Ic |, )(\w+)(?= |,|$)", head.split(" No ")[0] + " ")
        keys += re.findall(r"\bIc (\w+)", head)
        default = None
        d = re.search(r"No = (Li|Cm) (\S+)$", head)
        if d:
            default = d.group(2)
        elif head.endswith("No ="):
            default = ""
        said = set()
        if i + 1 < len(lines) and lines[i + 1] == "For":
            for follow in lines[i + 2:]:
                c = re.match(r"\.Cm (\w+)( [,:])?$", follow)
                if c:
                    said.add(c.group(1))
                    if c.group(2) == " :":
                        break
                elif follow != "and":
                    break
        for k in dict.fromkeys(keys):
            if k in ("No", "Li", "Cm", "Ar"):
                continue
            out[k] = (default if len(set(keys)) == 1 else None, said)
    return out


# ---- README.md ----

readme = read("README.md")
README_TABLES = {"server": "[server]", "endpoint": "[endpoint NAME]", "event": "[event NAME]",
                 "admin": "[admin]"}


def readme_rows(heading):
    """KEY -> (default text or None when unknown, meaning)."""
    m = re.search(r"^### %s\n(.*?)(?=^#)" % re.escape(heading), readme, re.S | re.M)
    if not m:
        problems.append("README.md: no heading '### %s'" % heading)
        return {}
    out = {}
    for line in m.group(1).split("\n"):
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if not line.startswith("| `") or len(cells) < 3:
            continue
        keys = re.findall(r"`(\w+)`", cells[0])
        values = [v.strip() for v in cells[1].split(",")] if len(keys) > 1 else [cells[1]]
        for n, k in enumerate(keys):
            v = values[n] if len(values) == len(keys) else None
            if v is not None:
                v = re.sub(r"\s*\(.*\)$", "", v)  # `0` (off)
                if not re.fullmatch(r"`[^`]*`|unset|none|off|—|everyone", v):
                    v = None  # "required", "the server's", ...
            out[k] = (v, cells[2])
    return out


# ---- the comparison ----

# man's ENDPOINTS sends the reader to EVENTS for the delivery settings.
in_man_events = man_items(MAN_SECTIONS["event"])
event_names = [k for k, _, _, _ in code["event"]]

for section, keys in code.items():
    in_man = man_items(MAN_SECTIONS[section])
    in_readme = readme_rows(README_TABLES[section])
    names = [k for k, _, _, _ in keys]
    for key, setter, field, limited in keys:
        known, value = code_default(section, setter, field)
        for doc, items in (("man/hookd.ini.5 %s" % MAN_SECTIONS[section], in_man),
                           ("README.md [%s]" % section, in_readme)):
            if key not in items:
                # man's ENDPOINTS refers to EVENTS for the delivery settings
                if not (doc.startswith("man") and section == "endpoint"
                        and key in in_man_events and key in event_names):
                    problems.append("%s: key '%s' is not documented" % (doc, key))
                continue
            said = items[key][0]
            if known and said is not None and normal(setter, said) != value:
                problems.append("%s: '%s' default %r, the code's is %r"
                                % (doc, key, said, value))
        if limited:
            takers = {s for s, ks in schemes.items() if key in ks}
            if key in in_man and in_man[key][1] != takers:
                problems.append("man/hookd.ini.5: '%s' is said for %s, taken by %s"
                                % (key, sorted(in_man[key][1]), sorted(takers)))
            if key in in_readme:
                paren = re.findall(r"\(((?:`\w+`(?:, )?)+)(?: only)?\)", in_readme[key][1])
                named = set(re.findall(r"`(\w+)`", paren[-1])) if paren else set()
                if named != takers:
                    problems.append("README.md [endpoint]: '%s' is said for %s, taken by %s"
                                    % (key, sorted(named), sorted(takers)))
    for doc, items in (("man/hookd.ini.5 %s" % MAN_SECTIONS[section], in_man),
                       ("README.md [%s]" % section, in_readme)):
        for k in items:
            if k not in names:
                problems.append("%s: '%s' is documented, the code has no such key" % (doc, k))

# The schemes: each one a `.It Cm` of man's SCHEMES and named in README's
# `scheme` row, and nothing else there.
m = re.search(r"^\.Sh SCHEMES\n(.*?)(?=^\.Sh )", man, re.S | re.M)
man_schemes = set(re.findall(r"^\.It Cm (\w+)$", m.group(1), re.M)) if m else set()
row = readme_rows("[endpoint NAME]").get("scheme", (None, ""))[1]
readme_schemes = set(re.findall(r"\w+", row.strip("`")))
for doc, named in (("man/hookd.ini.5 SCHEMES", man_schemes), ("README.md scheme", readme_schemes)):
    for s in sorted(set(schemes) - named):
        problems.append("%s: scheme '%s' is not documented" % (doc, s))
    for s in sorted(named - set(schemes)):
        problems.append("%s: scheme '%s' is documented, the code has none" % (doc, s))

finish(problems, "config_docs: %d keys, %d schemes agree"
       % (sum(len(v) for v in code.values()), len(schemes)))
