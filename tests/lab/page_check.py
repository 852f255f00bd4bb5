#!/usr/bin/env python3
"""Checks a status page as the browser rendered it (chromium --dump-dom):

  page_check.py DOM_FILE EXPECT_JSON

EXPECT_JSON, every key optional:
  {"members": {"VS|ADDR:PORT": "up", ...},   each row <tr class="member"
                                             data-vs data-member data-state>
   "generation": 1,                          the text of #generation
   "ports": {"ext": "up", ...},              data-link of .port[data-port]
   "virtual_servers": ["web", ...],          a .vs[data-vs] block each
   "drops": {"no_session": 12, ...},         .drop[data-reason], its count
                                             (a number: at least that many)
   "error": false,                           whether #error is shown
   "charts": {"servers.packets_per_s":       svg.chart[data-series]: each
              ["web", ...], ...}}            named line (<g><title>) is drawn
                                             (a <path> or a <circle>)

The body must carry data-loaded="true" (the first fetch was rendered).
Prints what it found; exits 0 only when everything matches, else 1 with a
line per mismatch. Standard library only.
"""
import json
import sys
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Page(HTMLParser):
    """Collects the hooks, and the text inside the elements that have one."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.body = None
        self.members = []      # (attrs, cells)
        self.ports = []        # attrs
        self.servers = []      # attrs
        self.drops = []        # (attrs, cells)
        self.charts = []       # attrs
        self.lines = {}        # chart series -> {line name: drawn}
        self.chart = None      # the svg.chart being read: its series
        self.group = None      # the <g> being read in it: [title, drawn]
        self.title = None      # the <title> being read, as a list of strings
        self.generation = None
        self.error = None      # (attrs, text)
        self.stack = []        # open elements: (tag, capture or None)
        self.cell = None       # the <td> being read, as a list of strings

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        classes = a.get("class", "").split()
        capture = None
        if tag == "body":
            self.body = a
        if tag == "tr" and "member" in classes:
            capture = (a, [])
            self.members.append(capture)
        elif tag == "tr" and "drop" in classes:
            capture = (a, [])
            self.drops.append(capture)
        elif "port" in classes and "data-port" in a:
            self.ports.append(a)
        elif "vs" in classes and "data-vs" in a:
            self.servers.append(a)
        elif tag == "svg" and "chart" in classes:
            self.charts.append(a)
            self.chart = a.get("data-series", "?")
            self.lines.setdefault(self.chart, {})
        if self.chart is not None:
            if tag == "g":
                self.group = [None, False]
            elif tag == "title" and self.group is not None:
                self.title = []
            elif tag in ("path", "circle") and self.group is not None:
                self.group[1] = True
        if a.get("id") == "generation":
            capture = ("generation", [])
        elif a.get("id") == "error":
            self.error = (a, [])
            capture = ("error", self.error[1])
        row = self.row_cells()
        if tag == "td" and row is not None:
            self.cell = []
            row.append(self.cell)
        if tag not in VOID:
            self.stack.append((tag, capture))

    def row_cells(self):
        for _, cap in reversed(self.stack):
            if cap is not None and isinstance(cap[0], dict):
                return cap[1]
        return None

    def handle_endtag(self, tag):
        if self.chart is not None:
            if tag == "title" and self.title is not None and self.group is not None:
                self.group[0] = "".join(self.title).strip()
                self.title = None
            elif tag == "g" and self.group is not None:
                if self.group[0] is not None:
                    self.lines[self.chart][self.group[0]] = self.group[1]
                self.group = None
            elif tag == "svg":
                self.chart = None
        if all(t != tag for t, _ in self.stack):
            return  # a stray end tag closes nothing
        while self.stack:
            t, cap = self.stack.pop()
            if cap is not None and cap[0] == "generation":
                self.generation = "".join(cap[1]).strip()
            if t == "td":
                self.cell = None
            if t == tag:
                break

    def handle_data(self, data):
        if self.title is not None:
            self.title.append(data)
        if self.cell is not None:
            self.cell.append(data)
        for _, cap in self.stack:
            if cap is not None and cap[0] in ("generation", "error"):
                cap[1].append(data)


def cells(row):
    return [" ".join(" ".join(c).split()) for c in row[1]]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1], encoding="utf-8", errors="replace") as f:
        page = Page()
        page.feed(f.read())
        page.close()
    try:
        expect = json.loads(sys.argv[2])
    except ValueError as e:
        sys.exit(f"EXPECT_JSON is not JSON: {e}")

    bad = []
    loaded = (page.body or {}).get("data-loaded")
    print(f"body data-loaded={loaded!r}")
    if loaded != "true":
        bad.append(f"body data-loaded is {loaded!r}, not 'true': the first fetch was not rendered")

    print(f"generation: {page.generation!r}")
    rows = {}
    for a, _ in page.members:
        key = f"{a.get('data-vs')}|{a.get('data-member')}"
        rows.setdefault(key, []).append(a)
    for a, c in page.members:
        print(f"member {a.get('data-vs')}|{a.get('data-member')} state={a.get('data-state')} cells={cells((a, c))}")
    for a in page.ports:
        print(f"port {a.get('data-port')} link={a.get('data-link')}")
    for a in page.servers:
        print(f"virtual server {a.get('data-vs')}")
    for a, c in page.drops:
        print(f"drop {a.get('data-reason')} {cells((a, c))}")
    print("charts: " + ", ".join(a.get("data-series", "?") for a in page.charts))
    for series, lines in page.lines.items():
        print(f"chart {series}: " + ", ".join(f"{n}={'drawn' if d else 'empty'}" for n, d in lines.items()))
    shown = page.error is not None and "hidden" not in page.error[0] \
        and "display:none" not in page.error[0].get("style", "").replace(" ", "")
    err_text = " ".join("".join(page.error[1]).split()) if page.error else ""
    print(f"error shown={shown}" + (f": {err_text}" if shown else ""))

    if "generation" in expect and page.generation != str(expect["generation"]):
        bad.append(f"generation is {page.generation!r}, expected {expect['generation']}")
    for key, state in expect.get("members", {}).items():
        found = rows.get(key)
        if not found:
            bad.append(f"member {key}: no row")
        elif len(found) > 1:
            bad.append(f"member {key}: {len(found)} rows")
        elif found[0].get("data-state") != state:
            bad.append(f"member {key}: state {found[0].get('data-state')!r}, expected {state!r}")
    ports = {a.get("data-port"): a.get("data-link") for a in page.ports}
    for name, link in expect.get("ports", {}).items():
        if name not in ports:
            bad.append(f"port {name}: not shown")
        elif ports[name] != link:
            bad.append(f"port {name}: link {ports[name]!r}, expected {link!r}")
    names = {a.get("data-vs") for a in page.servers}
    for name in expect.get("virtual_servers", []):
        if name not in names:
            bad.append(f"virtual server {name}: no block")
    drops = {}
    for a, c in page.drops:
        text = cells((a, c))
        count = a.get("data-packets") or (text[1] if len(text) > 1 else "")
        drops[a.get("data-reason")] = int(count) if count.isdigit() else None
    for reason, n in expect.get("drops", {}).items():
        if reason not in drops:
            bad.append(f"drop {reason}: no row")
        elif drops[reason] is None or drops[reason] < n:
            bad.append(f"drop {reason}: {drops[reason]}, expected at least {n}")
    for series, names in expect.get("charts", {}).items():
        lines = page.lines.get(series)
        if lines is None:
            bad.append(f"chart {series}: not shown")
            continue
        for name in names:
            if name not in lines:
                bad.append(f"chart {series}: no line {name!r}")
            elif not lines[name]:
                bad.append(f"chart {series}: line {name!r} is not drawn")
    if "error" in expect and shown != bool(expect["error"]):
        bad.append(f"error banner shown={shown}, expected {bool(expect['error'])}")

    for b in bad:
        print("MISMATCH " + b)
    print("page OK" if not bad else f"page FAILED: {len(bad)} mismatch(es)")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
