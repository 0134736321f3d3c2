//! The SIM's message storage (`"SM"`) and the TS 27.005 commands on it: `+CMGF` (text or PDU
//! mode), `+CNMI` (whether `+CMTI` is sent), `+CPMS`, `+CMGR`, `+CMGL`, `+CMGD`. In PDU mode a
//! message is an SMS-DELIVER TPDU (TS 23.040 §9.2.2.1); a long text is split into concatenated
//! parts with the 8-bit reference information element (§9.2.3.24.1), each part stored on its own
//! index as real SIMs store them.

use super::{
    at::{Arg, AtError, split_outside_quotes, unquote},
    codec::Charset,
    gsm,
    smsc::Sms,
};

/// Messages a SIM holds (many SIMs hold 20–50).
pub const SIM_CAPACITY: usize = 30;
/// The service centre address put in PDUs (and `+CSCA?`).
pub const SMSC: &str = "+256772000000";

#[derive(Debug, Clone)]
struct Stored {
    from: String,
    text: String,
    scts: chrono::DateTime<chrono::FixedOffset>,
    /// (reference, total, sequence) of a concatenated part.
    part: Option<(u8, u8, u8)>,
    read: bool,
}

/// Messages on the SIM and the SMS settings of the AT interface.
#[derive(Debug, Default)]
pub struct SimStorage {
    slots: Vec<Option<Stored>>,
    pdu_mode: bool,
    cnmi_mt: u8,
    next_ref: u8,
}

const CMS_INVALID_INDEX: u16 = 321;
const CMS_INVALID_TEXT_PARAM: u16 = 305;

impl SimStorage {
    pub fn reset_settings(&mut self) {
        self.pdu_mode = false;
        self.cnmi_mt = 0;
    }

    /// The `+CMTI` line for a new message, if `+CNMI` asked for indications (`<mt>` 1).
    pub fn indication(&self, index: usize) -> Option<String> {
        (self.cnmi_mt == 1).then(|| format!("+CMTI: \"SM\",{index}"))
    }

    /// Stores a delivered message (split into parts if long): the indexes used, or none when full.
    pub fn deliver(&mut self, sms: &Sms) -> Vec<usize> {
        let parts = split(&sms.text);
        let total = parts.len();
        let reference = self.next_ref;
        self.next_ref = self.next_ref.wrapping_add(1);
        let mut indexes = Vec::new();
        for (i, text) in parts.into_iter().enumerate() {
            let stored = Stored {
                from: sms.from.clone(),
                text,
                scts: sms.scts,
                part: (total > 1).then_some((reference, total as u8, i as u8 + 1)),
                read: false,
            };
            let free = self.slots.iter().position(Option::is_none);
            let index = match free {
                Some(i) => i,
                None if self.slots.len() < SIM_CAPACITY => {
                    self.slots.push(None);
                    self.slots.len() - 1
                }
                None => {
                    tracing::warn!("modem SIM storage full: message dropped");
                    break;
                }
            };
            self.slots[index] = Some(stored);
            indexes.push(index + 1);
        }
        indexes
    }

    /// One SMS command (already past the SIM check).
    pub fn command(&mut self, name: &str, arg: Arg<'_>, charset: Charset) -> Result<Vec<String>, AtError> {
        let used = self.slots.iter().filter(|s| s.is_some()).count();
        match (name, arg) {
            ("+CMGF", Arg::Set(v)) => {
                self.pdu_mode = match v.trim() {
                    "0" => true,
                    "1" => false,
                    _ => return Err(AtError::Cms(CMS_INVALID_TEXT_PARAM)),
                };
                Ok(Vec::new())
            }
            ("+CMGF", Arg::Query) => Ok(vec![format!("+CMGF: {}", u8::from(!self.pdu_mode))]),
            ("+CMGF", Arg::Test) => Ok(vec!["+CMGF: (0,1)".to_owned()]),
            ("+CNMI", Arg::Set(v)) => {
                let args = split_outside_quotes(v, ',');
                self.cnmi_mt = args.get(1).and_then(|a| a.trim().parse().ok()).unwrap_or(0);
                Ok(Vec::new())
            }
            ("+CNMI", Arg::Query) => Ok(vec![format!("+CNMI: 2,{},0,0,0", self.cnmi_mt)]),
            ("+CPMS", Arg::Set(_)) => {
                Ok(vec![format!("+CPMS: {used},{SIM_CAPACITY},{used},{SIM_CAPACITY},{used},{SIM_CAPACITY}")])
            }
            ("+CPMS", Arg::Test) => Ok(vec!["+CPMS: (\"SM\"),(\"SM\"),(\"SM\")".to_owned()]),
            ("+CPMS", Arg::Query) => Ok(vec![format!(
                "+CPMS: \"SM\",{used},{SIM_CAPACITY},\"SM\",{used},{SIM_CAPACITY},\"SM\",{used},{SIM_CAPACITY}"
            )]),
            ("+CSMS" | "+CSDH", Arg::Set(_)) => Ok(Vec::new()),
            ("+CSMS", Arg::Query) => Ok(vec!["+CSMS: 0,1,1,1".to_owned()]),
            ("+CMGR", Arg::Set(v)) => {
                let index: usize = v.trim().parse().map_err(|_| AtError::Cms(CMS_INVALID_INDEX))?;
                let lines = self.read(index, charset).ok_or(AtError::Cms(CMS_INVALID_INDEX))?;
                Ok(lines)
            }
            ("+CMGL", arg) => self.list(arg, charset),
            ("+CMGD", Arg::Set(v)) => {
                let args = split_outside_quotes(v, ',');
                let index: usize = args[0].trim().parse().map_err(|_| AtError::Cms(CMS_INVALID_INDEX))?;
                let flag: u8 = args.get(1).and_then(|f| f.trim().parse().ok()).unwrap_or(0);
                match flag {
                    0 => {
                        let slot = index.checked_sub(1).and_then(|i| self.slots.get_mut(i));
                        match slot {
                            Some(slot) => *slot = None,
                            None => return Err(AtError::Cms(CMS_INVALID_INDEX)),
                        }
                    }
                    1 => self.slots.iter_mut().filter(|s| s.as_ref().is_some_and(|s| s.read)).for_each(|s| *s = None),
                    _ => self.slots.iter_mut().for_each(|s| *s = None),
                }
                Ok(Vec::new())
            }
            _ => Err(AtError::Error),
        }
    }

    fn read(&mut self, index: usize, charset: Charset) -> Option<Vec<String>> {
        let pdu_mode = self.pdu_mode;
        let stored = self.slots.get_mut(index.checked_sub(1)?)?.as_mut()?;
        let lines = render(stored, pdu_mode, charset, None);
        stored.read = true;
        Some(lines)
    }

    fn list(&mut self, arg: Arg<'_>, charset: Charset) -> Result<Vec<String>, AtError> {
        let filter = match arg {
            Arg::Set(v) => unquote(v.trim()).to_ascii_uppercase(),
            Arg::None => {
                if self.pdu_mode {
                    "0".to_owned()
                } else {
                    "REC UNREAD".to_owned()
                }
            }
            _ => return Ok(vec!["+CMGL: (\"REC UNREAD\",\"REC READ\",\"ALL\")".to_owned()]),
        };
        let want = |read: bool| match filter.as_str() {
            "ALL" | "4" => true,
            "REC UNREAD" | "0" => !read,
            "REC READ" | "1" => read,
            _ => false,
        };
        if !matches!(
            filter.as_str(),
            "ALL" | "4" | "REC UNREAD" | "0" | "REC READ" | "1" | "STO UNSENT" | "2" | "STO SENT" | "3"
        ) {
            return Err(AtError::Cms(CMS_INVALID_TEXT_PARAM));
        }
        let pdu_mode = self.pdu_mode;
        let mut lines = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if let Some(stored) = slot.as_mut().filter(|s| want(s.read)) {
                lines.extend(render(stored, pdu_mode, charset, Some(i + 1)));
                stored.read = true;
            }
        }
        Ok(lines)
    }
}

/// The `+CMGR`/`+CMGL` lines of one message (`listed`: its index, for `+CMGL`).
fn render(s: &Stored, pdu_mode: bool, charset: Charset, listed: Option<usize>) -> Vec<String> {
    let stat_text = if s.read { "REC READ" } else { "REC UNREAD" };
    if pdu_mode {
        let pdu = deliver_pdu(s);
        let tpdu_len = pdu.len() / 2 - smsc_octets();
        let head = match listed {
            Some(i) => format!("+CMGL: {i},{},,{tpdu_len}", u8::from(s.read)),
            None => format!("+CMGR: {},,{tpdu_len}", u8::from(s.read)),
        };
        vec![head, pdu]
    } else {
        let scts = s.scts.format("%y/%m/%d,%H:%M:%S").to_string();
        let quarter_hours = s.scts.offset().local_minus_utc() / 900;
        let (oa, text) = match charset {
            Charset::Ucs2 => (gsm::ucs2_hex(&s.from), gsm::ucs2_hex(&s.text)),
            _ => (s.from.clone(), s.text.clone()),
        };
        let head = match listed {
            Some(i) => format!("+CMGL: {i},\"{stat_text}\",\"{oa}\",,\"{scts}{quarter_hours:+03}\""),
            None => format!("+CMGR: \"{stat_text}\",\"{oa}\",,\"{scts}{quarter_hours:+03}\""),
        };
        vec![head, text]
    }
}

/// Septets (GSM 7-bit) or UTF-16 units per part: one message, or parts leaving room for the UDH.
fn split(text: &str) -> Vec<String> {
    let (single, part) = if gsm::is_gsm7(text) { (160, 153) } else { (70, 67) };
    let cost = |c: char| {
        if gsm::is_gsm7(text) { gsm::to_septets(&c.to_string()).map_or(1, |s| s.len()) } else { c.len_utf16() }
    };
    let total: usize = text.chars().map(cost).sum();
    if total <= single {
        return vec![text.to_owned()];
    }
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut used = 0;
    for c in text.chars() {
        if used + cost(c) > part {
            parts.push(std::mem::take(&mut current));
            used = 0;
        }
        used += cost(c);
        current.push(c);
    }
    parts.push(current);
    parts
}

fn smsc_octets() -> usize {
    1 + 1 + SMSC.trim_start_matches('+').len().div_ceil(2)
}

/// Semi-octet (swapped nibble) digits, padded with F (TS 23.040 §9.1.2.3).
fn semi_octets(digits: &str) -> String {
    let mut d: Vec<char> = digits.chars().collect();
    if d.len() % 2 == 1 {
        d.push('F');
    }
    d.chunks(2).map(|p| format!("{}{}", p[1], p[0])).collect()
}

/// An address field (§9.1.2.5): international digits, or alphanumeric (TON 5) in packed GSM 7-bit.
fn address(addr: &str) -> String {
    if let Some(digits) = addr.strip_prefix('+') {
        format!("{:02X}91{}", digits.len(), semi_octets(digits))
    } else {
        let septets = gsm::to_septets(addr).unwrap_or_default();
        let packed = gsm::pack(&septets, 0);
        // The length counts the useful semi-octets of the packed septets.
        format!("{:02X}D0{}", (septets.len() * 7).div_ceil(4), gsm::hex(&packed))
    }
}

/// The TP-SCTS: year to second in semi-octets and the zone in quarter hours (§9.2.3.11).
fn scts(t: &chrono::DateTime<chrono::FixedOffset>) -> String {
    let q = t.offset().local_minus_utc() / 900;
    let fields = t.format("%y%m%d%H%M%S").to_string();
    let zone = format!("{:02}", q.abs());
    let mut zone_octet = semi_octets(&zone);
    if q < 0 {
        // The sign is bit 3 of the first (swapped) semi-octet.
        let v = u8::from_str_radix(&zone_octet, 16).unwrap_or(0) | 0x08;
        zone_octet = format!("{v:02X}");
    }
    format!("{}{zone_octet}", semi_octets(&fields))
}

/// The SMS-DELIVER PDU of one stored message, with the SMSC address in front (as `+CMGR` shows).
fn deliver_pdu(s: &Stored) -> String {
    let smsc_digits = SMSC.trim_start_matches('+');
    let smsc = format!("{:02X}91{}", 1 + smsc_digits.len().div_ceil(2), semi_octets(smsc_digits));
    let udh = s.part.map(|(r, total, seq)| vec![0x05, 0x00, 0x03, r, total, seq]);
    // TP-MTI 00 (deliver), TP-MMS set (no more messages), TP-UDHI when there is a header.
    let first = 0x04 | if udh.is_some() { 0x40 } else { 0 };
    let (dcs, udl, ud) = match gsm::to_septets(&s.text) {
        Some(septets) => {
            let (header, shift, header_septets) = match &udh {
                Some(h) => (h.clone(), 1, 7),
                None => (Vec::new(), 0, 0),
            };
            let mut ud = header;
            ud.extend(gsm::pack(&septets, shift));
            (0x00, header_septets + septets.len(), ud)
        }
        None => {
            let mut ud = udh.clone().unwrap_or_default();
            ud.extend(s.text.encode_utf16().flat_map(u16::to_be_bytes));
            (0x08, ud.len(), ud)
        }
    };
    format!("{smsc}{first:02X}{}00{dcs:02X}{}{udl:02X}{}", address(&s.from), scts(&s.scts), gsm::hex(&ud))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_time_stamps() {
        assert_eq!(address("+254712345678"), "0C91527421436587");
        // "MPESA": 5 septets = 35 bits = 9 semi-octets.
        assert_eq!(&address("MPESA")[..4], "09D0");
        let t = chrono::DateTime::parse_from_rfc3339("2026-12-04T09:05:07+03:00").unwrap();
        assert_eq!(scts(&t), "62214090507021");
    }

    #[test]
    fn long_texts_split_into_parts() {
        assert_eq!(split(&"a".repeat(160)).len(), 1);
        let parts = split(&"a".repeat(161));
        assert_eq!(parts.iter().map(String::len).collect::<Vec<_>>(), [153, 8]);
        assert_eq!(split(&"✓".repeat(71)).len(), 2);
    }
}
