//! [`SparseHistogram`]: a fleet histogram as its recorded buckets only.
//!
//! A dense `Histogram<u64>` in the fleet configuration (1 µs … 1 h, 3 significant digits) is an
//! array of 23,552 counters, 188 KB, however few runs it holds; an interval of one series holds a
//! handful. The aggregator handles tens of thousands of them a second, so it keeps them sparse:
//! sorted `(bucket index, count)` pairs, with the same buckets (the HdrHistogram layout for the
//! fleet configuration), so every merge stays exact and every count lands where a dense histogram
//! would put it.
//!
//! The encoding is the standard HdrHistogram V2 ("HISTE…"), optionally DEFLATE-compressed
//! ("HISTF…"): a 40-byte header (cookie, payload length, normalizing index offset, significant
//! digits, lowest and highest trackable value, integer-to-double ratio, all big-endian), then one
//! ZigZag LEB128-64b9B varint per counter from index 0 to the last non-zero one, a run of `n > 1`
//! empty counters written as `-n`. The compressed form is a cookie, the compressed length and a
//! zlib stream of the plain form. [`SparseHistogram::encode`] writes what HdrHistogram's own V2
//! DEFLATE serializer writes for the same counts, byte for byte.

use std::{cell::RefCell, fmt};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use hdrhistogram::Histogram;

use crate::{HIST_HIGH_US, HIST_LOW_US, HIST_SIGFIG};

/// `log2` of half the sub-buckets per bucket: 2 × 10³ values need 2¹¹ sub-buckets at 3 digits.
const HALF_MAGNITUDE: u32 = 10;
const HALF_COUNT: usize = 1 << HALF_MAGNITUDE;
/// Values below this share bucket 0 at unit resolution.
const SUB_BUCKET_MASK: u64 = (2 << HALF_MAGNITUDE) - 1;
/// Buckets needed to reach [`HIST_HIGH_US`]: 2048 · 2²¹ > 3.6 · 10⁹.
const BUCKETS: usize = 22;
/// Counters in the fleet layout (`Histogram::distinct_values` of [`crate::new_histogram`]).
pub const FLEET_COUNTERS: usize = (BUCKETS + 1) * HALF_COUNT;

const V2_COOKIE: u32 = 0x1c84_9313;
const V2_COMPRESSED_COOKIE: u32 = 0x1c84_9314;
const V2_HEADER: usize = 40;
/// Largest plain encoding of a fleet histogram: every counter in 9 bytes.
const MAX_PLAIN: usize = V2_HEADER + FLEET_COUNTERS * 9;

/// The bucket index of a value (µs) in the fleet layout. Values past the last bucket (above
/// about 4,295 s) have none.
pub fn index_of(value: u64) -> Option<usize> {
    let bucket = (64 - HALF_MAGNITUDE - 1) - (value | SUB_BUCKET_MASK).leading_zeros();
    let sub = (value >> bucket) as usize;
    let index = ((bucket as usize + 1) << HALF_MAGNITUDE) + sub - HALF_COUNT;
    (index < FLEET_COUNTERS).then_some(index)
}

/// The lowest value (µs) of bucket `index`.
pub fn lowest_of(index: usize) -> u64 {
    let bucket = (index >> HALF_MAGNITUDE) as i64 - 1;
    let sub = ((index & (HALF_COUNT - 1)) + HALF_COUNT) as u64;
    if bucket < 0 { sub - HALF_COUNT as u64 } else { sub << bucket }
}

/// The highest value (µs) of bucket `index`: what HdrHistogram reports for a value in it.
pub fn highest_of(index: usize) -> u64 {
    lowest_of(index + 1) - 1
}

/// The middle of bucket `index` (HdrHistogram's "median equivalent", used for the mean).
fn median_of(index: usize) -> u64 {
    let low = lowest_of(index);
    low + ((lowest_of(index + 1) - low) >> 1)
}

/// A histogram in the fleet layout, holding only its non-empty buckets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SparseHistogram {
    /// `(bucket index, count)`, indices strictly increasing, counts non-zero.
    buckets: Vec<(u32, u64)>,
    total: u64,
}

impl fmt::Debug for SparseHistogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SparseHistogram")
            .field("total", &self.total)
            .field("buckets", &self.iter().map(|b| (b.low, b.count)).collect::<Vec<_>>())
            .finish()
    }
}

/// One non-empty bucket: values `low..=high` µs, `count` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    pub index: usize,
    pub low: u64,
    pub high: u64,
    pub count: u64,
}

impl SparseHistogram {
    pub fn new() -> SparseHistogram {
        SparseHistogram::default()
    }

    /// Values recorded.
    pub fn len(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Non-empty buckets.
    pub fn buckets(&self) -> usize {
        self.buckets.len()
    }

    /// Records `count` values of `value_us`, clamped to the fleet range (1 µs … 1 h).
    pub fn record_n(&mut self, value_us: u64, count: u64) {
        if count == 0 {
            return;
        }
        let index = index_of(value_us.clamp(HIST_LOW_US, HIST_HIGH_US)).expect("1 h is inside the fleet layout") as u32;
        match self.buckets.binary_search_by_key(&index, |b| b.0) {
            Ok(at) => self.buckets[at].1 = self.buckets[at].1.saturating_add(count),
            Err(at) => self.buckets.insert(at, (index, count)),
        }
        self.total = self.total.saturating_add(count);
    }

    /// The non-empty buckets, lowest first.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Recorded> + '_ {
        self.buckets.iter().map(|&(i, count)| {
            let index = i as usize;
            Recorded { index, low: lowest_of(index), high: highest_of(index), count }
        })
    }

    /// The highest recorded value as HdrHistogram reports it (its bucket's highest value); 0
    /// when empty.
    pub fn max(&self) -> u64 {
        self.buckets.last().map_or(0, |b| highest_of(b.0 as usize))
    }

    /// HdrHistogram's mean: bucket middles weighted by count.
    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let total = self.total as f64;
        self.buckets.iter().fold(0.0, |sum, &(i, n)| sum + median_of(i as usize) as f64 * n as f64 / total)
    }

    /// Adds `other`'s counts (saturating).
    pub fn add(&mut self, other: &SparseHistogram) {
        *self = SparseHistogram::sum([&*self, other]);
    }

    /// The sum of many histograms, in one sort rather than one merge per histogram.
    pub fn sum<'a>(hs: impl IntoIterator<Item = &'a SparseHistogram>) -> SparseHistogram {
        let mut all: Vec<(u32, u64)> = Vec::new();
        let mut total = 0u64;
        for h in hs {
            all.extend_from_slice(&h.buckets);
            total = total.saturating_add(h.total);
        }
        all.sort_unstable_by_key(|b| b.0);
        let mut buckets: Vec<(u32, u64)> = Vec::with_capacity(all.len());
        for (i, n) in all {
            match buckets.last_mut() {
                Some(last) if last.0 == i => last.1 = last.1.saturating_add(n),
                _ => buckets.push((i, n)),
            }
        }
        SparseHistogram { buckets, total }
    }

    /// The counts of a dense histogram. One in the fleet configuration maps bucket for bucket;
    /// any other is re-bucketed by each bucket's highest value (values past the fleet layout land
    /// in its last bucket).
    pub fn from_histogram(h: &Histogram<u64>) -> SparseHistogram {
        // Values come in increasing order and `index_of` is monotonic: the pairs come out sorted.
        let mut buckets: Vec<(u32, u64)> = Vec::new();
        for v in h.iter_recorded() {
            let index = index_of(v.value_iterated_to()).unwrap_or(FLEET_COUNTERS - 1) as u32;
            match buckets.last_mut() {
                Some(last) if last.0 == index => last.1 = last.1.saturating_add(v.count_at_value()),
                _ => buckets.push((index, v.count_at_value())),
            }
        }
        let total = buckets.iter().fold(0u64, |t, b| t.saturating_add(b.1));
        SparseHistogram { buckets, total }
    }

    /// A dense histogram in the fleet configuration with the same counts (for percentiles).
    pub fn to_histogram(&self) -> Histogram<u64> {
        let mut h = crate::new_histogram();
        self.add_to(&mut h);
        h
    }

    /// Adds these counts to a dense histogram in the fleet configuration.
    pub fn add_to(&self, h: &mut Histogram<u64>) {
        for &(i, n) in &self.buckets {
            h.saturating_record_n(lowest_of(i as usize), n);
        }
    }

    /// The standard HdrHistogram V2 DEFLATE encoding ("HISTF…" in base64).
    pub fn encode(&self) -> Vec<u8> {
        let mut plain = Vec::with_capacity(V2_HEADER + self.buckets.len() * 4 + 8);
        self.encode_plain(&mut plain);
        deflated(&plain)
    }

    /// The plain V2 encoding while it is at most `compress_above` bytes, DEFLATE above. Small
    /// histograms gain almost nothing from DEFLATE (a 24-run minute bucket: 102 bytes plain, 102
    /// compressed with its wrapper) and it is most of their encoding cost; wide ones halve.
    /// [`SparseHistogram::decode`] reads either.
    pub fn encode_compact(&self, compress_above: usize) -> Vec<u8> {
        let mut plain = Vec::with_capacity(V2_HEADER + self.buckets.len() * 4 + 8);
        self.encode_plain(&mut plain);
        if plain.len() <= compress_above { plain } else { deflated(&plain) }
    }

    /// The standard HdrHistogram V2 encoding, uncompressed ("HISTE…" in base64).
    pub fn encode_plain(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&V2_COOKIE.to_be_bytes());
        out.extend_from_slice(&[0; 4]); // payload length, below
        out.extend_from_slice(&0u32.to_be_bytes()); // normalizing index offset
        out.extend_from_slice(&u32::from(HIST_SIGFIG).to_be_bytes());
        out.extend_from_slice(&HIST_LOW_US.to_be_bytes());
        out.extend_from_slice(&HIST_HIGH_US.to_be_bytes());
        out.extend_from_slice(&1.0f64.to_be_bytes()); // integer-to-double ratio
        if self.buckets.is_empty() {
            // HdrHistogram writes the (empty) counter of value 0.
            varint_write(zigzag(0), out);
        }
        let mut next = 0usize;
        for &(i, n) in &self.buckets {
            let i = i as usize;
            match i - next {
                0 => {}
                1 => varint_write(zigzag(0), out),
                zeros => varint_write(zigzag(-(zeros as i64)), out),
            }
            varint_write(zigzag(i64::try_from(n).unwrap_or(i64::MAX)), out);
            next = i + 1;
        }
        let payload = (out.len() - start - V2_HEADER) as u32;
        out[start + 4..start + 8].copy_from_slice(&payload.to_be_bytes());
    }

    /// Reads the V2 encoding, plain or compressed, of a histogram whose buckets are the fleet's:
    /// lowest value 1 µs, 3 significant digits, and no value above the fleet layout's last bucket
    /// (a histogram configured with a higher limit is fine as long as its values fit). Any bytes
    /// give a histogram or a reason; nothing panics and nothing inflates beyond the largest fleet
    /// histogram.
    pub fn decode(raw: &[u8]) -> Result<SparseHistogram, String> {
        let not_v2 = |why: &str| format!("not an HdrHistogram V2 encoding: {why}");
        let cookie = read_u32(raw, 0).ok_or_else(|| not_v2("shorter than its cookie"))?;
        match cookie {
            V2_COOKIE => decode_plain(raw),
            V2_COMPRESSED_COOKIE => {
                let len = read_u32(raw, 4).ok_or_else(|| not_v2("shorter than its header"))? as usize;
                let stream = raw.get(8..8 + len).ok_or_else(|| not_v2("shorter than its compressed length"))?;
                let mut plain = Vec::with_capacity((stream.len() * 4).clamp(256, MAX_PLAIN));
                DECOMPRESSOR.with_borrow_mut(|d| {
                    d.reset(true);
                    loop {
                        let read = d.total_in() as usize;
                        // `None`, not `Finish`: a finishing inflate must fit its output in one call.
                        match d.decompress_vec(&stream[read..], &mut plain, FlushDecompress::None) {
                            Ok(Status::StreamEnd) => return Ok(()),
                            Ok(_) if plain.len() < plain.capacity() => {
                                return Err(not_v2("the compressed stream ends early"));
                            }
                            Ok(_) if plain.len() >= MAX_PLAIN => {
                                return Err(not_v2("inflates beyond the largest fleet histogram"));
                            }
                            Ok(_) => plain.reserve((plain.capacity() * 2).min(MAX_PLAIN) - plain.len()),
                            Err(e) => return Err(not_v2(&format!("bad DEFLATE stream: {e}"))),
                        }
                    }
                })?;
                if read_u32(&plain, 0) != Some(V2_COOKIE) {
                    return Err(not_v2("the compressed stream holds no V2 histogram"));
                }
                decode_plain(&plain)
            }
            _ => Err(not_v2(&format!("unknown cookie {cookie:#010x}"))),
        }
    }
}

impl From<&Histogram<u64>> for SparseHistogram {
    fn from(h: &Histogram<u64>) -> SparseHistogram {
        SparseHistogram::from_histogram(h)
    }
}

impl From<Histogram<u64>> for SparseHistogram {
    fn from(h: Histogram<u64>) -> SparseHistogram {
        SparseHistogram::from_histogram(&h)
    }
}

thread_local! {
    // DEFLATE state is hundreds of KB; one per thread, reset per use.
    static COMPRESSOR: RefCell<Compress> = RefCell::new(Compress::new(Compression::default(), true));
    static DECOMPRESSOR: RefCell<Decompress> = RefCell::new(Decompress::new(true));
}

/// The V2 compressed form of a plain V2 encoding: cookie, length, zlib stream.
fn deflated(plain: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(plain.len() / 2 + 64);
    out.extend_from_slice(&V2_COMPRESSED_COOKIE.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    COMPRESSOR.with_borrow_mut(|c| {
        c.reset();
        loop {
            out.reserve(plain.len() / 2 + 64);
            let read = c.total_in() as usize;
            match c.compress_vec(&plain[read..], &mut out, FlushCompress::Finish) {
                Ok(Status::StreamEnd) => break,
                Ok(_) => continue,
                Err(e) => unreachable!("DEFLATE into a growing Vec cannot fail: {e}"),
            }
        }
    });
    let len = (out.len() - 8) as u32;
    out[4..8].copy_from_slice(&len.to_be_bytes());
    out
}

fn decode_plain(raw: &[u8]) -> Result<SparseHistogram, String> {
    let not_v2 = |why: &str| format!("not an HdrHistogram V2 encoding: {why}");
    if raw.len() < V2_HEADER {
        return Err(not_v2("shorter than its header"));
    }
    let u32_at = |at| read_u32(raw, at).expect("inside the header");
    let u64_at = |at: usize| u64::from_be_bytes(raw[at..at + 8].try_into().expect("8 bytes"));
    let payload = u32_at(4) as usize;
    if u32_at(8) != 0 {
        return Err(not_v2("normalizing index offsets are not supported"));
    }
    let (sigfig, low, high) = (u32_at(12), u64_at(16), u64_at(24));
    if f64::from_bits(u64_at(32)) != 1.0 {
        return Err(not_v2("integer-to-double ratios other than 1 are not supported"));
    }
    if low != HIST_LOW_US || high < HIST_HIGH_US || sigfig != u32::from(HIST_SIGFIG) {
        return Err(format!(
            "histogram configured {low}..{high} at {sigfig} digits; the fleet uses {HIST_LOW_US}..{HIST_HIGH_US} at {HIST_SIGFIG}"
        ));
    }
    let mut counts =
        raw.get(V2_HEADER..V2_HEADER + payload).ok_or_else(|| not_v2("shorter than its payload length"))?;
    let mut buckets: Vec<(u32, u64)> = Vec::new();
    let (mut index, mut total) = (0usize, 0u64);
    while !counts.is_empty() {
        let (zz, used) = varint_read(counts).ok_or_else(|| not_v2("a count is cut off"))?;
        counts = &counts[used..];
        let n = unzigzag(zz);
        if n < 0 {
            index = index.saturating_add(usize::try_from(n.unsigned_abs()).unwrap_or(usize::MAX));
            continue;
        }
        if n > 0 {
            if index >= FLEET_COUNTERS {
                return Err("histogram holds values above the fleet layout's last bucket (about 4,295 s)".into());
            }
            total = total.checked_add(n as u64).ok_or("histogram counts overflow 64 bits")?;
            buckets.push((index as u32, n as u64));
        }
        index = index.saturating_add(1);
    }
    Ok(SparseHistogram { buckets, total })
}

fn read_u32(raw: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(raw.get(at..at + 4)?.try_into().ok()?))
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn unzigzag(z: u64) -> i64 {
    (z >> 1) as i64 ^ -((z & 1) as i64)
}

/// LEB128-64b9B: 7 bits per byte for the first eight bytes, all 8 bits of the ninth.
fn varint_write(mut v: u64, out: &mut Vec<u8>) {
    for _ in 0..8 {
        if v < 0x80 {
            out.push(v as u8);
            return;
        }
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The value and the bytes it used, or `None` when the input ends inside it.
fn varint_read(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for i in 0..8 {
        let b = *bytes.get(i)?;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    Some((v | u64::from(*bytes.get(8)?) << 56, 9))
}

#[cfg(test)]
mod tests;
