//! Histograms at rest: HdrHistogram V2 with DEFLATE (the perf anchors: send plain, compress at the
//! aggregator), read and written sparse ([`SparseHistogram`]: the non-empty buckets only), so a
//! bucket of a few runs costs a few hundred bytes of work, not a 188 KB counter array. Every stored
//! histogram has the fleet layout, so merges are exact.

use hdrhistogram::Histogram;
use report::SparseHistogram;

use super::StoreError;

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
