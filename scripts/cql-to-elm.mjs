#!/usr/bin/env node
// Translates CQL libraries to ELM JSON with the reference translator (npm @cqframework/cql,
// installed by scripts/fetch-cql-translator.sh into .cache/cql-translator). Test tool only.
//
// Usage:
//   node scripts/cql-to-elm.mjs file.cql         one library: its ELM JSON on stdout
//   node scripts/cql-to-elm.mjs --batch          many libraries in one process: each stdin line
//                                                is {"id": ..., "cql": "..."}, each stdout line
//                                                {"id": ..., "errors": [..], "elm": {...} | null}
//
// Model info: .cache/cql/system-modelinfo.xml and fhir-modelinfo-4.0.1.xml. Included libraries
// are read from crates/flint-model/definitions/cql/<Name>-<version>.cql (FHIRHelpers) or
// <Name>.cql there. Options: locators on, annotations off, list demotion/promotion off (the
// translator's defaults otherwise). Units are accepted as written (no UCUM validation).
import fs from "node:fs";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath, pathToFileURL } from "node:url";

// The translator's logging writes to stdout; stdout carries only ELM (through `out`).
const out = process.stdout.write.bind(process.stdout);
process.stdout.write = (chunk, ...rest) => process.stderr.write(chunk, ...rest);
for (const k of ["log", "info", "debug", "warn"]) console[k] = (...a) => console.error(...a);

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const pkg = path.join(root, ".cache/cql-translator/node_modules/@cqframework/cql/cql-to-elm.mjs");
if (!fs.existsSync(pkg)) {
  console.error("cql-to-elm: translator not installed; run scripts/fetch-cql-translator.sh");
  process.exit(2);
}
const {
  CqlTranslator,
  CqlCompilerOptions,
  LibraryManager,
  ModelManager,
  createModelInfoProvider,
  createLibrarySourceProvider,
  createUcumService,
  stringAsSource,
} = await import(pathToFileURL(pkg).href);

const models = {
  System: path.join(root, ".cache/cql/system-modelinfo.xml"),
  FHIR: path.join(root, ".cache/cql/fhir-modelinfo-4.0.1.xml"),
};
const modelText = {};
const modelManager = new ModelManager();
modelManager.modelInfoLoader.registerModelInfoProvider(
  createModelInfoProvider((id, _system, _version) => {
    const file = models[id];
    if (!file) return null;
    modelText[id] ??= fs.readFileSync(file, "utf8");
    return stringAsSource(modelText[id]);
  }),
  true,
);

const options = new CqlCompilerOptions();
const O = CqlCompilerOptions.Options;
options.setOptions([O.EnableLocators, O.DisableListDemotion, O.DisableListPromotion]);
options.validateUnits = false;

// Unit conversions are not needed to translate; validation accepts every unit.
const ucum = createUcumService(
  (value, from, to) => {
    throw new Error(`no UCUM conversion of ${value} from ${from} to ${to}`);
  },
  (_unit) => null,
  (a, _b) => a,
  (a, _b) => a,
);

const libDir = path.join(root, "crates/flint-model/definitions/cql");
const librarySource = createLibrarySourceProvider((id, _system, version) => {
  for (const f of [`${id}-${version}.cql`, `${id}.cql`]) {
    const p = path.join(libDir, f);
    if (version && fs.existsSync(p)) return stringAsSource(fs.readFileSync(p, "utf8"));
    if (!version && f === `${id}.cql` && fs.existsSync(p)) {
      return stringAsSource(fs.readFileSync(p, "utf8"));
    }
  }
  return null;
});

function translate(cql) {
  // A fresh library manager per library: no compiled library leaks into the next one.
  const libraryManager = new LibraryManager(modelManager, options, null, ucum);
  libraryManager.librarySourceLoader.registerProvider(librarySource);
  const t = CqlTranslator.fromText(cql, libraryManager);
  const errors = t.errors.asJsReadonlyArrayView().map((e) => {
    // The TrackBack's fields are not exported; its toString names them.
    const m = e.locator ? /startLine=(\d+), startChar=(\d+)/.exec(String(e.locator)) : null;
    const at = m ? `${m[1]}:${m[2]} ` : "";
    return `${at}${e.message}`;
  });
  // The ELM text as the translator wrote it: JSON.parse would lose the scale of decimals
  // (`5.0 'mg'` is `"value": 5.0`). Raw newlines in JSON text are only whitespace.
  const elm = errors.length === 0 ? t.toJson().replace(/\r?\n/g, " ") : "null";
  return { elm, errors };
}

if (process.argv[2] === "--batch") {
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of rl) {
    if (!line.trim()) continue;
    const { id, cql } = JSON.parse(line);
    let r;
    try {
      r = translate(cql);
    } catch (e) {
      r = { elm: "null", errors: [`translator exception: ${e?.message ?? e}`] };
    }
    out(`{"id":${JSON.stringify(id)},"errors":${JSON.stringify(r.errors)},"elm":${r.elm}}\n`);
  }
} else if (process.argv[2]) {
  const r = translate(fs.readFileSync(process.argv[2], "utf8"));
  if (r.errors.length) {
    for (const e of r.errors) console.error(e);
    process.exit(1);
  }
  out(r.elm + "\n");
} else {
  console.error("usage: cql-to-elm.mjs file.cql | --batch");
  process.exit(2);
}
