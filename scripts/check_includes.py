#!/usr/bin/env python3
"""Checks the include graph between caliprox's modules (DESIGN: "No include
cycles between modules").

A module is the first folder under src/ (src/ir/ops/x.h is in `ir`),
except that each backend folder is a module of its own: src/backends/<name>/
is `backends/<name>`, and the files directly in src/backends/ (the Backend
interface, the registry) are `backends`. An edge A -> B is an
`#include "B/..."` line in a file of A. Includes without a folder
(`#include "local.h"`) stay inside their module; <...> includes are outside
the project.

Fails (exit 1) when
  - modules include each other in a cycle: each cycle is listed with one
    include (file:line) per edge and how many more make the same edge;
  - a module includes one the dependency table does not allow (--deps,
    default scripts/module_deps.txt next to this script), or a module is
    missing from the table (a new module's dependencies are a decision, so
    they are written down when it is added).
Exit 2: usage error (missing folder, unreadable or malformed table).

Prints "N passed, N failed, 0 skipped" last, like the project's other
suites, so scripts/run-tests.sh adds it up.
"""
import argparse
import os
import re
import sys

from src_tree import add_src_option, shown_path, source_files
from collections import defaultdict

INCLUDE_RE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')
HERE = os.path.dirname(os.path.abspath(__file__))


def module_of(rel_path):
    """Module of a path relative to src/ (a source file or an include target)."""
    parts = rel_path.replace(os.sep, "/").split("/")
    if len(parts) < 2:
        return None  # a file directly in src/ (none today), or a folder-less include
    if parts[0] == "backends":
        return "backends/" + parts[1] if len(parts) >= 3 else "backends"
    return parts[0]


def includes_of(path):
    """(line number, include target) of each quoted include outside comments."""
    in_block_comment = False
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if in_block_comment:
                end = line.find("*/")
                if end < 0:
                    continue
                line = line[end + 2:]
                in_block_comment = False
            m = INCLUDE_RE.match(line)
            if m:
                yield number, m.group(1)
                continue
            # A block comment opened on this line (and not closed on it).
            stripped = re.sub(r"/\*.*?\*/", "", line.split("//", 1)[0])
            if "/*" in stripped:
                in_block_comment = True


def module_graph(src):
    """{module: {included module: [(file, line, target), ...]}} and the set of modules."""
    top_dirs = {d for d in os.listdir(src) if os.path.isdir(os.path.join(src, d))}
    edges = defaultdict(lambda: defaultdict(list))
    modules = set()
    for path in source_files(src):
        rel = os.path.relpath(path, src)
        mod = module_of(rel)
        if mod is None:
            continue
        modules.add(mod)
        for number, target in includes_of(path):
            if target.split("/", 1)[0] not in top_dirs:
                continue  # folder-less (same folder) or not a project path
            to = module_of(target)
            if to is not None and to != mod:
                edges[mod][to].append((rel, number, target))
    return edges, modules


def strongly_connected(nodes, edges):
    """Tarjan's algorithm; components of more than one module, each sorted."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, {})):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def simple_cycles(component, edges, limit):
    """Elementary cycles inside one component, each starting at its smallest module."""
    members = set(component)
    cycles = []

    def walk(start, path, seen):
        if len(cycles) >= limit:
            return
        for w in sorted(edges.get(path[-1], {})):
            if w not in members or w < start:
                continue
            if w == start:
                cycles.append(path + [start])
            elif w not in seen:
                walk(start, path + [w], seen | {w})

    for start in component:
        walk(start, [start], {start})
    return sorted(cycles, key=lambda c: (len(c), c))


def read_table(path):
    """{module: set of modules it may include} from lines `module: dep dep ...`."""
    table = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            if ":" not in line:
                raise ValueError(f"{path}:{number}: expected 'module: allowed modules...', got '{line}'")
            mod, deps = line.split(":", 1)
            mod = mod.strip()
            if mod in table:
                raise ValueError(f"{path}:{number}: module '{mod}' listed twice")
            table[mod] = set(deps.split())
    return table


def describe_edge(src_prefix, a, b, sites, every=False):
    """One include making the edge a -> b (every one with `every`)."""
    lines = []
    for rel, number, target in sites if every else sites[:1]:
        lines.append(f"{src_prefix}{rel}:{number} #include \"{target}\"")
    more = f"  (+{len(sites) - 1} more)" if len(sites) > 1 and not every else ""
    head = f"    {a} -> {b}: "
    return head + ("\n" + " " * len(head)).join(lines) + more


def main():
    parser = argparse.ArgumentParser(
        description="Fail when caliprox's modules (first folder under src/, each src/backends/<name> apart) "
                    "include each other in a cycle, or include a module the dependency table does not allow.")
    add_src_option(parser)
    parser.add_argument("--deps", default=os.path.join(HERE, "module_deps.txt"),
                        help="dependency table: lines 'module: modules it may include' (default: module_deps.txt next to this script)")
    parser.add_argument("--no-deps", action="store_true", help="check cycles only, not the dependency table")
    parser.add_argument("--graph", action="store_true", help="also print every edge of the module graph")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="list every include that makes an edge, not only the first")
    parser.add_argument("--max-cycles", type=int, default=20, help="cycles listed per group (default: %(default)s)")
    args = parser.parse_args()

    if not os.path.isdir(args.src):
        print(f"check_includes: {args.src}: no such folder", file=sys.stderr)
        return 2
    table = None
    if not args.no_deps:
        try:
            table = read_table(args.deps)
        except (OSError, ValueError) as e:
            print(f"check_includes: cannot read the dependency table: {e}", file=sys.stderr)
            return 2

    edges, modules = module_graph(args.src)
    root = os.path.dirname(os.path.abspath(args.src))
    prefix = shown_path(args.src, root) + "/"
    deps_name = shown_path(args.deps, root)
    edge_count = sum(len(v) for v in edges.values())
    print(f"check_includes: {len(modules)} modules, {edge_count} edges between them ({prefix})")
    if args.graph:
        for a in sorted(edges):
            for b in sorted(edges[a]):
                print(describe_edge(prefix, a, b, edges[a][b], args.verbose))

    passed = failed = 0
    components = strongly_connected(modules, edges)
    if components:
        failed += 1
        print(f"FAIL: include cycles between modules ({len(components)} group(s) of modules that include each other)")
        for comp in components:
            cycles = simple_cycles(comp, edges, args.max_cycles)
            print(f"  group: {', '.join(comp)}")
            for cycle in cycles:
                print(f"  cycle: {' -> '.join(cycle)}")
                for a, b in zip(cycle, cycle[1:]):
                    print(describe_edge(prefix, a, b, edges[a][b], args.verbose))
            if len(cycles) >= args.max_cycles:
                print(f"  (only the first {args.max_cycles} cycles listed)")
    else:
        passed += 1
        print("ok: no include cycles between modules")

    if table is not None:
        problems = []
        for mod in sorted(modules):
            if mod not in table:
                problems.append(f"  module '{mod}' is not in {deps_name}: add a line '{mod}: <modules it may include>'")
                continue
            for b in sorted(edges.get(mod, {})):
                if b not in table[mod]:
                    allowed = " ".join(sorted(table[mod])) or "(none)"
                    problems.append(describe_edge(prefix, mod, b, edges[mod][b], args.verbose) + f"\n      {mod} may include: {allowed}")
        if problems:
            failed += 1
            print(f"FAIL: includes the dependency table ({deps_name}) does not allow")
            print("\n".join(problems))
        else:
            passed += 1
            print(f"ok: every include between modules is allowed by {deps_name}")

    print(f"{passed} passed, {failed} failed, 0 skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
