//! SMS-DELIVER PDUs as a modem in PDU mode (`AT+CMGF=0`) returns them: the hex line after
//! `+CMGR: <stat>,[<alpha>],<length>` or `+CMGL: ...` (3GPP TS 27.005 §3.4.2, §4.1), laid out
//! as in TS 23.040 §9.2.2.1 and coded as in TS 23.038. Pure: no I/O, and no input panics.

use super::codec::{self, Alphabet};

/// One decoded SMS-DELIVER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deliver {
    /// TP-OA: `+` and digits (international), digits (other numbering), or the text of an
    /// alphanumeric sender such as `MPESA`.
    pub sender: String,
    /// TP-SCTS as `YY/MM/DD hh:mm:ss±hh:mm` (the zone in the service centre's local time).
    pub timestamp: String,
    /// TP-UD after any header. 8-bit data, which has no character set, is given as hex.
    pub text: String,
    /// The concatenation header, when the message is one part of a longer one.
    pub part: Option<Part>,
}

/// A concatenated message's information element (TS 23.040 §9.2.3.24.1, §9.2.3.24.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub reference: u16,
    pub total: u8,
    /// 1-based.
    pub sequence: u8,
}

/// Reads octets in order; every read is bounds-checked and names the field it was for.
struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len()).ok_or_else(|| {
            format!("PDU ends inside {field}: needs {n} octet(s) at offset {}, has {}", self.at, self.b.len())
        })?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn octet(&mut self, field: &str) -> Result<u8, String> {
        Ok(self.take(1, field)?[0])
    }

    fn rest(&self) -> &'a [u8] {
        &self.b[self.at..]
    }
}

/// Decodes one SMS-DELIVER PDU, SMSC information first, as `+CMGR`/`+CMGL` give it in PDU mode.
pub fn decode_deliver(hex: &str) -> Result<Deliver, String> {
    let bytes = codec::from_hex(hex.trim()).ok_or("PDU is not whole hex (an even number of 0-9/A-F digits)")?;
    let mut c = Cursor { b: &bytes, at: 0 };
    let smsc = c.octet("the SMSC length")?;
    c.take(usize::from(smsc), "the SMSC address")?;
    let first = c.octet("the first octet")?;
    if first & 0x03 != 0 {
        return Err(format!("not an SMS-DELIVER: TP-MTI is {} (want 0)", first & 0x03));
    }
    let udhi = first & 0x40 != 0;
    let sender = address(&mut c)?;
    let _pid = c.octet("TP-PID")?;
    let dcs = c.octet("TP-DCS")?;
    let timestamp = scts(c.take(7, "TP-SCTS")?)?;
    let udl = usize::from(c.octet("TP-UDL")?);
    let ud = c.rest();
    let alphabet = codec::sms_alphabet(dcs);
    let need = if alphabet == Alphabet::Gsm7 { (udl * 7).div_ceil(8) } else { udl };
    let ud = ud.get(..need).ok_or_else(|| format!("TP-UD is {} octet(s), TP-UDL {udl} needs {need}", ud.len()))?;
    let (part, header_octets) = if udhi { header(ud)? } else { (None, 0) };
    let text = match alphabet {
        Alphabet::Gsm7 => {
            // The header is followed by fill bits up to the next septet boundary (§9.2.3.24).
            let skip = (header_octets * 8).div_ceil(7);
            let count = udl.checked_sub(skip).ok_or("TP-UDL is shorter than the user data header")?;
            codec::gsm7_decode(&codec::unpack7(ud, skip * 7, Some(count)))
        }
        Alphabet::Ucs2 => codec::ucs2_decode(&ud[header_octets..]),
        Alphabet::Eight => codec::to_hex(&ud[header_octets..]),
    };
    Ok(Deliver { sender, timestamp, text, part })
}

/// TP-OA (§9.1.2.5): length in semi-octets, type of address, then the value.
fn address(c: &mut Cursor<'_>) -> Result<String, String> {
    let len = usize::from(c.octet("the TP-OA length")?);
    let toa = c.octet("the TP-OA type of address")?;
    let value = c.take(len.div_ceil(2), "TP-OA")?;
    match (toa >> 4) & 0x07 {
        // Alphanumeric: GSM 7-bit packed characters (§9.1.2.5, TS 23.038 §6.2.1).
        0b101 => Ok(codec::gsm7_decode(&codec::unpack7(value, 0, Some(len * 4 / 7)))),
        ton => {
            let digits: String = semi_octets(value).take(len).filter(|&d| d != 0xF).map(bcd_char).collect();
            Ok(if ton == 0b001 { format!("+{digits}") } else { digits })
        }
    }
}

/// Semi-octets in order: the low nibble of each octet first (§9.1.2.3).
fn semi_octets(b: &[u8]) -> impl Iterator<Item = u8> + '_ {
    b.iter().flat_map(|o| [o & 0x0F, o >> 4])
}

/// A semi-octet of an address (§9.1.2.3: 1010 `*`, 1011 `#`, 1100..1110 `a`..`c`).
fn bcd_char(d: u8) -> char {
    match d {
        0..=9 => char::from(b'0' + d),
        0xA => '*',
        0xB => '#',
        0xC => 'a',
        0xD => 'b',
        _ => 'c',
    }
}

/// TP-SCTS (§9.2.3.11): year, month, day, hour, minute, second, zone, each two swapped digits;
/// the zone in quarters of an hour, bit 3 of its first digit the sign.
fn scts(b: &[u8]) -> Result<String, String> {
    let mut f = [0u8; 6];
    for (i, o) in b.iter().take(6).enumerate() {
        let (tens, units) = (o & 0x0F, o >> 4);
        if tens > 9 || units > 9 {
            return Err(format!("TP-SCTS octet {} ({o:02X}) is not two decimal digits", i + 1));
        }
        f[i] = tens * 10 + units;
    }
    let z = b.get(6).copied().ok_or("TP-SCTS has no time zone")?;
    let (tens, units) = (z & 0x07, z >> 4);
    if units > 9 {
        return Err(format!("TP-SCTS time zone ({z:02X}) is not decimal"));
    }
    let quarters = u16::from(tens) * 10 + u16::from(units);
    let sign = if z & 0x08 != 0 { '-' } else { '+' };
    Ok(format!(
        "{:02}/{:02}/{:02} {:02}:{:02}:{:02}{sign}{:02}:{:02}",
        f[0],
        f[1],
        f[2],
        f[3],
        f[4],
        f[5],
        quarters / 4,
        quarters % 4 * 15
    ))
}

/// The user data header (§9.2.3.24): its concatenation element, if any, and its size in octets
/// with the UDHL octet. A concatenation element whose sequence is 0 or beyond the total is
/// ignored, as §9.2.3.24.1 says.
fn header(ud: &[u8]) -> Result<(Option<Part>, usize), String> {
    let udhl = usize::from(*ud.first().ok_or("TP-UDHI is set but TP-UD is empty")?);
    let ies = ud.get(1..=udhl).ok_or_else(|| format!("UDH length {udhl} runs past TP-UD ({} octets)", ud.len()))?;
    let mut part = None;
    let mut c = Cursor { b: ies, at: 0 };
    while !c.rest().is_empty() {
        let iei = c.octet("a UDH element identifier")?;
        let len = usize::from(c.octet("a UDH element length")?);
        let data = c.take(len, "a UDH element")?;
        let p = match (iei, data) {
            (0x00, &[r, total, sequence]) => Part { reference: u16::from(r), total, sequence },
            (0x08, &[r1, r2, total, sequence]) => Part { reference: u16::from_be_bytes([r1, r2]), total, sequence },
            (0x00 | 0x08, _) => return Err(format!("UDH concatenation element {iei:02X} has length {len}")),
            _ => continue,
        };
        if p.sequence >= 1 && p.sequence <= p.total {
            part = Some(p);
        }
    }
    Ok((part, udhl + 1))
}

/// Joins the parts of each concatenated message, by (sender, reference), in sequence order,
/// into one [`Deliver`] with `part: None` and the first part's timestamp. Messages that are not
/// parts pass through. A set with a part missing is left out of the result (the caller keeps the
/// parts and tries again when more arrive); a repeated sequence number counts once (the first).
/// The order is that of each message's, or set's, first appearance.
pub fn reassemble(parts: Vec<Deliver>) -> Vec<Deliver> {
    use std::collections::BTreeMap;
    enum Slot {
        Whole(Deliver),
        Set(String, u16),
    }
    let mut order = Vec::new();
    let mut sets: BTreeMap<(String, u16), (u8, BTreeMap<u8, Deliver>)> = BTreeMap::new();
    for d in parts {
        let Some(p) = d.part else {
            order.push(Slot::Whole(d));
            continue;
        };
        let key = (d.sender.clone(), p.reference);
        let entry = sets.entry(key).or_insert_with(|| {
            order.push(Slot::Set(d.sender.clone(), p.reference));
            (p.total, BTreeMap::new())
        });
        entry.1.entry(p.sequence).or_insert(d);
    }
    order
        .into_iter()
        .filter_map(|slot| match slot {
            Slot::Whole(d) => Some(d),
            Slot::Set(sender, reference) => {
                let (total, got) = sets.remove(&(sender, reference))?;
                if !(1..=total).all(|s| got.contains_key(&s)) {
                    return None;
                }
                let mut it = got.into_values().filter(|d| d.part.is_some_and(|p| p.sequence <= total));
                let mut whole = it.next()?;
                for d in it {
                    whole.text.push_str(&d.text);
                }
                whole.part = None;
                Some(whole)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every PDU below is written out field by field from TS 23.040 §9.2.2.1. Each was also
    // decoded with a third-party decoder, python-gsmmodem-new 0.13.0 (`gsmmodem.pdu.decodeSmsPdu`);
    // the sender, time, text and concatenation values it reported are the ones asserted.

    fn pdu(fields: &[&str]) -> String {
        fields.concat()
    }

    #[test]
    fn alphanumeric_sender_gsm7() {
        let hex = pdu(&[
            "00",                                             // SMSC information length 0: the modem's default SMSC
            "04",             // first octet: TP-MTI 00 (DELIVER), TP-MMS set, no TP-UDHI
            "0A",             // TP-OA length: 10 semi-octets (5 octets)
            "D0",             // type of address: alphanumeric (TON 101), NPI 0000
            "4D68711A04",     // "MPESA" as GSM 7-bit packed
            "00",             // TP-PID
            "00",             // TP-DCS: GSM 7-bit default alphabet
            "62402101510380", // TP-SCTS: 26/04/12 10:15:30, zone 08 quarters = +02:00
            "1A",             // TP-UDL: 26 septets
            "C3B7DB9C96B7CB6417683947C7603090BC3C2EA7ED6532", // "Confirmed. Ksh100 received"
        ]);
        let d = decode_deliver(&hex).unwrap();
        // gsmmodem: number 'MPESA', time 2026-04-12T10:15:30+02:00, text 'Confirmed. Ksh100 received'
        assert_eq!(d.sender, "MPESA");
        assert_eq!(d.timestamp, "26/04/12 10:15:30+02:00");
        assert_eq!(d.text, "Confirmed. Ksh100 received");
        assert_eq!(d.part, None);
    }

    #[test]
    fn international_sender_with_smsc() {
        let hex = pdu(&[
            "07",             // SMSC information length: 7 octets
            "91527220000092", // SMSC: international, +252702000029
            "04",             // first octet: DELIVER
            "0C",             // TP-OA length: 12 digits
            "91",             // type of address: international (TON 001), ISDN (NPI 0001)
            "527421436587",   // 254712345678, semi-octets swapped
            "00",             // TP-PID
            "00",             // TP-DCS: GSM 7-bit
            "62402101510321", // TP-SCTS: 26/04/12 10:15:30, zone 12 quarters = +03:00
            "05",             // TP-UDL: 5 septets
            "C8329BFD06",     // "Hello"
        ]);
        let d = decode_deliver(&hex).unwrap();
        // gsmmodem: number '+254712345678', time 2026-04-12T10:15:30+03:00, text 'Hello'
        assert_eq!(d.sender, "+254712345678");
        assert_eq!(d.timestamp, "26/04/12 10:15:30+03:00");
        assert_eq!(d.text, "Hello");
    }

    #[test]
    fn ucs2_national_sender_negative_zone() {
        let hex = pdu(&[
            "00",                               // no SMSC
            "04",                               // DELIVER
            "0A",                               // TP-OA length: 10 digits
            "81",                               // type of address: unknown TON, ISDN
            "0722123456",                       // 7022214365, semi-octets swapped
            "00",                               // TP-PID
            "08",                               // TP-DCS: UCS2
            "6240210151038A",                   // TP-SCTS: zone 8A: sign bit set, 28 quarters = -07:00
            "10",                               // TP-UDL: 16 octets
            "00480061006200610072006900202713", // "Habari ✓" in UTF-16BE
        ]);
        let d = decode_deliver(&hex).unwrap();
        // gsmmodem: number '7022214365', time 2026-04-12T10:15:30-07:00, text 'Habari ✓'
        assert_eq!(d.sender, "7022214365");
        assert_eq!(d.timestamp, "26/04/12 10:15:30-07:00");
        assert_eq!(d.text, "Habari \u{2713}");
    }

    fn concat_part(seq: &str, udl: &str, text: &str) -> String {
        pdu(&[
            "00",             // no SMSC
            "44",             // first octet: DELIVER, TP-MMS, TP-UDHI set
            "0A",             // TP-OA length: 10 semi-octets
            "D0",             // alphanumeric
            "4D68711A04",     // "MPESA"
            "00",             // TP-PID
            "00",             // TP-DCS: GSM 7-bit
            "62402101510380", // TP-SCTS: 26/04/12 10:15:30+02:00
            udl,              // TP-UDL in septets: 7 for the header and fill bit, then the text
            "05",             // UDHL: 5 octets
            "00",             // IEI 00: concatenated message, 8-bit reference
            "03",             // IE length 3
            "2A",             // reference 42
            "02",             // total 2
            seq,              // sequence
            text,             // text, packed after 1 fill bit (6 header octets = 48 bits -> 49)
        ])
    }

    #[test]
    fn two_part_gsm7_reassembled() {
        let p1 = decode_deliver(&concat_part("01", "11", "A061391DF476975920")).unwrap();
        let p2 = decode_deliver(&concat_part("02", "10", "E061391D44BFBF5D")).unwrap();
        // gsmmodem: 'Part one, ' with Concatenation(reference 42, parts 2, number 1), 'part two.' (42, 2, 2)
        assert_eq!(p1.text, "Part one, ");
        assert_eq!(p1.part, Some(Part { reference: 42, total: 2, sequence: 1 }));
        assert_eq!(p2.text, "part two.");
        assert_eq!(p2.part, Some(Part { reference: 42, total: 2, sequence: 2 }));
        let whole = reassemble(vec![p2.clone(), p1.clone()]);
        assert_eq!(whole.len(), 1);
        assert_eq!(whole[0].text, "Part one, part two.");
        assert_eq!(whole[0].sender, "MPESA");
        assert_eq!(whole[0].part, None);
        // An incomplete set is left out; a message that is not a part passes through.
        let single = Deliver { part: None, ..p1.clone() };
        assert_eq!(reassemble(vec![p2, single.clone()]), vec![single]);
    }

    #[test]
    fn sixteen_bit_reference() {
        let ud = "0608040102020100"; // UDHL 6, IEI 08, length 4, reference 0x0102, total 2, seq 1
        let hex = pdu(&["00", "44", "0A", "D0", "4D68711A04", "00", "04", "62402101510380", "08", ud]);
        let d = decode_deliver(&hex).unwrap();
        assert_eq!(d.part, Some(Part { reference: 0x0102, total: 2, sequence: 1 }));
        assert_eq!(d.text, "00"); // 8-bit data after the header, as hex
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(decode_deliver("").is_err());
        assert!(decode_deliver("0G").is_err());
        assert!(decode_deliver("0001").unwrap_err().contains("TP-MTI"));
        assert!(decode_deliver("0004").unwrap_err().contains("TP-OA"));
        // TP-UDL 26 with no user data.
        assert!(decode_deliver("00040AD04D68711A0400006240210151038026").unwrap_err().contains("TP-UDL"));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_hex_never_panics(b in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = decode_deliver(&codec::to_hex(&b));
        }

        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,80}") {
            let _ = decode_deliver(&s);
        }
    }
}
