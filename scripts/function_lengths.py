#!/usr/bin/env python3
"""Reports caliprox's longest C++ functions and files, and fails past the
limits of DESIGN style rule 7 ("split past ~800 lines; functions under ~150
lines").

Fails (exit 1) when
  - a function in one of the checked folders (default src/engine, src/tune,
    src/app) is longer than --max-function lines (default 150), or
  - any source file under src/ is longer than --max-file lines (default 800),
    unless it is a generated file listed in GENERATED below.
The ten longest functions of the checked folders are printed, and those of
the whole of src/ as information. Exit 2: usage error.

A function runs from the first line of its declaration (after any comment
above it) to its closing brace. Functions are found by matching braces after
blanking comments, string and character literals and preprocessor lines:
namespaces and class bodies are looked into, a lambda or local class counts
towards the function that contains it, and a brace-or-equal initializer is
not a function (a lambda initialising a namespace-scope variable is counted
under the variable's name).

Prints "N passed, N failed, 0 skipped" last, like the project's other
suites, so scripts/run-tests.sh adds it up.
"""
import argparse
import os
import re
import sys

from src_tree import add_src_option, shown_path, source_files

# Generated sources under src/ that may exceed the file limit, path relative
# to src/ -> why. None today: the experiment schema that embed.py turns into
# C++ is written to the build folder, not to src/.
GENERATED = {}


def blank_code(text):
    """The text with comments, literals and preprocessor lines replaced by
    spaces (quotes kept, newlines kept, so offsets and line numbers hold)."""
    out = list(text)
    n = len(text)
    i = 0
    line_start = True  # only whitespace since the last newline

    def blank(a, b):
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        if c == "\n":
            line_start = True
            i += 1
            continue
        if line_start and c == "#":
            # A directive, with its continuation lines.
            j = i
            while j < n and text[j] != "\n":
                j += 2 if text[j] == "\\" and j + 1 < n else 1
            blank(i, j)
            i = j
            continue
        if not c.isspace():
            line_start = False
        two = text[i:i + 2]
        if two == "//":
            j = text.find("\n", i)
            j = n if j < 0 else j
            blank(i, j)
            i = j
        elif two == "/*":
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            blank(i, j)
            i = j
        elif c == '"' and i > 0 and text[i - 1] == "R" and (i < 2 or not (text[i - 2].isalnum() or text[i - 2] == "_")
                                                           or text[i - 2] in "uUL8"):
            m = re.match(r'"([^()\\\s]{0,16})\(', text[i:])
            if not m:
                i += 1
                continue
            end = text.find(")" + m.group(1) + '"', i)
            end = n if end < 0 else end + len(m.group(1)) + 1
            blank(i + 1, end)
            i = end + 1
        elif c == '"' or (c == "'" and not is_digit_separator(text, i)):
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            blank(i + 1, min(j, n))
            i = j + 1
        else:
            i += 1
    return "".join(out)


def is_digit_separator(text, i):
    """Whether the ' at i separates digits (1'000'000) rather than opening a character literal."""
    j = i
    while j > 0 and (text[j - 1].isalnum() or text[j - 1] in "_'."):
        j -= 1
    return j < i and text[j].isdigit()


def strip_template_prefix(header):
    """The declaration without leading `template <...>` clauses."""
    while True:
        m = re.match(r"\s*template\s*<", header)
        if not m:
            return header
        depth, k = 1, m.end()
        while k < len(header) and depth:
            depth += {"<": 1, ">": -1}.get(header[k], 0)
            k += 1
        header = header[k:]


def top_level(header, char):
    """Offset of the first `char` outside parentheses/brackets, or -1."""
    depth = 0
    for k, c in enumerate(header):
        if c == char and depth == 0:
            return k
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
    return -1


def function_name(header):
    h = re.sub(r"\s+", " ", strip_template_prefix(header)).strip()
    m = re.search(r"([\w:~]*\boperator\b)\s*(\(\)|\[\]|[^\w\s(][^\s(]*|[\w][\w\s:<>*&]*?)\s*\(", h)
    if m:
        return (m.group(1) + (" " if m.group(2)[0].isalnum() else "") + m.group(2)).strip()
    paren = top_level(h, "(")
    eq = top_level(h, "=")
    if eq >= 0 and (paren < 0 or eq < paren):  # a variable initialised by a lambda
        m = re.search(r"([\w:]+)\s*$", h[:eq])
        return (m.group(1) if m else "?") + " (initializer)"
    prefix = h[:paren].rstrip()
    if prefix.endswith("]"):
        return "(lambda)"
    if prefix.endswith(">"):  # f<int>(...): drop the template arguments
        depth, k = 0, len(prefix)
        while k > 0:
            k -= 1
            depth += {">": 1, "<": -1}.get(prefix[k], 0)
            if depth == 0:
                break
        prefix = prefix[:k].rstrip()
    m = re.search(r"((?:\w+::)*~?\w+)$", prefix)
    return m.group(1) if m else "(unnamed)"


def classify(header):
    """'ns', 'class', 'func' or 'other' for the block a header opens, and a name."""
    h = re.sub(r"\[\[.*?\]\]", " ", header)
    h = re.sub(r"\balignas\s*\([^)]*\)", " ", h)
    h = strip_template_prefix(h).strip()
    if re.match(r"(inline\s+)?namespace\b", h) or re.match(r'extern\s*"', h):
        return "ns", ""
    m = re.match(r"(?:typedef\s+)?(class|struct|union)\b\s*(\w*)", h)
    if m:
        return "class", m.group(2)
    if re.match(r"(typedef\s+)?enum\b", h):
        return "other", ""
    eq = top_level(h, "=")
    if eq >= 0 and re.match(r"\s*\[[^\]]*\]", h[eq + 1:]):  # x = [...](...) { a lambda
        m = re.search(r"([\w:]+)\s*$", h[:eq])
        return "func", (m.group(1) if m else "?") + " (initializer)"
    if "(" in h:
        return "func", function_name(h)
    return "other", ""


def find_functions(text):
    """[(name, first line, last line)] of the function bodies in one file's text."""
    code = blank_code(text)
    functions = []
    # Scopes where declarations are looked for: (kind, name).
    scopes = [("ns", "")]
    header, header_line = [], None
    paren = 0
    inner = 0           # depth of braces inside the current header (default args, init lists)
    init_list = False   # past `) :` in the current header: a constructor's initializer list
    seen_paren = False
    body = None         # (name, first line, depth) while inside a function or other block
    depth = 0           # brace depth inside `body`
    line = 1

    def reset():
        nonlocal header, header_line, paren, inner, init_list, seen_paren
        header, header_line, paren, inner, init_list, seen_paren = [], None, 0, 0, False, False

    def prev_char():
        for c in reversed(header):
            if not c.isspace():
                return c
        return ""

    for k, c in enumerate(code):
        if c == "\n":
            line += 1
        if body is not None:  # inside a function (or an initializer): count braces only
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    kind, name, first = body
                    if kind == "func":
                        functions.append((name, first, line))
                    body = None
                    reset()
            continue
        if inner:
            header.append(c)
            inner += {"{": 1, "}": -1}.get(c, 0)
            continue
        if c == "{":
            if paren > 0 or (init_list and (prev_char().isalnum() or prev_char() in "_>")):
                header.append(c)
                inner = 1
                continue
            kind, name = classify("".join(header))
            if kind == "ns":
                scopes.append(("ns", ""))
                reset()
            elif kind == "class":
                scopes.append(("class", name))
                reset()
            else:
                classes = [s[1] for s in scopes if s[0] == "class" and s[1]]
                if kind == "func" and classes and "::" not in name:
                    name = "::".join(classes + [name])
                body = (kind, name, header_line if header_line is not None else line)
                depth = 1
            continue
        if c == "}":
            if len(scopes) > 1:
                scopes.pop()
            reset()
            continue
        if c == ";" and paren == 0:
            reset()
            continue
        if c == ":" and paren == 0:
            so_far = "".join(header)
            if re.fullmatch(r"\s*(public|private|protected)\s*", so_far):
                reset()
                continue
            before = code[k - 1] if k > 0 else ""
            after = code[k + 1] if k + 1 < len(code) else ""
            if seen_paren and before != ":" and after != ":":
                init_list = True
        if c == "(":
            paren += 1
            seen_paren = True
        elif c == ")":
            paren -= 1
        if header_line is None and not c.isspace():
            header_line = line
        header.append(c)
    return functions


def print_top(title, rows, top):
    print(title)
    width = max([len(r[1]) for r in rows[:top]] + [8])
    for name, where, length in rows[:top]:
        print(f"  {length:5d}  {where:<{width}}  {name}")


def main():
    parser = argparse.ArgumentParser(
        description="Report the longest functions and files of src/; fail when a function in the checked "
                    "folders or any file is over its limit (DESIGN style rule 7).")
    add_src_option(parser)
    parser.add_argument("--check", nargs="+", default=["engine", "tune", "app"], metavar="DIR",
                        help="folders under src/ whose functions are held to --max-function (default: %(default)s)")
    parser.add_argument("--max-function", type=int, default=150, help="longest function allowed (default: %(default)s)")
    parser.add_argument("--max-file", type=int, default=800, help="longest file allowed (default: %(default)s)")
    parser.add_argument("--top", type=int, default=10, help="functions listed per table (default: %(default)s)")
    args = parser.parse_args()
    if not os.path.isdir(args.src):
        print(f"function_lengths: {args.src}: no such folder", file=sys.stderr)
        return 2

    root = os.path.dirname(os.path.abspath(args.src))
    prefix = shown_path(args.src, root) + "/"
    checked = tuple(d.strip("/") + "/" for d in args.check)
    everything, long_files = [], []
    for path in source_files(args.src):
        rel = os.path.relpath(path, args.src).replace(os.sep, "/")
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
        if lines > args.max_file and rel not in GENERATED:
            long_files.append((lines, prefix + rel))
        for name, first, last in find_functions(text):
            everything.append((name, f"{prefix}{rel}:{first}", last - first + 1, rel.startswith(checked)))

    everything.sort(key=lambda r: (-r[2], r[1]))
    in_checked = [r[:3] for r in everything if r[3]]
    dirs = ", ".join(prefix + d.rstrip("/") for d in checked)
    print_top(f"Longest functions in {dirs} (limit {args.max_function} lines):", in_checked, args.top)
    print_top(f"Longest functions in all of {prefix} (information):", [r[:3] for r in everything], args.top)

    passed = failed = 0
    too_long = [r for r in in_checked if r[2] > args.max_function]
    if too_long:
        failed += 1
        print(f"FAIL: {len(too_long)} function(s) in {dirs} longer than {args.max_function} lines:")
        for name, where, length in too_long:
            print(f"  {length:5d}  {where}  {name}")
    else:
        passed += 1
        print(f"ok: no function in {dirs} is longer than {args.max_function} lines")
    if long_files:
        failed += 1
        print(f"FAIL: {len(long_files)} file(s) in {prefix} longer than {args.max_file} lines:")
        for lines, where in sorted(long_files, reverse=True):
            print(f"  {lines:5d}  {where}")
    else:
        passed += 1
        print(f"ok: no file in {prefix} is longer than {args.max_file} lines")
    for rel, why in sorted(GENERATED.items()):
        print(f"(not held to the file limit: {prefix}{rel}: {why})")
    print(f"{passed} passed, {failed} failed, 0 skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
