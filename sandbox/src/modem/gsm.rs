//! The GSM 7-bit default alphabet (3GPP TS 23.038 §6.2.1, with the extension table of §6.2.1.1),
//! septet packing (§6.1.2.1.1, and the USSD padding rule of §6.1.2.3.1), and UCS2 hex: the
//! encodings a modem uses for `+CUSD` strings and SMS user data.

/// The basic table, indexed by septet value. `\u{1b}` at 0x1B is the escape to the extension table.
const BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', //
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1b}', 'Æ', 'æ', 'ß', 'É', //
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', //
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?', //
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O', //
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§', //
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', //
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à', //
];

/// The extension table (after an escape septet): septet value and character.
const EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{0c}'),
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

const ESCAPE: u8 = 0x1B;

/// The septets of `text` in the default alphabet, or `None` if a character is in neither table.
pub fn to_septets(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        if let Some(i) = BASIC.iter().position(|&b| b == c && c != '\u{1b}') {
            out.push(i as u8);
        } else if let Some(&(s, _)) = EXTENSION.iter().find(|&&(_, e)| e == c) {
            out.extend([ESCAPE, s]);
        } else {
            return None;
        }
    }
    Some(out)
}

/// Whether `text` can be sent in the default alphabet.
pub fn is_gsm7(text: &str) -> bool {
    to_septets(text).is_some()
}

/// The text of septets (an unknown escape sequence reads as a space, as §6.2.1.1 advises).
pub fn from_septets(septets: &[u8]) -> String {
    let mut out = String::with_capacity(septets.len());
    let mut it = septets.iter().map(|s| s & 0x7F);
    while let Some(s) = it.next() {
        if s == ESCAPE {
            let next = it.next().unwrap_or(0x20);
            out.push(EXTENSION.iter().find(|&&(e, _)| e == next).map_or(' ', |&(_, c)| c));
        } else {
            out.push(BASIC[s as usize]);
        }
    }
    out
}

/// Packs septets into octets, least significant bit first (§6.1.2.1.1). `shift` is the number of
/// fill bits before the first septet (an SMS with a UDH starts on a septet boundary).
pub fn pack(septets: &[u8], shift: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity((septets.len() * 7).div_ceil(8) + 1);
    let mut acc: u32 = 0;
    let mut bits = shift;
    for &s in septets {
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

/// Unpacks `count` septets from octets packed by [`pack`] with the same `shift`.
pub fn unpack(octets: &[u8], count: usize, shift: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(count);
    let mut acc: u32 = 0;
    let mut bits: u32 = 0;
    let mut skip = shift;
    for &o in octets {
        acc |= u32::from(o) << bits;
        bits += 8;
        if skip > 0 {
            acc >>= skip;
            bits -= skip;
            skip = 0;
        }
        while bits >= 7 && out.len() < count {
            out.push((acc & 0x7F) as u8);
            acc >>= 7;
            bits -= 7;
        }
    }
    out
}

/// A USSD string packed per §6.1.2.3.1: when the last octet would end with 7 spare bits, a CR
/// fills them, so the receiver does not read a trailing `@`.
pub fn pack_ussd(text: &str) -> Option<Vec<u8>> {
    let mut septets = to_septets(text)?;
    if septets.len() % 8 == 7 {
        septets.push(0x0D);
    }
    Some(pack(&septets, 0))
}

/// The text of packed USSD octets: a trailing CR that fills the last octet is dropped.
pub fn unpack_ussd(octets: &[u8]) -> String {
    let count = octets.len() * 8 / 7;
    let mut septets = unpack(octets, count, 0);
    if septets.len().is_multiple_of(8) && septets.last() == Some(&0x0D) {
        septets.pop();
    }
    // Seven spare bits that are zero read as a trailing `@`: the sender did not pad.
    if octets.len().is_multiple_of(7) && septets.len().is_multiple_of(8) && septets.last() == Some(&0) {
        septets.pop();
    }
    from_septets(&septets)
}

/// Upper-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// Bytes of a hex string (either case), or `None` if it is not hex of whole bytes.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

/// UTF-16 big-endian hex ("UCS2" in TS 27.007 §5.5 +CSCS and DCS 0x48 in TS 23.038 §5).
pub fn ucs2_hex(text: &str) -> String {
    text.encode_utf16().map(|u| format!("{u:04X}")).collect()
}

/// The text of UCS2 hex, or `None` if it is not hex of whole 16-bit units.
pub fn from_ucs2_hex(s: &str) -> Option<String> {
    let bytes = unhex(s)?;
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    let units: Vec<u16> = bytes.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
    String::from_utf16(&units).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_packings() {
        // TS 23.038's classic example: "hellohello" packs to E8329BFD4697D9EC37.
        assert_eq!(hex(&pack(&to_septets("hellohello").unwrap(), 0)), "E8329BFD4697D9EC37");
        // *100# as Huawei modems send it.
        assert_eq!(hex(&pack_ussd("*100#").unwrap()), "AA180C3602");
        assert_eq!(unpack_ussd(&unhex("AA180C3602").unwrap()), "*100#");
    }

    #[test]
    fn ussd_padding_with_cr() {
        let seven = "1234567";
        let packed = pack_ussd(seven).unwrap();
        assert_eq!(packed.len(), 7);
        assert_eq!(packed[6] >> 1, 0x0D);
        assert_eq!(unpack_ussd(&packed), seven);
        for text in ["", "a", "Savanna Pay\n1. My balance", "12345678", "€[x]^"] {
            assert_eq!(unpack_ussd(&pack_ussd(text).unwrap()), text, "{text:?}");
        }
    }

    #[test]
    fn alphabet_and_ucs2() {
        assert!(is_gsm7("KES 1,250.00 @ $ _ {}"));
        assert!(!is_gsm7("Habari ✓"));
        assert_eq!(from_septets(&to_septets("a{b}€").unwrap()), "a{b}€");
        assert_eq!(ucs2_hex("Aé✓"), "004100E92713");
        assert_eq!(from_ucs2_hex("004100E92713").as_deref(), Some("Aé✓"));
        assert_eq!(from_ucs2_hex("0041X0"), None);
    }

    #[test]
    fn shifted_packing_round_trips() {
        let septets = to_septets("Concatenated part").unwrap();
        for shift in 0..7 {
            assert_eq!(unpack(&pack(&septets, shift), septets.len(), shift), septets);
        }
    }
}
