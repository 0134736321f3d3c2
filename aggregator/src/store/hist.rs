//! Histograms at rest: HdrHistogram V2, read and written sparse ([`SparseHistogram`]: the non-empty
//! buckets only), so a bucket of a few runs costs a few hundred bytes of work, not a 188 KB counter
//! array. Every stored histogram has the fleet layout, so merges are exact.
//!
//! Plain V2 up to [`COMPRESS_ABOVE`] bytes, DEFLATE above: a minute bucket (tens of runs) is about
//! 100 bytes either way, and it is rewritten at every batch that touches it, so compressing it
//! would cost most of ingest's histogram time for nothing; an hourly bucket (written once, at
//! compaction) of 1,440 runs halves (benches/RESULTS.md, `histogram_codec`).

use hdrhistogram::Histogram;
use report::SparseHistogram;

use super::StoreError;

/// Plain V2 encodings longer than this are stored DEFLATE'd.
pub(crate) const COMPRESS_ABOVE: usize = 256;

pub(crate) fn encode(h: &SparseHistogram) -> Vec<u8> {
    h.encode_compact(COMPRESS_ABOVE)
}

pub(crate) fn decode(blob: &[u8]) -> Result<SparseHistogram, StoreError> {
    SparseHistogram::decode(blob).map_err(StoreError::Corrupt)
}

/// Adds the encoded histogram (if any) into the dense `into`.
pub(crate) fn merge_blob(into: &mut Histogram<u64>, blob: Option<&[u8]>) -> Result<(), StoreError> {
    if let Some(blob) = blob {
        decode(blob)?.add_to(into);
    }
    Ok(())
}
