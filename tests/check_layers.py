#!/usr/bin/env python3
"""Keeps proxy_core's folders layered (ARCHITECTURE.md, "Layers"): fails on an include cycle
between folders, on a folder including the runtime at the root, and on base/ or http/ including
anything above them.

The layers, lowest first: base/ (clock, ASCII), http/ (message grammar), net/, ops/, config/,
tls/, session/, store/, then the runtime at the root. Only the rules that keep the layering a
layering are checked here; an edge that merely skips a layer downwards is fine.

Usage: check_layers.py [proxy_core directory]   (default: the one next to tests/)
       check_layers.py --self-test              (the checker finds what it should on a toy tree)
"""
import os
import re
import sys
import tempfile

INCLUDE = re.compile(r'^\s*#\s*include\s+"proxy_core/([^"]+)"', re.MULTILINE)
ROOT = '.'
# Folders that may include only themselves and the folders listed.
ALLOWED_BELOW = {
    'base': set(),
    'http': {'base'},
}


def folder_edges(core_dir):
    """{(from_folder, to_folder): [(file, included header), ...]} for edges between folders."""
    edges = {}
    for dirpath, _, files in os.walk(core_dir):
        src = os.path.relpath(dirpath, core_dir)
        src = src.split(os.sep)[0] if src != ROOT else ROOT
        for name in sorted(files):
            if not name.endswith(('.h', '.cc')):
                continue
            path = os.path.join(dirpath, name)
            with open(path, encoding='utf-8') as f:
                text = f.read()
            for header in INCLUDE.findall(text):
                dst = header.split('/')[0] if '/' in header else ROOT
                if dst != src:
                    edges.setdefault((src, dst), []).append(
                        (os.path.relpath(path, core_dir), header))
    return edges


def cycles(edges):
    """The strongly connected components with more than one folder (Tarjan)."""
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def problems(core_dir):
    edges = folder_edges(core_dir)
    found = []
    for component in cycles(edges):
        inside = [(a, b) for (a, b) in sorted(edges) if a in component and b in component]
        detail = '; '.join(f'{a} -> {b} ({edges[(a, b)][0][0]} includes {edges[(a, b)][0][1]})'
                           for a, b in inside)
        found.append(f'include cycle between {", ".join(component)}: {detail}')
    for (a, b), where in sorted(edges.items()):
        if b == ROOT:
            found.append(f'{a}/ includes the runtime at the root: {where[0][0]} -> {where[0][1]}')
        elif a in ALLOWED_BELOW and b not in ALLOWED_BELOW[a]:
            found.append(f'{a}/ includes {b}/, a layer above it: {where[0][0]} -> {where[0][1]}')
    return found


def self_test():
    """A toy tree with one of each fault must give exactly those faults; a clean one none."""
    files = {
        'base/a.h': '',
        'http/m.h': '#include "proxy_core/base/a.h"\n',
        'config/c.h': '#include "proxy_core/http/m.h"\n',
        'session/s.h': '#include "proxy_core/config/c.h"\n',
        'w.h': '#include "proxy_core/session/s.h"\n',
    }
    faults = {
        'http/bad.cc': '#include "proxy_core/config/c.h"\n',  # http above itself, and a cycle
        'session/bad.cc': '#include "proxy_core/w.h"\n',  # the root from a folder, and a cycle
    }
    with tempfile.TemporaryDirectory() as tmp:
        for rel, text in files.items():
            os.makedirs(os.path.join(tmp, os.path.dirname(rel)), exist_ok=True)
            with open(os.path.join(tmp, rel), 'w', encoding='utf-8') as f:
                f.write(text)
        clean = problems(tmp)
        for rel, text in faults.items():
            with open(os.path.join(tmp, rel), 'w', encoding='utf-8') as f:
                f.write(text)
        faulty = problems(tmp)
    ok = (clean == [] and len(faulty) == 4 and
          sum('cycle' in p for p in faulty) == 2 and
          any(p.startswith('http/ includes config/') for p in faulty) and
          any(p.startswith('session/ includes the runtime') for p in faulty))
    print('self-test', 'passed' if ok else f'FAILED: clean={clean} faulty={faulty}')
    return 0 if ok else 1


def main(argv):
    if argv[1:] == ['--self-test']:
        return self_test()
    core_dir = argv[1] if len(argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), '..', 'proxy_core')
    found = problems(core_dir)
    for p in found:
        print('LAYERS:', p)
    if not found:
        print('proxy_core folders are layered: no cycle, nothing includes upwards from base/ or '
              'http/, no folder includes the root')
    return 1 if found else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
