//! Histograms at rest: HdrHistogram V2 with DEFLATE (the perf anchors: send plain, compress at the
//! aggregator). Every stored histogram has the fleet configuration, so merges take the fast path.

use hdrhistogram::{
    Histogram,
    serialization::{Deserializer, Serializer, V2DeflateSerializer},
};

use super::StoreError;

pub(crate) fn encode(h: &Histogram<u64>) -> Vec<u8> {
    let mut out = Vec::new();
    V2DeflateSerializer::new().serialize(h, &mut out).expect("writing to a Vec cannot fail");
    out
}

pub(crate) fn decode(blob: &[u8]) -> Result<Histogram<u64>, StoreError> {
    Deserializer::new().deserialize(&mut std::io::Cursor::new(blob)).map_err(|e| StoreError::Corrupt(format!("{e:?}")))
}

/// Adds the encoded histogram (if any) into `into`.
pub(crate) fn merge_blob(into: &mut Histogram<u64>, blob: Option<&[u8]>) -> Result<(), StoreError> {
    if let Some(blob) = blob {
        into.add(decode(blob)?).map_err(|e| StoreError::Corrupt(format!("{e:?}")))?;
    }
    Ok(())
}
