#!/usr/bin/env python3
"""Checks the dependency rules between workspace crates stated in ARCHITECTURE.md.

The rules live in one place: the code map table of ARCHITECTURE.md (section "Code map"), whose
columns "depends on" and "must not depend on" name, for each crate, the workspace crates it
uses and the ones it must never use (short names: `db` is `flint-db`; `—` is none; "any
workspace crate" is every other one). This script reads `cargo metadata --format-version 1
--no-deps` and fails, naming the crate and the dependency, when a crate's normal dependencies
(`[dependencies]`, optional and target-specific ones included; dev-dependencies are not
checked) include

* a workspace crate of its "must not depend on" column (a layering violation), or
* a workspace crate missing from its "depends on" column (add it there if the layering allows
  it, so the table stays true),

or when the table names a dependency the crate does not have, or a crate the workspace does not
have, or misses a workspace crate. Standard library only; run from anywhere:
`python3 scripts/check-deps.py`.
"""
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = "ARCHITECTURE.md"
SECTION = "## Code map"
COLUMNS = ("crate", "depends on", "must not depend on")
NONE = {"", "—", "-", "none", "nothing"}
ALL = "any workspace crate"


def cells(line):
    """The cells of a Markdown table row (`\\|` does not split)."""
    parts = re.split(r"(?<!\\)\|", line.strip())
    return [c.strip() for c in parts[1:-1]]


def read_rules(path):
    """{crate: (depends-on list or None, must-not list or ALL)} from the code map table."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    try:
        start = lines.index(SECTION)
    except ValueError:
        sys.exit(f"check-deps: {DOC} has no '{SECTION}' section")
    table = []
    for line in lines[start + 1 :]:
        if line.startswith("## "):
            break
        if line.startswith("|"):
            table.append(cells(line))
        elif table:
            break
    if len(table) < 3:
        sys.exit(f"check-deps: no table under '{SECTION}' in {DOC}")
    header = [h.lower() for h in table[0]]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        sys.exit(f"check-deps: the code map table of {DOC} lacks the column(s) {missing}")
    index = {c: header.index(c) for c in COLUMNS}
    rules = {}
    for row in table[2:]:
        crate = row[index["crate"]].strip("`")
        rules[crate] = (
            names(row[index["depends on"]], crate),
            names(row[index["must not depend on"]], crate),
        )
    return rules


def names(cell, crate):
    """A cell's crate names as full package names, or ALL."""
    text = cell.replace("`", "").strip()
    if text.lower() in NONE:
        return []
    if text.lower() == ALL:
        return ALL
    out = []
    for name in re.split(r"\s*,\s*", text):
        if not re.fullmatch(r"[a-z][a-z0-9-]*", name):
            sys.exit(f"check-deps: {crate}'s row in the code map of {DOC}: cannot read '{name}'")
        out.append(name if name.startswith("flint-") else "flint-" + name)
    return out


def workspace():
    """{crate: (manifest path relative to the root, set of normal deps on workspace crates)}."""
    run = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        sys.exit(f"check-deps: cargo metadata failed:\n{run.stderr}")
    meta = json.loads(run.stdout)
    members = {p["name"] for p in meta["packages"]}
    crates = {}
    for p in meta["packages"]:
        deps = {d["name"] for d in p["dependencies"] if d["kind"] is None and d["name"] in members}
        crates[p["name"]] = (os.path.relpath(p["manifest_path"], ROOT), deps)
    return crates


def main():
    rules = read_rules(os.path.join(ROOT, DOC))
    crates = workspace()
    errors = []
    where = f"the code map of {DOC}"
    for crate in sorted(set(crates) - set(rules)):
        errors.append(f"{crate} is a workspace crate but has no row in {where}")
    for crate in sorted(set(rules) - set(crates)):
        errors.append(f"{crate} has a row in {where} but is not a workspace crate")
    for crate in sorted(set(crates) & set(rules)):
        manifest, deps = crates[crate]
        allowed, forbidden = rules[crate]
        if forbidden == ALL:
            forbidden = set(crates) - {crate}
        for name in sorted(set(forbidden) | (set(allowed) if allowed != ALL else set())):
            if name not in crates:
                errors.append(f"{crate}'s row in {where} names {name}, not a workspace crate")
        for dep in sorted(deps):
            if dep in forbidden:
                errors.append(
                    f"{crate} must not depend on {dep} (its \"must not depend on\" column in "
                    f"{where}), but {manifest} lists it in [dependencies]"
                )
            elif allowed != ALL and dep not in allowed:
                errors.append(
                    f"{crate} depends on {dep} ({manifest}), but its \"depends on\" column in "
                    f"{where} does not list it: add it there if the layering allows it"
                )
        if allowed != ALL:
            for name in sorted(set(allowed) - deps):
                if name in crates:
                    errors.append(
                        f"{where} says {crate} depends on {name}, but {manifest} does not "
                        f"(remove it from the \"depends on\" column)"
                    )
            for name in sorted(set(allowed) & set(forbidden)):
                errors.append(f"{crate}'s row in {where} both allows and forbids {name}")
    if errors:
        for e in errors:
            print(f"check-deps: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"check-deps: the {len(crates)} workspace crates follow the dependency rules of {DOC}")


if __name__ == "__main__":
    main()
