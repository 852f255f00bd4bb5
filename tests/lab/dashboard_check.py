#!/usr/bin/python3
"""Checks that a Grafana dashboard asks only for metrics the switch exports:

  dashboard_check.py DASHBOARD_JSON METRICS_TEXT_FILE [--optional NAME,...]

Collects every sluice_* name in the panels' target expressions (rows'
nested panels and the templating queries too) and the metric families of a
Prometheus text exposition (its `# TYPE name kind` lines). Exits 1 naming
each metric the dashboard uses that the exposition lacks, or when the
dashboard is not valid JSON or has no panel. --optional names families
that may be absent from this exposition (e.g. sluice_kernel_frames_total
without a kernel interface): reported, not failed. Standard library only.
"""
import json
import re
import sys

NAME = re.compile(r"\bsluice_[a-z0-9_]+")
# Suffixes PromQL may add to a histogram or summary family; none are used
# by the switch, but a name with one still belongs to its family.
SUFFIXES = ("_bucket", "_count", "_sum")


def panels(items):
    for p in items or []:
        yield p
        yield from panels(p.get("panels"))


def expressions(dash):
    """(where, expression) of every target, and of the template queries."""
    for p in panels(dash.get("panels")):
        for t in p.get("targets") or []:
            for key in ("expr", "query"):
                if isinstance(t.get(key), str):
                    yield f"panel {p.get('title', p.get('id'))!r}", t[key]
    for v in (dash.get("templating") or {}).get("list") or []:
        q = v.get("query")
        if isinstance(q, dict):
            q = q.get("query")
        if isinstance(q, str):
            yield f"variable {v.get('name')!r}", q
        if isinstance(v.get("definition"), str):
            yield f"variable {v.get('name')!r}", v["definition"]


def families(text):
    found = set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] == "#" and parts[1] == "TYPE":
            found.add(parts[2])
    return found


def main():
    args = sys.argv[1:]
    optional = set()
    if "--optional" in args:
        i = args.index("--optional")
        if i + 1 >= len(args):
            sys.exit(__doc__)
        optional = {n for n in args[i + 1].split(",") if n}
        del args[i:i + 2]
    if len(args) != 2:
        sys.exit(__doc__)
    try:
        with open(args[0], encoding="utf-8") as f:
            dash = json.load(f)
    except (OSError, ValueError) as e:
        print(f"dashboard {args[0]}: not valid JSON: {e}")
        sys.exit(1)
    if not isinstance(dash, dict) or not list(panels(dash.get("panels"))):
        print(f"dashboard {args[0]}: no panels")
        sys.exit(1)
    with open(args[1], encoding="utf-8") as f:
        exported = families(f.read())

    used = {}
    for where, expr in expressions(dash):
        for name in NAME.findall(expr):
            used.setdefault(name, set()).add(where)
    if not used:
        print("dashboard: no sluice_* metric in any target")
        sys.exit(1)

    def known(name):
        return name in exported or any(name.endswith(s) and name[: -len(s)] in exported for s in SUFFIXES)

    missing = []
    for name in sorted(used):
        if known(name):
            print(f"ok       {name}")
        elif name in optional:
            print(f"absent   {name} (optional)")
        else:
            missing.append(name)
            print(f"MISSING  {name}: used by {', '.join(sorted(used[name]))}")
    print(f"{len(used)} metric(s) used by {sum(1 for _ in panels(dash.get('panels')))} panel(s); "
          f"{len(exported)} family(ies) exported; {len(missing)} missing")
    sys.exit(1 if missing else 0)


if __name__ == "__main__":
    main()
