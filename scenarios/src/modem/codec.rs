//! Character sets a modem speaks: the GSM 7-bit default alphabet with its extension table
//! (3GPP TS 23.038 §6.2.1, §6.2.1.1), its packing into octets (§6.1.2.1), UCS2 as hex, and the
//! data coding schemes of USSD (§5, "CBS Data Coding Scheme") and SMS (§4, TP-DCS).

/// The default alphabet, by septet value (TS 23.038 §6.2.1). 0x1B is the escape to the extension
/// table; it decodes to nothing on its own.
const GSM7: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1b}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// The extension table (TS 23.038 §6.2.1.1): septet after 0x1B, and its character.
const GSM7_EXT: [(u8, char); 10] = [
    (0x0A, '\u{c}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

const ESC: u8 = 0x1B;

/// Decodes unpacked septets. An unknown extension decodes as its default-table character
/// (§6.2.1.1: "a space" is also allowed; the character is more useful to a reader).
pub fn gsm7_decode(septets: &[u8]) -> String {
    let mut out = String::with_capacity(septets.len());
    let mut it = septets.iter().map(|s| s & 0x7F);
    while let Some(s) = it.next() {
        if s == ESC {
            if let Some(e) = it.next() {
                out.push(GSM7_EXT.iter().find(|(k, _)| *k == e).map_or(GSM7[usize::from(e)], |(_, c)| *c));
            }
        } else {
            out.push(GSM7[usize::from(s)]);
        }
    }
    out
}

/// Encodes text as unpacked septets; `None` when a character is not in the alphabet.
pub fn gsm7_encode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        if let Some(i) = GSM7.iter().position(|g| *g == c).filter(|&i| i != usize::from(ESC)) {
            out.push(u8::try_from(i).ok()?);
        } else {
            let (e, _) = GSM7_EXT.iter().find(|(_, x)| *x == c)?;
            out.extend([ESC, *e]);
        }
    }
    Some(out)
}

/// Packs septets into octets, least significant bit first (TS 23.038 §6.1.2.1.1).
pub fn pack7(septets: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(septets.len() * 7 / 8 + 1);
    let (mut acc, mut bits) = (0u32, 0u32);
    for s in septets {
        acc |= u32::from(s & 0x7F) << bits;
        bits += 7;
        while bits >= 8 {
            out.push((acc & 0xFF) as u8);
            acc >>= 8;
            bits -= 8;
        }
    }
    if bits > 0 {
        out.push((acc & 0xFF) as u8);
    }
    out
}

/// Unpacks `count` septets (or as many as the octets hold, when `None`) starting `skip_bits`
/// into the data (the fill bits after a user data header, TS 23.040 §9.2.3.24).
pub fn unpack7(octets: &[u8], skip_bits: usize, count: Option<usize>) -> Vec<u8> {
    let total_bits = octets.len() * 8;
    let avail = total_bits.saturating_sub(skip_bits) / 7;
    let n = count.map_or(avail, |c| c.min(avail));
    (0..n)
        .map(|i| {
            let bit = skip_bits + i * 7;
            let (byte, off) = (bit / 8, bit % 8);
            let lo = u16::from(octets[byte]) >> off;
            let hi = octets.get(byte + 1).map_or(0, |b| u16::from(*b) << (8 - off));
            ((lo | hi) & 0x7F) as u8
        })
        .collect()
}

/// Decodes a USSD string of 7-bit packed octets. Without a septet count, a final CR that fills
/// 7 spare bits is padding (§6.1.2.3.1).
pub fn ussd_unpack(octets: &[u8]) -> String {
    let mut septets = unpack7(octets, 0, None);
    if octets.len().is_multiple_of(7) && septets.last() == Some(&0x0D) {
        septets.pop();
    }
    gsm7_decode(&septets)
}

/// Packs text for USSD: a CR pads 7 spare bits so the last septet is not read as `@`.
pub fn ussd_pack(text: &str) -> Option<Vec<u8>> {
    let mut s = gsm7_encode(text)?;
    if s.len() % 8 == 7 {
        s.push(0x0D);
    }
    Some(pack7(&s))
}

/// Octets from hex (either case); `None` when it is not whole hex.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(2) {
        return None;
    }
    b.chunks(2)
        .map(|p| {
            let h = char::from(p[0]).to_digit(16)?;
            let l = char::from(p[1]).to_digit(16)?;
            u8::try_from(h * 16 + l).ok()
        })
        .collect()
}

pub fn to_hex(b: &[u8]) -> String {
    use std::fmt::Write;
    b.iter().fold(String::with_capacity(b.len() * 2), |mut s, x| {
        let _ = write!(s, "{x:02X}");
        s
    })
}

/// UCS2 (UTF-16BE, surrogate pairs allowed) octets to text; bad units become U+FFFD.
pub fn ucs2_decode(b: &[u8]) -> String {
    let units = b.chunks_exact(2).map(|p| u16::from_be_bytes([p[0], p[1]]));
    char::decode_utf16(units).map(|r| r.unwrap_or('\u{FFFD}')).collect()
}

pub fn ucs2_encode(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

/// What a data coding scheme says about the alphabet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alphabet {
    Gsm7,
    Eight,
    Ucs2,
}

/// The alphabet of a USSD string's dcs (TS 23.038 §5). Reserved codings are read as GSM 7-bit,
/// as §5 asks.
pub fn ussd_alphabet(dcs: u8) -> Alphabet {
    match dcs >> 4 {
        0x0 | 0x2 | 0x3 => Alphabet::Gsm7,
        // 0001 0000: GSM 7 with a language indication; 0001 0001: UCS2 preceded by a language.
        0x1 if dcs & 0x0F == 1 => Alphabet::Ucs2,
        // 01xx: general data coding, bits 3..2 the alphabet; 1001: message with a header, the same.
        0x4..=0x7 | 0x9 => general(dcs),
        // 1111: bit 2 chooses 8-bit data over GSM 7.
        0xF if dcs & 0x04 != 0 => Alphabet::Eight,
        _ => Alphabet::Gsm7,
    }
}

/// The alphabet of an SMS's TP-DCS (TS 23.038 §4).
pub fn sms_alphabet(dcs: u8) -> Alphabet {
    match dcs >> 4 {
        0x0..=0x7 => general(dcs),
        0xE => Alphabet::Ucs2,
        0xF if dcs & 0x04 != 0 => Alphabet::Eight,
        _ => Alphabet::Gsm7,
    }
}

fn general(dcs: u8) -> Alphabet {
    match (dcs >> 2) & 0x03 {
        1 => Alphabet::Eight,
        2 => Alphabet::Ucs2,
        _ => Alphabet::Gsm7,
    }
}

/// How the modem presents USSD strings on the AT line (its `AT+CSCS` and its habits): the
/// step's `modem.charset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Charset {
    /// `AT+CSCS="GSM"`; strings arrive as text (Quectel, SIMCom, most).
    #[default]
    Gsm,
    /// `AT+CSCS="IRA"`: text.
    Ira,
    /// `AT+CSCS="UCS2"`: every string is UCS2 as hex.
    Ucs2,
    /// `AT+CSCS="GSM"`, but GSM 7-bit strings arrive (and must be sent) 7-bit packed as hex
    /// (many Huawei and Qualcomm modems).
    Packed,
}

impl Charset {
    /// The `AT+CSCS` value.
    pub fn cscs(self) -> &'static str {
        match self {
            Charset::Gsm | Charset::Packed => "GSM",
            Charset::Ira => "IRA",
            Charset::Ucs2 => "UCS2",
        }
    }

    /// A `+CUSD` string as text, per its dcs (15, GSM 7-bit, when absent).
    pub fn decode_ussd(self, raw: &str, dcs: Option<u8>) -> String {
        let alphabet = ussd_alphabet(dcs.unwrap_or(15));
        let hex = from_hex(raw);
        match (alphabet, self, hex) {
            (Alphabet::Ucs2, _, Some(b)) | (Alphabet::Gsm7, Charset::Ucs2, Some(b)) => ucs2_decode(&b),
            (Alphabet::Gsm7, Charset::Packed, Some(b)) => ussd_unpack(&b),
            (Alphabet::Eight, _, Some(b)) => b.iter().map(|x| char::from(*x)).collect(),
            _ => raw.to_owned(),
        }
    }

    /// A user's input as the `<str>` of `AT+CUSD=1,"<str>",15`.
    pub fn encode_ussd(self, text: &str) -> String {
        match self {
            Charset::Gsm | Charset::Ira => text.to_owned(),
            Charset::Ucs2 => to_hex(&ucs2_encode(text)),
            Charset::Packed => ussd_pack(text).map_or_else(|| text.to_owned(), |b| to_hex(&b)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_whole() {
        assert_eq!(GSM7.len(), 128);
        assert_eq!(gsm7_decode(&gsm7_encode("Hi {€} @£$").unwrap()), "Hi {€} @£$");
    }

    #[test]
    fn packing_follows_the_spec_example() {
        // TS 23.038 §6.1.2.1.1's layout: "hellohello" packs to E8329BFD4697D9EC37.
        assert_eq!(to_hex(&pack7(&gsm7_encode("hellohello").unwrap())), "E8329BFD4697D9EC37");
        assert_eq!(ussd_unpack(&from_hex("E8329BFD4697D9EC37").unwrap()), "hellohello");
    }

    #[test]
    fn ussd_padding_cr() {
        // Seven characters leave 7 spare bits: a CR fills them and is dropped on decode.
        let packed = ussd_pack("1234567").unwrap();
        assert_eq!(packed.len(), 7);
        assert_eq!(ussd_unpack(&packed), "1234567");
        assert_eq!(ussd_unpack(&ussd_pack("*144#").unwrap()), "*144#");
    }

    #[test]
    fn dcs_tables() {
        assert_eq!(ussd_alphabet(15), Alphabet::Gsm7);
        assert_eq!(ussd_alphabet(72), Alphabet::Ucs2);
        assert_eq!(ussd_alphabet(68), Alphabet::Eight);
        assert_eq!(ussd_alphabet(0x11), Alphabet::Ucs2);
        assert_eq!(ussd_alphabet(0xF4), Alphabet::Eight);
        assert_eq!(sms_alphabet(0x00), Alphabet::Gsm7);
        assert_eq!(sms_alphabet(0x08), Alphabet::Ucs2);
        assert_eq!(sms_alphabet(0x04), Alphabet::Eight);
        assert_eq!(sms_alphabet(0xF0), Alphabet::Gsm7);
    }

    #[test]
    fn decoding_per_charset() {
        assert_eq!(Charset::Gsm.decode_ussd("Balance: 100", Some(15)), "Balance: 100");
        assert_eq!(Charset::Gsm.decode_ussd("00480069002020AC", Some(72)), "Hi €");
        assert_eq!(Charset::Packed.decode_ussd("E8329BFD4697D9EC37", Some(15)), "hellohello");
        // Text that is not hex stays text, even on a packed modem.
        assert_eq!(Charset::Packed.decode_ussd("Hello", Some(15)), "Hello");
        assert_eq!(Charset::Ucs2.encode_ussd("1"), "0031");
        assert_eq!(Charset::Packed.encode_ussd("1"), "31");
    }

    proptest::proptest! {
        #[test]
        fn pack_roundtrip(s in proptest::collection::vec(0u8..128, 0..200)) {
            let packed = pack7(&s);
            proptest::prop_assert_eq!(unpack7(&packed, 0, Some(s.len())), s);
        }

        #[test]
        fn gsm7_text_roundtrip(s in "[A-Za-z0-9 @£$€{}\\[\\]#*.,:?!-]{0,120}") {
            let packed = ussd_pack(&s).unwrap();
            proptest::prop_assert_eq!(ussd_unpack(&packed), s);
        }

        #[test]
        fn decoders_never_panic(s in "\\PC{0,60}", d in proptest::num::u8::ANY) {
            for c in [Charset::Gsm, Charset::Ira, Charset::Ucs2, Charset::Packed] {
                let _ = c.decode_ussd(&s, Some(d));
            }
        }
    }
}
