#!/usr/bin/env bash
# The module graph from every `crate::` path in src/ (use lines, grouped uses and paths written inline), one line
# per module: `module -> the modules it names`. Fails (exit 1) when two top-level modules reach each other (a
# cycle through any number of modules), or when two files of one directory module import each other, and prints the
# cycle. Test code (`#[cfg(test)]` blocks) and comments are left out; `super::` is resolved against the file's
# module. A module is a file: `tui::app` is src/tui/app.rs, `tui` is src/tui/mod.rs.
# Written here rather than with a crate (cargo-modules) because CI has no network for cargo install and this is
# a text scan of our own layout: `python3` only.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 - "$@" <<'PY'
import os, re, sys

mods = {}  # module path ("tui::app") -> file
for root, _, files in os.walk("src"):
    for f in files:
        if not f.endswith(".rs"):
            continue
        p = os.path.join(root, f)
        rel = os.path.relpath(p, "src")[:-3].split(os.sep)
        if rel in (["lib"], ["main"]):
            name = rel[0]
        else:
            if rel[-1] == "mod":
                rel = rel[:-1]
            name = "::".join(rel)
        mods[name] = p

def strip(text):
    # Comments out (strings are left: a `crate::` inside a string literal is rare and would only add an edge).
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    # `#[cfg(test)]` items: drop from the attribute to the end of the braced item that follows.
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]", text):
        if m.start() < i:
            continue
        out.append(text[i:m.start()])
        j = text.find("{", m.end())
        semi = text.find(";", m.end())
        if j < 0 or (0 <= semi < j):
            i = semi + 1
            continue
        depth = 0
        for k in range(j, len(text)):
            if text[k] == "{":
                depth += 1
            elif text[k] == "}":
                depth -= 1
                if depth == 0:
                    break
        i = k + 1
    out.append(text[i:])
    return "".join(out)

def expand(prefix, group):
    # `a::{b, c::{d, e}}` -> ["a::b", "a::c::d", "a::c::e"]
    items, depth, cur = [], 0, ""
    for ch in group:
        if ch == "," and depth == 0:
            items.append(cur); cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    items.append(cur)
    paths = []
    for it in items:
        it = it.strip()
        if not it:
            continue
        m = re.match(r"^([\w:]*?)::\{(.*)\}$", it, flags=re.S)
        if m:
            paths += expand(prefix + "::" + m.group(1), m.group(2))
        elif it.startswith("{") and it.endswith("}"):
            paths += expand(prefix, it[1:-1])
        else:
            paths.append(prefix + "::" + re.split(r"\s+as\s+", it)[0])
    return paths

def resolve(segs):
    for n in range(len(segs), 0, -1):
        name = "::".join(segs[:n])
        if name in mods:
            return name
    return None

graph = {}
for name, path in sorted(mods.items()):
    text = strip(open(path, encoding="utf-8").read())
    here = [] if name in ("lib", "main") else name.split("::")
    refs = []
    for m in re.finditer(r"\b(crate|bnscope|super)::(\{[^;]*?\}|[\w:]+)", text):
        root, rest = m.group(1), m.group(2)
        if root == "super":
            # In a.rs `super` is a's directory module; in a/mod.rs it is a's parent.
            base = here[:-1]
        else:
            base = []
        if rest.startswith("{"):
            for p in expand("", rest[1:-1]):
                refs.append(base + [s for s in p.split("::") if s])
        else:
            refs.append(base + [s for s in rest.split("::") if s])
    deps = set()
    for segs in refs:
        while segs and segs[0] == "super":
            segs = segs[1:]
        if not segs:
            continue
        target = resolve(segs)
        if target and target != name and target not in ("lib", "main"):
            deps.add(target)
    graph[name] = deps

def top(n):
    return n.split("::")[0]

for name in sorted(graph):
    print(f"{name} -> {' '.join(sorted(graph[name])) or '-'}")

def cycles(edges):
    """The strongly connected components with more than one module (Tarjan), each as a sorted list."""
    nodes = sorted(set(edges) | {b for v in edges.values() for b in v})
    index, low, on, stack, out, n = {}, {}, set(), [], [], [0]
    def visit(u):
        index[u] = low[u] = n[0]; n[0] += 1
        stack.append(u); on.add(u)
        for v in sorted(edges.get(u, ())):
            if v not in index:
                visit(v)
                low[u] = min(low[u], low[v])
            elif v in on:
                low[u] = min(low[u], index[v])
        if low[u] == index[u]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == u:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))
    for u in nodes:
        if u not in index:
            visit(u)
    return out

bad = False
# Top-level modules: no cycle at all (main and lib only declare and use).
tops = {}
for a, ds in graph.items():
    if a in ("lib", "main"):
        continue
    for b in ds:
        if top(a) != top(b):
            tops.setdefault(top(a), set()).add(top(b))
# Known and waiting, each with its reason; any other cycle fails. Remove an entry when its cycle is gone (an entry
# that no longer matches fails too, so that the list cannot go stale).
KNOWN: dict = {}
seen = set()
for c in cycles(tops):
    if tuple(c) in KNOWN:
        seen.add(tuple(c))
        print(f"imports: known cycle {', '.join(c)}: {KNOWN[tuple(c)]}", file=sys.stderr)
        continue
    print("imports: these top-level modules reach each other: " + ", ".join(c), file=sys.stderr)
    bad = True
for k in KNOWN:
    if k not in seen:
        print(f"imports: the known cycle {', '.join(k)} is gone: remove it from KNOWN", file=sys.stderr)
        bad = True
# Files of one directory module (siblings): none reach each other. A file naming its directory's mod.rs
# (`super::Item`) is not counted: mod.rs declares its children.
dirs = {}
for a, ds in graph.items():
    for b in ds:
        pa = a.rsplit("::", 1)[0] if "::" in a else None
        pb = b.rsplit("::", 1)[0] if "::" in b else None
        if pa is not None and pa == pb:
            dirs.setdefault(pa, {}).setdefault(a, set()).add(b)
for d, edges in sorted(dirs.items()):
    for c in cycles(edges):
        print(f"imports: these files of {d} reach each other: " + ", ".join(c), file=sys.stderr)
        bad = True
sys.exit(1 if bad else 0)
PY
