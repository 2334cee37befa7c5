#!/usr/bin/env python3
"""Finds import cycles between the files of a Rust crate's src/ directory.

Edge A -> B: file A names a path that resolves to file B: `crate::x::y`,
`super::x`, `self::x`, the names inside `crate::{a, b::c}` groups, or
`x::...` where `mod x;` is a child declared in A. A path resolves to the
longest module prefix that is a file (`crate::Foo` re-exported at the root
is an edge to lib.rs). `mod x;` itself is containment, not an edge.
Comments are ignored. Prints the strongly connected components with more
than one file (cycles); exits 1 if there are any. `-v` lists every edge.
"""
import os, re, sys

root = sys.argv[1]
files = {}
for d, _, names in os.walk(root):
    for n in names:
        if n.endswith('.rs'):
            rel = os.path.relpath(os.path.join(d, n), root)
            files[rel] = re.sub(r'//.*', '', open(os.path.join(d, n)).read())

def module_of(rel):
    parts = rel[:-3].split('/')
    return parts[:-1] if parts[-1] in ('lib', 'mod') else parts

by_module = {tuple(module_of(f)): f for f in files}

def file_for(path):
    for n in range(len(path), -1, -1):
        if tuple(path[:n]) in by_module:
            return by_module[tuple(path[:n])]

edges = set()
for rel, code in files.items():
    here = module_of(rel)
    inline_starts = [m.start() for m in re.finditer(r'\bmod\s+\w+\s*\{', code)]
    paths = []  # (head, segments, position)
    for m in re.finditer(r'\b(crate|super|self)((?:::\w+)*)(::\{)?', code):
        head, segs = m.group(1), m.group(2).split('::')[1:]
        if m.group(3):
            depth, j = 1, m.end()
            while depth and j < len(code):
                depth += {'{': 1, '}': -1}.get(code[j], 0)
                j += 1
            for item in re.findall(r'\w+(?:::\w+)*', code[m.end():j - 1]):
                paths.append((head, segs + item.split('::'), m.start()))
        elif segs:
            paths.append((head, segs, m.start()))
    for head, segs, pos in paths:
        if head == 'crate':
            base = []
        elif head == 'self':
            base = here
        else:  # super: of an inline module (`mod tests {`) is this file's module
            base = here if any(s < pos for s in inline_starts) else here[:-1]
            while segs and segs[0] == 'super':
                base, segs = base[:-1], segs[1:]
        target = file_for(base + segs)
        if target and target != rel:
            edges.add((rel, target))
    children = set(re.findall(r'\bmod\s+(\w+)\s*;', code))
    for m in re.finditer(r'\buse\s+(\w+)::', code):
        if m.group(1) in children:
            edges.add((rel, file_for(here + [m.group(1)])))

graph = {}
for a, b in edges:
    graph.setdefault(a, set()).add(b)

# Tarjan's strongly connected components.
sys.setrecursionlimit(10000)
index, low, stack, on_stack, cycles = {}, {}, [], set(), []
def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in sorted(graph.get(v, ())):
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on_stack:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        component = []
        while True:
            w = stack.pop()
            on_stack.discard(w)
            component.append(w)
            if w == v:
                break
        if len(component) > 1:
            cycles.append(sorted(component))
for v in sorted(files):
    if v not in index:
        visit(v)

if '-v' in sys.argv:
    for a, b in sorted(edges):
        print(f'{a} -> {b}')
print(f'{len(files)} files, {len(edges)} edges, {len(cycles)} cycles')
for c in cycles:
    print('cycle:', ' <-> '.join(c))
sys.exit(1 if cycles else 0)
