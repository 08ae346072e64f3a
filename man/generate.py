#!/usr/bin/env python3
"""Man pages (section 3) from include/connection.h's doc comments.

    python3 man/generate.py include/connection.h man/man3

writes one page per function (NAME, SYNOPSIS, DESCRIPTION, THREADS, SEE
ALSO), the overview page connection-core.3 (the header's introduction, the
functions, the types with their fields, the constants), and for each type a
one-line page `.so man3/connection-core.3` so that `man ConnectionConfig`
works too. Every file it writes is listed; stale *.3 files in the output
directory are removed. The output depends on the header only (no dates), so
`make man` is reproducible and tests/packaging/man_pages.rs can compare the
committed pages with a fresh run.
"""

import os
import re
import sys

MANUAL = "connection-core manual"
OVERVIEW = "connection-core"


def roff_text(text):
    """Escapes plain text for roff; `code` spans become bold."""
    out = []
    for i, part in enumerate(text.split("`")):
        part = part.replace("\\", "\\e")
        part = "".join(c if ord(c) < 128 else "\\[u%04X]" % ord(c) for c in part)
        if i % 2 == 1 and part:
            part = "\\fB" + part + "\\fR"
        out.append(part)
    return "".join(out)


def roff_line(line):
    """One input line of filled text: a leading '.' or "'" made literal."""
    line = roff_text(line.strip())
    if line.startswith((".", "'")):
        line = "\\&" + line
    return line


def code_line(line):
    """A line shown as is (no-fill mode)."""
    line = line.replace("\\", "\\e")
    line = "".join(c if ord(c) < 128 else "\\[u%04X]" % ord(c) for c in line)
    if line.startswith((".", "'")):
        line = "\\&" + line
    return line


def paragraphs(comment):
    """The comment's text as paragraphs (lists of lines), blank-line separated."""
    paras, cur = [], []
    for line in comment:
        if line.strip():
            cur.append(line.strip())
        elif cur:
            paras.append(cur)
            cur = []
    if cur:
        paras.append(cur)
    return paras


def comment_text(block):
    """The lines of a /** ... */ block without the comment markers."""
    lines = []
    for raw in block:
        s = raw.strip()
        if s in ("/**", "*/"):
            continue
        if s.startswith("* "):
            s = s[2:]
        elif s == "*":
            s = ""
        lines.append(s)
    return lines


def parse(header):
    """(intro lines, version, functions, types, constants) of the header."""
    lines = header.split("\n")
    intro = []
    i = 1
    while not lines[i].startswith(" */"):
        intro.append(lines[i][3:] if lines[i].startswith(" * ") else "")
        i += 1
    version = re.search(r'#define CONNECTION_VERSION_STRING "([^"]+)"', header).group(1)
    functions, types, constants = [], [], []
    comment = []
    while i < len(lines):
        line = lines[i]
        if line.startswith("/**"):
            block = []
            while True:
                block.append(lines[i])
                if lines[i].strip().endswith("*/"):
                    break
                i += 1
            comment = comment_text(block)
            i += 1
            continue
        m = re.match(r"^(.*?)\b([A-Za-z_][A-Za-z0-9_]*)\((.*)\);$", line)
        if m and not line.startswith("typedef"):
            functions.append((m.group(2), line, comment))
            comment = []
        elif line.startswith("#define ") and comment:
            constants.append((line.split()[1], " ".join(line.split()[2:]), comment))
            comment = []
        elif line.startswith("typedef"):
            body = [line]
            if line.rstrip().endswith("{"):
                while not lines[i].startswith("}"):
                    i += 1
                    body.append(lines[i])
            name = re.search(r"\b(\w+)\s*(?:\)\s*\(.*\))?;\s*$", body[-1])
            fn = re.match(r"typedef .*\(\*(\w+)\)\(", line)
            name = fn.group(1) if fn else name.group(1)
            types.append((name, body, comment))
            comment = []
        elif line.strip() and not line.startswith(("#", "}", "extern")):
            comment = []
        i += 1
    return intro, version, functions, types, constants


def split_thread(paras):
    """The description's paragraphs, and the "Thread: ..." text if any."""
    thread = None
    rest = []
    for p in paras:
        if p[0].startswith("Thread:") or p[0].startswith("Thread "):
            thread = " ".join(p)[len("Thread:"):].strip() if p[0].startswith("Thread:") else " ".join(p)
        else:
            rest.append(p)
    return rest, thread


def summary(paras):
    """The first sentence of the description, for the NAME line."""
    if not paras:
        return "connection-core function"
    text = " ".join(paras[0])
    depth = 0
    for k, c in enumerate(text):
        depth += {"(": 1, ")": -1}.get(c, 0)
        if c == "." and depth == 0 and (k + 1 == len(text) or text[k + 1] == " "):
            text = text[:k]
            break
    return text.replace("`", "")


def wrap_prototype(proto):
    """The prototype, one parameter per line when it is long."""
    if len(proto) <= 72:
        return [proto]
    open_at = proto.index("(")
    params = proto[open_at + 1:-2].split(", ")
    indent = " " * (open_at + 1)
    out = [proto[:open_at + 1] + params[0] + ("," if len(params) > 1 else ");")]
    for k, p in enumerate(params[1:], 1):
        out.append(indent + p + ("," if k < len(params) - 1 else ");"))
    return out


def th(name, version):
    """The title line; no hyphenation (identifiers would be split), ragged right."""
    return '.TH "%s" 3 "" "connection-core %s" "%s"\n.nh\n.ad l\n' % (name, version, MANUAL)


def function_page(name, proto, comment, version, all_functions):
    paras, thread = split_thread(paragraphs(comment))
    out = [th(name, version)]
    out.append(".SH NAME\n%s \\- %s\n" % (roff_text(name), roff_text(summary(paras))))
    out.append(".SH SYNOPSIS\n.nf\n.B #include <connection.h>\n.PP\n")
    for line in wrap_prototype(proto):
        out.append('.B "%s"\n' % code_line(line).replace('"', '""'))
    out.append(".fi\n.SH DESCRIPTION\n")
    for k, p in enumerate(paras):
        if k:
            out.append(".PP\n")
        out.extend(roff_line(l) + "\n" for l in p)
    if thread:
        out.append(".SH THREADS\n%s\n" % roff_line(thread))
    text = " ".join(" ".join(p) for p in paras)
    seen = sorted(
        f for f in all_functions if f != name and re.search(r"\b%s\b" % re.escape(f), text)
    )
    refs = [OVERVIEW] + seen
    out.append(".SH SEE ALSO\n")
    out.append(",\n".join(".BR %s (3)" % roff_text(r) for r in refs) + "\n")
    return "".join(out)


def overview_page(intro, version, functions, types, constants):
    out = [th(OVERVIEW, version)]
    out.append(
        ".SH NAME\nconnection-core \\- an epoll HTTP/1.1 connection core for C programs\n"
    )
    out.append(".SH SYNOPSIS\n.nf\n.B #include <connection.h>\n.fi\n")
    out.append(
        ".PP\nLink with \\fB\\-lconnection_core\\fR "
        "(\\fBpkg\\-config \\-\\-libs connection\\-core\\fR), or in CMake "
        "\\fBfind_package(connection\\-core)\\fR and the target "
        "\\fBconnection\\-core::shared\\fR or \\fBconnection\\-core::static\\fR.\n"
    )
    out.append(".SH DESCRIPTION\n")
    intro_paras = [p for p in paragraphs(intro) if "Do not edit" not in " ".join(p)]
    for k, p in enumerate(intro_paras):
        if k:
            out.append(".PP\n")
        out.extend(roff_line(l) + "\n" for l in p)
    out.append(".SH FUNCTIONS\n")
    for name, _, comment in functions:
        paras, _ = split_thread(paragraphs(comment))
        out.append(".TP\n.BR %s (3)\n%s\n" % (roff_text(name), roff_line(summary(paras))))
    out.append(".SH TYPES\n")
    for name, body, comment in types:
        out.append('.SS "%s"\n' % name)
        for k, p in enumerate(paragraphs(comment)):
            if k:
                out.append(".PP\n")
            out.extend(roff_line(l) + "\n" for l in p)
        out.append(".PP\n.RS 4\n.nf\n")
        field_comment = False
        for line in body:
            s = line.strip()
            # Field comments are shown as plain text after the definition.
            if s.startswith("/**"):
                field_comment = True
            if not field_comment:
                out.append(code_line(line.replace("  ", " ", 1) if line.startswith("  ") else line) + "\n")
            if s.endswith("*/"):
                field_comment = False
        out.append(".fi\n.RE\n")
        fields = field_docs(body)
        if fields:
            for field, doc in fields:
                out.append(".TP\n.B %s\n" % roff_text(field))
                for k, p in enumerate(paragraphs(doc)):
                    if k:
                        out.append(".IP\n")
                    out.extend(roff_line(l) + "\n" for l in p)
    out.append(".SH CONSTANTS\n")
    for name, value, comment in constants:
        out.append(".TP\n.BR %s \" (%s)\"\n" % (roff_text(name), code_line(value).replace('"', '\\(dq')))
        for k, p in enumerate(paragraphs(comment)):
            if k:
                out.append(".IP\n")
            out.extend(roff_line(l) + "\n" for l in p)
    out.append(".SH SEE ALSO\n")
    out.append(",\n".join(".BR %s (3)" % roff_text(n) for n, _, _ in functions) + "\n")
    return "".join(out)


def field_docs(body):
    """(field name, comment lines) of each documented field of a struct or enum."""
    out, block, in_comment = [], None, False
    for line in body[1:-1]:
        s = line.strip()
        if s.startswith("/**"):
            block, in_comment = [], True
        if in_comment:
            block.append(s)
            if s.endswith("*/"):
                in_comment = False
            continue
        m = re.match(r"^(\w+)\s*=\s*[^,]+,?$", s) or re.match(r"^.*[\s*](\w+);$", s)
        if m and block is not None:
            out.append((m.group(1), comment_text(block)))
        block = None
    return out


def main():
    header_path, out_dir = sys.argv[1], sys.argv[2]
    with open(header_path, encoding="utf-8") as f:
        header = f.read()
    intro, version, functions, types, constants = parse(header)
    names = [n for n, _, _ in functions]
    pages = {}
    for name, proto, comment in functions:
        pages[name + ".3"] = function_page(name, proto, comment, version, names)
    pages[OVERVIEW + ".3"] = overview_page(intro, version, functions, types, constants)
    for name, _, _ in types:
        pages.setdefault(name + ".3", ".so man3/%s.3\n" % OVERVIEW)
    os.makedirs(out_dir, exist_ok=True)
    for old in os.listdir(out_dir):
        if old.endswith(".3") and old not in pages:
            os.remove(os.path.join(out_dir, old))
    for name in sorted(pages):
        with open(os.path.join(out_dir, name), "w", encoding="ascii") as f:
            f.write(pages[name])
        print(os.path.join(out_dir, name))


if __name__ == "__main__":
    main()
