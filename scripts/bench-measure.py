#!/usr/bin/env python3
"""$evaluate-measure benchmark on a loaded server: stores two CQL libraries and measures
(a single-code cohort: exists [Observation: body weight]; a proportion measure with a date,
a value condition and a gender stratifier), evaluates each three times over 2020 and prints
the wall time, patients per second and the counts, next to the counts computed from the raw
bundles of the generated population that was loaded (flint-gen output).

  scripts/bench-measure.py http://localhost:8080/fhir data/gen

With `--synthetic N` instead of a directory it first loads N light patients itself (one
Patient, six body-weight and four heart-rate Observations each, 2019-2021, deterministic),
in transactions of 100 patients, and computes the expected counts from what it wrote:

  scripts/bench-measure.py http://localhost:8080/fhir --synthetic 10000
"""
import json, base64, urllib.request, time, glob, sys, random
B=sys.argv[1].rstrip("/")
SYNTHETIC=None
if sys.argv[2]=="--synthetic":
    SYNTHETIC=int(sys.argv[3])
    DIR=None
    N=SYNTHETIC
else:
    DIR=sys.argv[2]
    N=len(glob.glob(DIR+"/patient-*.json"))
def req(m, path, body=None):
    data=json.dumps(body).encode() if body is not None else None
    r=urllib.request.Request(B+"/"+path, data=data, method=m, headers={"Content-Type":"application/fhir+json"})
    try:
        with urllib.request.urlopen(r, timeout=600) as resp: return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e: return e.code, json.loads(e.read() or b"null")
def lib(id, cql):
    return req("PUT",f"Library/{id}",{"resourceType":"Library","id":id,"url":f"http://ex/Library/{id}","version":"1","name":id,"status":"active","content":[{"contentType":"text/cql","data":base64.b64encode(cql.encode()).decode()}]})[0]
def measure(id, libid, pops, strat=None):
    g={"population":[{"code":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/measure-population","code":c}]},"criteria":{"language":"text/cql-identifier","expression":e}} for c,e in pops]}
    if strat: g["stratifier"]=[{"code":{"text":"s"},"criteria":{"language":"text/cql-identifier","expression":strat}}]
    return req("PUT",f"Measure/{id}",{"resourceType":"Measure","id":id,"url":f"http://ex/Measure/{id}","status":"active","library":[f"http://ex/Library/{libid}"],"scoring":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/measure-scoring","code":"proportion" if len(pops)>1 else "cohort"}]},"group":[g]})[0]
lib("single","""library single version '1'
using FHIR version '4.0.1'
codesystem "LOINC": 'http://loinc.org'
code "Weight": '29463-7' from "LOINC"
parameter "Measurement Period" Interval<DateTime>
context Patient
define "IP": exists [Observation: "Weight"]
"""); measure("single","single",[("initial-population","IP")])
lib("valdate","""library valdate version '1'
using FHIR version '4.0.1'
codesystem "LOINC": 'http://loinc.org'
code "Weight": '29463-7' from "LOINC"
parameter "Measurement Period" Interval<DateTime>
context Patient
define "IP": exists [Observation: "Weight"] O where O.effective during "Measurement Period"
define "Num": exists [Observation: "Weight"] O where (O.value as FHIR.Quantity).value > 80 and O.effective during "Measurement Period"
define "Gender": Patient.gender
"""); measure("valdate","valdate",[("initial-population","IP"),("denominator","IP"),("numerator","Num")],"Gender")
def synthetic_bundles(n):
    rnd=random.Random(1)
    for start in range(0,n,100):
        entries=[]
        for i in range(start,min(n,start+100)):
            pid=f"syn-{i}"
            entries.append({"resource":{"resourceType":"Patient","id":pid,"gender":rnd.choice(["male","female"]),"birthDate":f"{rnd.randint(1940,2010)}-0{rnd.randint(1,9)}-1{rnd.randint(0,9)}"},"request":{"method":"PUT","url":f"Patient/{pid}"}})
            for k in range(10):
                code,unit,value=("29463-7","kg",round(rnd.uniform(45,110),1)) if k<6 else ("8867-4","/min",rnd.randint(50,110))
                d=f"{rnd.randint(2019,2021)}-{rnd.randint(1,12):02d}-{rnd.randint(1,28):02d}T10:00:00Z"
                entries.append({"resource":{"resourceType":"Observation","id":f"{pid}-o{k}","status":"final","code":{"coding":[{"system":"http://loinc.org","code":code}]},"subject":{"reference":f"Patient/{pid}"},"effectiveDateTime":d,"valueQuantity":{"value":value,"unit":unit,"system":"http://unitsofmeasure.org","code":unit}},"request":{"method":"PUT","url":f"Observation/{pid}-o{k}"}})
        yield {"resourceType":"Bundle","type":"transaction","entry":entries}
def bundles():
    if SYNTHETIC is None:
        for f in glob.glob(DIR+"/patient-*.json"):
            yield json.load(open(f))
    else:
        yield from synthetic_bundles(SYNTHETIC)
if SYNTHETIC is not None:
    t=time.time(); n=0
    for b in synthetic_bundles(SYNTHETIC):
        st,r=req("POST","",b); n+=len(b["entry"])
        if st!=200: sys.exit(f"loading failed: {st} {r}")
    print(f"loaded {SYNTHETIC} synthetic patients ({n} resources) in {time.time()-t:.1f}s")
has=set(); ip=set(); num=set()
for f,b in enumerate(bundles()):
    for e in b["entry"]:
        r=e["resource"]
        if r["resourceType"]=="Observation" and any(c.get("code")=="29463-7" for c in r["code"].get("coding",[])):
            key=r["subject"]["reference"]; has.add(key)
            d=r.get("effectiveDateTime","")
            if d.startswith("2020"):
                ip.add(key)
                if r["valueQuantity"]["value"]>80: num.add(key)
print(f"expected from the bundles: cohort {len(has)}; initial population {len(ip)}, numerator {len(num)}")
for m in ["single","valdate"]:
    for run in range(3):
        t=time.time(); st,r=req("GET",f"Measure/{m}/$evaluate-measure?periodStart=2020&periodEnd=2020"); dt=time.time()-t
        counts=[(p["code"]["coding"][0]["code"],p["count"]) for p in r["group"][0]["population"]] if st==200 else r
        print(m, run, st, f"{dt:.3f}s", f"{N/dt:.0f} patients/s", counts)
