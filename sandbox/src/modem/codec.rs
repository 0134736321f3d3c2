//! How `+CUSD` strings are written on the AT line, per modem family and `+CSCS` (TS 27.007 §5.5,
//! §7.15; TS 23.038 §5 for the DCS values 15 = GSM 7-bit, language unspecified, and 72 = UCS2).

use super::{Profile, gsm};

/// The TE character set (`AT+CSCS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    Gsm,
    Ira,
    Ucs2,
}

impl Charset {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "GSM" => Some(Charset::Gsm),
            "IRA" => Some(Charset::Ira),
            "UCS2" => Some(Charset::Ucs2),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Charset::Gsm => "GSM",
            Charset::Ira => "IRA",
            Charset::Ucs2 => "UCS2",
        }
    }
}

/// DCS of GSM 7-bit text.
pub const DCS_GSM7: u8 = 15;
/// DCS of UCS2 text.
pub const DCS_UCS2: u8 = 72;

/// The text of a `<str>` the terminal sent with `AT+CUSD=1,<str>,<dcs>`, or `None` if it is not
/// what this modem takes. Huawei firmwares take the GSM 7-bit string packed, as hex; the text
/// families take it in the `+CSCS` character set (UCS2 as hex).
pub fn decode_ussd(profile: Profile, charset: Charset, s: &str, dcs: u8) -> Option<String> {
    match (profile, dcs) {
        (_, DCS_UCS2) => gsm::from_ucs2_hex(s),
        (Profile::Huawei, DCS_GSM7) => gsm::unhex(s).map(|o| gsm::unpack_ussd(&o)),
        (_, DCS_GSM7) if charset == Charset::Ucs2 => gsm::from_ucs2_hex(s),
        (_, DCS_GSM7) => Some(s.to_owned()),
        _ => None,
    }
}

/// The `<str>` and `<dcs>` of a network string as this modem shows it in `+CUSD`: UCS2 hex with
/// DCS 72 when the text is outside the GSM alphabet or the TE asked for UCS2; otherwise packed
/// hex (Huawei) or plain text (Quectel, SIMCom) with DCS 15.
pub fn encode_ussd(profile: Profile, charset: Charset, text: &str) -> (String, u8) {
    let packed = gsm::pack_ussd(text);
    match (profile, packed) {
        (_, None) => (gsm::ucs2_hex(text), DCS_UCS2),
        (_, Some(_)) if charset == Charset::Ucs2 => (gsm::ucs2_hex(text), DCS_UCS2),
        (Profile::Huawei, Some(octets)) => (gsm::hex(&octets), DCS_GSM7),
        (_, Some(_)) => (text.to_owned(), DCS_GSM7),
    }
}
