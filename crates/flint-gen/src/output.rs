//! Writing a population: transaction bundles and/or NDJSON files, generated on several threads
//! and written in patient order, so the bytes never depend on the thread count.

use crate::catalog;
use crate::json::Style;
use crate::patient::{self, Resource};
use crate::time::Window;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

/// What to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `0-organizations.json` and one `patient-NNNNNN.json` transaction bundle per patient.
    Bundles,
    /// `ndjson/<Type>.ndjson`, one resource per line.
    Ndjson,
    /// Both.
    Both,
}

/// A generation run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Number of patients (indexes 1..=patients).
    pub patients: u64,
    /// The seed.
    pub seed: u64,
    /// Output directory.
    pub out: PathBuf,
    /// What to write.
    pub format: Format,
    /// The time window of the records.
    pub window: Window,
    /// Worker threads (at least 1).
    pub threads: usize,
}

/// What a run produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Patients generated.
    pub patients: u64,
    /// Resources in the patient records (each counted once, whatever the format).
    pub resources: u64,
    /// Bytes written, all files included.
    pub bytes: u64,
    /// Resources per type.
    pub by_type: BTreeMap<&'static str, u64>,
}

impl Stats {
    fn count(&mut self, resources: &[Resource]) {
        self.patients += 1;
        self.resources += resources.len() as u64;
        for r in resources {
            *self.by_type.entry(r.ty).or_default() += 1;
        }
    }

    fn merge(&mut self, o: Stats) {
        self.patients += o.patients;
        self.resources += o.resources;
        self.bytes += o.bytes;
        for (k, v) in o.by_type {
            *self.by_type.entry(k).or_default() += v;
        }
    }
}

/// The file name of patient `index`'s bundle.
pub fn patient_file_name(index: u64) -> String {
    format!("patient-{index:06}.json")
}

/// A transaction bundle of one patient's resources: POST entries with `urn:uuid:` fullUrls.
pub fn bundle_json(resources: &[Resource]) -> String {
    let size: usize = resources.iter().map(|r| r.json.len() + 120).sum();
    let mut s = String::with_capacity(size + 64);
    s.push_str(r#"{"resourceType":"Bundle","type":"transaction","entry":["#);
    for (i, r) in resources.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(r#"{"fullUrl":"urn:uuid:"#);
        s.push_str(r.id.as_str());
        s.push_str(r#"","resource":"#);
        s.push_str(&r.json);
        s.push_str(r#","request":{"method":"POST","url":""#);
        s.push_str(r.ty);
        s.push_str("\"}}");
    }
    s.push_str("]}");
    s
}

/// Patient `index`'s transaction bundle as JSON.
pub fn patient_bundle(seed: u64, index: u64, window: &Window) -> String {
    bundle_json(&patient::generate(seed, index, window, Style::Bundle))
}

fn create(path: &Path) -> io::Result<BufWriter<File>> {
    File::create(path)
        .map(|f| BufWriter::with_capacity(1 << 20, f))
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// Appends NDJSON lines to per-type files, opening them on first use.
struct NdjsonWriter {
    dir: PathBuf,
    files: BTreeMap<&'static str, BufWriter<File>>,
    bytes: u64,
}

impl NdjsonWriter {
    fn write(&mut self, ty: &'static str, json: &str) -> io::Result<()> {
        if !self.files.contains_key(ty) {
            let f = create(&self.dir.join(format!("{ty}.ndjson")))?;
            self.files.insert(ty, f);
        }
        let f = self.files.get_mut(ty).expect("opened above");
        f.write_all(json.as_bytes())?;
        f.write_all(b"\n")?;
        self.bytes += json.len() as u64 + 1;
        Ok(())
    }

    fn finish(self) -> io::Result<u64> {
        for (_, mut f) in self.files {
            f.flush()?;
        }
        Ok(self.bytes)
    }
}

/// Generates and writes the population described by `opts`.
pub fn run(opts: &Options) -> io::Result<Stats> {
    let bundles = matches!(opts.format, Format::Bundles | Format::Both);
    let ndjson = matches!(opts.format, Format::Ndjson | Format::Both);
    fs::create_dir_all(&opts.out)?;
    let mut stats = Stats::default();
    if bundles {
        let b = catalog::catalog_bundle();
        fs::write(opts.out.join("0-organizations.json"), &b)?;
        stats.bytes += b.len() as u64;
    }
    let mut nd = if ndjson {
        let dir = opts.out.join("ndjson");
        fs::create_dir_all(&dir)?;
        let mut w = NdjsonWriter {
            dir,
            files: BTreeMap::new(),
            bytes: 0,
        };
        for i in 0..catalog::ORGS {
            w.write("Organization", &catalog::organization_json(i))?;
        }
        for i in 0..catalog::PRACTITIONERS {
            w.write("Practitioner", &catalog::practitioner_json(i))?;
        }
        Some(w)
    } else {
        None
    };

    let next = AtomicU64::new(1);
    let threads = opts.threads.max(1);
    let (tx, rx) = mpsc::sync_channel::<(u64, Vec<Resource>)>(threads * 2);
    let worker = |tx: mpsc::SyncSender<(u64, Vec<Resource>)>| -> io::Result<Stats> {
        let mut st = Stats::default();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i > opts.patients {
                return Ok(st);
            }
            if bundles {
                let res = patient::generate(opts.seed, i, &opts.window, Style::Bundle);
                st.count(&res);
                let json = bundle_json(&res);
                drop(res);
                let path = opts.out.join(patient_file_name(i));
                fs::write(&path, &json)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
                st.bytes += json.len() as u64;
            }
            if ndjson {
                let res = patient::generate(opts.seed, i, &opts.window, Style::Ndjson);
                if !bundles {
                    st.count(&res);
                }
                if tx.send((i, res)).is_err() {
                    return Ok(st);
                }
            }
        }
    };
    let results: Vec<io::Result<Stats>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let tx = tx.clone();
                s.spawn(move || worker(tx))
            })
            .collect();
        drop(tx);
        // Write NDJSON in patient order: buffer what arrives early.
        let mut write_err: Option<io::Error> = None;
        let mut pending: BTreeMap<u64, Vec<Resource>> = BTreeMap::new();
        let mut want = 1u64;
        for (i, res) in rx {
            pending.insert(i, res);
            while let Some(res) = pending.remove(&want) {
                if let (Some(w), None) = (nd.as_mut(), write_err.as_ref()) {
                    for r in &res {
                        if let Err(e) = w.write(r.ty, &r.json) {
                            write_err = Some(e);
                            break;
                        }
                    }
                }
                want += 1;
            }
        }
        let mut out: Vec<io::Result<Stats>> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("worker panicked")))
            })
            .collect();
        if let Some(e) = write_err {
            out.push(Err(e));
        }
        out
    });
    for r in results {
        stats.merge(r?);
    }
    if let Some(w) = nd {
        stats.bytes += w.finish()?;
    }
    Ok(stats)
}
