//! FNV-1a, 64 bits: a fast, stable hash for what needs no cryptography — the journal's line
//! checksums (enough to tell a torn or garbled line from a whole one) and seeds derived from names.

pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}
