//! `flint-gen`: writes a deterministic synthetic population (FHIR R4 transaction bundles and/or
//! NDJSON), or compares one with a directory of Synthea bundles (`--compare DIR`).

use clap::{Parser, ValueEnum};
use flint_gen::output::{self, Format, Options};
use flint_gen::time::Window;
use flint_gen::{compare, time};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// Output format on the command line.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum FormatArg {
    /// One transaction bundle per patient plus `0-organizations.json`.
    Bundles,
    /// `ndjson/<Type>.ndjson`.
    Ndjson,
    /// Both.
    Both,
}

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(
    name = "flint-gen",
    about = "Generates a deterministic, Synthea-shaped synthetic population as FHIR R4 bundles and/or NDJSON"
)]
struct Args {
    /// Number of patients (default 100; with --compare: as many as the reference has).
    #[arg(long)]
    patients: Option<u64>,
    /// Seed: the same arguments always give byte-identical output.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output directory.
    #[arg(long, required_unless_present = "compare")]
    out: Option<PathBuf>,
    /// What to write.
    #[arg(long, value_enum, default_value_t = FormatArg::Bundles)]
    format: FormatArg,
    /// Records span January 1st of this year to ten years later (default: the ten years before
    /// a reference date derived from the seed, between 2024-01-03 and 2025-01-01).
    #[arg(long)]
    start_year: Option<i32>,
    /// Worker threads (default: available cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Instead of writing, compare a generated population with the Synthea bundles in this
    /// directory and print the comparison as Markdown.
    #[arg(long, value_name = "DIR")]
    compare: Option<PathBuf>,
}

fn main() {
    let args = Args::parse();
    let window = match args.start_year {
        Some(y) => Window::from_start_year(y),
        None => Window::from_seed(args.seed),
    };
    if let Some(dir) = &args.compare {
        let reference = match compare::profile_dir(dir) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("cannot read {}: {e}", dir.display());
                std::process::exit(2);
            }
        };
        let n = args.patients.unwrap_or(reference.patients() as u64);
        let generated = compare::profile_generated(args.seed, n, &window);
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "<!-- flint-gen --compare {} --seed {} --patients {n}; window {} to {} -->\n",
            dir.display(),
            args.seed,
            time::date(window.start, 0),
            time::date(window.end, 0)
        );
        let _ = write!(out, "{}", compare::report(&reference, &generated));
        return;
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let opts = Options {
        patients: args.patients.unwrap_or(100),
        seed: args.seed,
        out: args.out.expect("clap requires --out"),
        format: match args.format {
            FormatArg::Bundles => Format::Bundles,
            FormatArg::Ndjson => Format::Ndjson,
            FormatArg::Both => Format::Both,
        },
        window,
        threads,
    };
    let start = Instant::now();
    match output::run(&opts) {
        Ok(st) => {
            let secs = start.elapsed().as_secs_f64();
            let types: Vec<String> = st.by_type.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "patients={} resources={} ({:.0}/patient) bytes={} seconds={secs:.2} threads={threads} resources/s={:.0} MB/s={:.1}",
                st.patients,
                st.resources,
                st.resources as f64 / st.patients.max(1) as f64,
                st.bytes,
                st.resources as f64 / secs,
                st.bytes as f64 / secs / 1e6
            );
            let _ = writeln!(
                out,
                "window {} to {}; {}",
                time::date(window.start, 0),
                time::date(window.end, 0),
                types.join(" ")
            );
        }
        Err(e) => {
            eprintln!("flint-gen: {e}");
            std::process::exit(1);
        }
    }
}
