//! What one series snapshot costs the aggregator in histogram work, dense against sparse, and the
//! DEFLATE backend under both. See benches/README.md (`histogram_codec`).
//!
//! Three shapes of fleet histogram (1 µs … 1 h, 3 digits), `--samples` distinct ones of each:
//! - `interval`: 2 runs, what one series of one report carries (the ingest benchmark's load);
//! - `minute`: 24 runs between 0.3 and 2 s, a per-minute rollup bucket;
//! - `hour`: 1,440 runs between 0.05 and 30 s, log-spread, an hourly rollup bucket.
//!
//! Rows, each the peer (HdrHistogram's dense `Histogram<u64>`, or miniz_oxide) against ours in the
//! same process: decode V2+DEFLATE, encode V2+DEFLATE, merge 300 snapshots (a busy minute bucket),
//! count runs within SLO thresholds (the engine's and `/metrics`' rule), and raw DEFLATE/inflate of
//! the same plain V2 bytes with miniz_oxide and with flate2's zlib-rs backend (the one the
//! workspace uses). Median of `--reps` timed passes over all samples; ns per histogram.
//!
//!   cargo bench --bench histogram_codec -- [--samples N] [--reps N]

use std::hint::black_box;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use hdrhistogram::{
    Histogram,
    serialization::{Deserializer, Serializer, V2DeflateSerializer},
};
use report::SparseHistogram;
use tokio::time::Instant;

struct Args {
    samples: usize,
    reps: usize,
}

fn args() -> Args {
    let mut a = Args { samples: 1000, reps: 7 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| -> usize {
            it.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
                eprintln!("{name} needs a number (try --samples 1000 --reps 7)");
                std::process::exit(2)
            })
        };
        match flag.as_str() {
            "--samples" => a.samples = value("--samples").max(1),
            "--reps" => a.reps = value("--reps").max(1),
            // `cargo bench` passes --bench to every bench binary.
            "--bench" => {}
            other => {
                eprintln!("unknown argument {other}; usage: histogram_codec [--samples N] [--reps N]");
                std::process::exit(2)
            }
        }
    }
    a
}

/// A small deterministic generator (xorshift), so every run measures the same histograms.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Log-uniform between `lo` and `hi` µs.
    fn log_between(&mut self, lo: f64, hi: f64) -> u64 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        (lo * (hi / lo).powf(u)) as u64
    }
}

fn shape(rng: &mut Rng, name: &str) -> Histogram<u64> {
    let (runs, lo, hi) = match name {
        "interval" => (2, 200_000.0, 3_000_000.0),
        "minute" => (24, 300_000.0, 2_000_000.0),
        _ => (1_440, 50_000.0, 30_000_000.0),
    };
    let mut h = report::new_histogram();
    for _ in 0..runs {
        h.record(rng.log_between(lo, hi)).expect("inside the fleet range");
    }
    h
}

/// Median ns per item of `reps` passes of `pass` (which handles `items` items).
fn time(reps: usize, items: usize, mut pass: impl FnMut()) -> f64 {
    pass(); // warm-up
    let mut ns: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            pass();
            t.elapsed().as_nanos() as f64 / items as f64
        })
        .collect();
    ns.sort_by(f64::total_cmp);
    ns[ns.len() / 2]
}

fn row(what: &str, shape: &str, peer: &str, peer_ns: f64, ours: &str, ours_ns: f64, bytes: &str) {
    println!(
        "| {what} | {shape} | {peer} | {:.2} | {ours} | {:.2} | **{:.1}×** | {bytes} |",
        peer_ns / 1000.0,
        ours_ns / 1000.0,
        peer_ns / ours_ns
    );
}

fn main() {
    let a = args();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    println!("| operation | shape | peer | peer µs | ours | ours µs | speed-up | bytes |");
    println!("|---|---|---|---:|---|---:|---:|---|");
    for name in ["interval", "minute", "hour"] {
        let dense: Vec<Histogram<u64>> = (0..a.samples).map(|_| shape(&mut rng, name)).collect();
        let sparse: Vec<SparseHistogram> = dense.iter().map(SparseHistogram::from).collect();

        codec_rows(&a, name, &dense, &sparse);
        merge_rows(&a, name, &dense, &sparse);
        deflate_rows(&a, name, &sparse);
    }
}

/// Encoding and decoding the report format's V2+DEFLATE, dense against sparse.
fn codec_rows(a: &Args, name: &str, dense: &[Histogram<u64>], sparse: &[SparseHistogram]) {
    let n = a.samples;
    // Encode V2+DEFLATE.
    let mut ser = V2DeflateSerializer::new();
    let mut buf = Vec::new();
    let peer = time(a.reps, n, || {
        for h in dense {
            buf.clear();
            ser.serialize(h, &mut buf).expect("serializes");
            black_box(&buf);
        }
    });
    let ours = time(a.reps, n, || {
        for h in sparse {
            black_box(h.encode());
        }
    });
    let encoded: Vec<Vec<u8>> = sparse.iter().map(SparseHistogram::encode).collect();
    let avg = encoded.iter().map(Vec::len).sum::<usize>() / n;
    row("encode V2+DEFLATE", name, "hdrhistogram dense", peer, "SparseHistogram", ours, &format!("{avg} (identical)"));

    // Decode V2+DEFLATE.
    let mut de = Deserializer::new();
    let peer = time(a.reps, n, || {
        for raw in &encoded {
            let h: Histogram<u64> = de.deserialize(&mut std::io::Cursor::new(raw)).expect("decodes");
            black_box(h);
        }
    });
    let ours = time(a.reps, n, || {
        for raw in &encoded {
            black_box(SparseHistogram::decode(raw).expect("decodes"));
        }
    });
    row("decode V2+DEFLATE", name, "hdrhistogram dense", peer, "SparseHistogram", ours, "");
}

/// Merging snapshots and counting runs within thresholds, as the store and the SLO engine do.
fn merge_rows(a: &Args, name: &str, dense: &[Histogram<u64>], sparse: &[SparseHistogram]) {
    let n = a.samples;
    // Merge 300 snapshots into one bucket.
    let groups = n.div_ceil(300);
    let peer = time(a.reps, groups, || {
        for chunk in dense.chunks(300) {
            let mut m = report::new_histogram();
            for h in chunk {
                m.add(h).expect("same layout");
            }
            black_box(m);
        }
    });
    let ours = time(a.reps, groups, || {
        for chunk in sparse.chunks(300) {
            black_box(SparseHistogram::sum(chunk));
        }
    });
    row("merge 300 snapshots", name, "hdrhistogram `add`", peer, "`SparseHistogram::sum`", ours, "");

    // Runs within thresholds (the engine's rule: bucket start at or below the threshold).
    let thresholds = [500_000u64, 1_000_000, 2_000_000, 3_000_000];
    let peer = time(a.reps, n, || {
        for h in dense {
            let mut c = [0u64; 4];
            for v in h.iter_recorded() {
                let low = h.lowest_equivalent(v.value_iterated_to());
                for (i, t) in thresholds.iter().enumerate() {
                    c[i] += u64::from(low <= *t) * v.count_at_value();
                }
            }
            black_box(c);
        }
    });
    let ours = time(a.reps, n, || {
        for h in sparse {
            let mut c = [0u64; 4];
            for b in h.iter() {
                for (i, t) in thresholds.iter().enumerate() {
                    c[i] += u64::from(b.low <= *t) * b.count;
                }
            }
            black_box(c);
        }
    });
    row("count within 4 thresholds", name, "`iter_recorded`", peer, "`SparseHistogram::iter`", ours, "");
}

/// The DEFLATE backends on the same plain V2 bytes.
fn deflate_rows(a: &Args, name: &str, sparse: &[SparseHistogram]) {
    let n = a.samples;
    // DEFLATE backends on the same plain V2 bytes.
    let plain: Vec<Vec<u8>> = sparse
        .iter()
        .map(|h| {
            let mut p = Vec::new();
            h.encode_plain(&mut p);
            p
        })
        .collect();
    let peer = time(a.reps, n, || {
        for p in &plain {
            black_box(miniz_oxide::deflate::compress_to_vec_zlib(p, 6));
        }
    });
    let mut c = Compress::new(Compression::default(), true);
    let mut zout = Vec::with_capacity(1 << 16);
    let ours = time(a.reps, n, || {
        for p in &plain {
            c.reset();
            zout.clear();
            c.compress_vec(p, &mut zout, FlushCompress::Finish).expect("compresses");
            black_box(&zout);
        }
    });
    let miniz_len = plain.iter().map(|p| miniz_oxide::deflate::compress_to_vec_zlib(p, 6).len()).sum::<usize>() / n;
    let zlib_len = plain
        .iter()
        .map(|p| {
            c.reset();
            zout.clear();
            c.compress_vec(p, &mut zout, FlushCompress::Finish).expect("compresses");
            zout.len()
        })
        .sum::<usize>()
        / n;
    let plain_len = plain.iter().map(Vec::len).sum::<usize>() / n;
    row(
        "DEFLATE level 6",
        name,
        "miniz_oxide",
        peer,
        "flate2 zlib-rs",
        ours,
        &format!("{plain_len} → miniz {miniz_len}, zlib-rs {zlib_len}"),
    );
    let zipped: Vec<Vec<u8>> = plain.iter().map(|p| miniz_oxide::deflate::compress_to_vec_zlib(p, 6)).collect();
    let peer = time(a.reps, n, || {
        for z in &zipped {
            black_box(miniz_oxide::inflate::decompress_to_vec_zlib(z).expect("inflates"));
        }
    });
    let mut d = Decompress::new(true);
    let mut dout = Vec::with_capacity(1 << 18);
    let ours = time(a.reps, n, || {
        for z in &zipped {
            d.reset(true);
            dout.clear();
            d.decompress_vec(z, &mut dout, FlushDecompress::Finish).expect("inflates");
            black_box(&dout);
        }
    });
    row("inflate", name, "miniz_oxide", peer, "flate2 zlib-rs", ours, "");
}
