//! One line a modem sends, classified (3GPP TS 27.007, TS 27.005, ITU-T V.250 §5.7).
//!
//! Pure and borrowing: it never allocates, never panics, and anything it does not know is
//! [`Line::Other`]. A `+CUSD` string is kept raw (quotes stripped); [`super::codec`] decodes it.

/// The text of a `+CME ERROR` / `+CMS ERROR`: numeric (`AT+CMEE=1`) or verbose (`AT+CMEE=2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrCode<'a> {
    Num(u16),
    Text(&'a str),
}

/// `+CUSD: <m>[,<str>[,<dcs>]]` (TS 27.007 §7.15).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cusd<'a> {
    pub m: u8,
    /// The string as sent, quotes stripped (some modems send it unquoted).
    pub text: Option<&'a str>,
    pub dcs: Option<u8>,
}

/// A classified line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line<'a> {
    /// Final results (V.250 §5.7.1, TS 27.007 §9.2).
    Ok,
    Error,
    CmeError(ErrCode<'a>),
    CmsError(ErrCode<'a>),
    NoCarrier,
    /// Unsolicited or intermediate results.
    Cusd(Cusd<'a>),
    /// `+CMTI: "<mem>",<index>` (TS 27.005 §3.4.1).
    Cmti {
        mem: &'a str,
        index: u32,
    },
    /// A `+CMGR:` or `+CMGL:` header; its fields, unparsed (TS 27.005 §3.4.3, §3.4.2).
    Cmgr(&'a str),
    Cmgl(&'a str),
    /// `+CSQ: <rssi>,<ber>` (TS 27.007 §8.5).
    Csq {
        rssi: u8,
        ber: u8,
    },
    /// `+CESQ: <rxlev>,<ber>,<rscp>,<ecno>,<rsrq>,<rsrp>` (TS 27.007 §8.69).
    Cesq([u8; 6]),
    /// `+CREG:` / `+CEREG:` `[<n>,]<stat>[,...]` (TS 27.007 §7.2, §10.1.22); `eps` for `+CEREG`.
    Reg {
        eps: bool,
        stat: u8,
    },
    /// `+COPS: <mode>[,<format>,"<oper>"[,<AcT>]]` (TS 27.007 §7.3).
    Cops {
        mode: u8,
        oper: Option<&'a str>,
        act: Option<u8>,
    },
    /// `+CPIN: <code>` (TS 27.007 §8.3), e.g. `READY`, `SIM PIN`.
    Cpin(&'a str),
    /// The modem echoing a command (`AT...`), before `ATE0` takes effect.
    Echo(&'a str),
    Other(&'a str),
}

/// Classifies one line (without its CR/LF).
pub fn parse(raw: &str) -> Line<'_> {
    let line = raw.trim_matches(['\r', '\n', ' ']);
    match line {
        "OK" => return Line::Ok,
        "ERROR" => return Line::Error,
        "NO CARRIER" => return Line::NoCarrier,
        _ => {}
    }
    if line.len() >= 2 && line.as_bytes()[..2].eq_ignore_ascii_case(b"AT") {
        return Line::Echo(line);
    }
    let Some((name, rest)) = line.split_once(':') else { return Line::Other(line) };
    let rest = rest.trim_start();
    let parsed = match name {
        "+CME ERROR" => Some(Line::CmeError(err_code(rest))),
        "+CMS ERROR" => Some(Line::CmsError(err_code(rest))),
        "+CUSD" => cusd(rest).map(Line::Cusd),
        "+CMTI" => cmti(rest),
        "+CMGR" => Some(Line::Cmgr(rest)),
        "+CMGL" => Some(Line::Cmgl(rest)),
        "+CSQ" => csq(rest),
        "+CESQ" => cesq(rest),
        "+CREG" => reg(rest, false),
        "+CEREG" => reg(rest, true),
        "+COPS" => cops(rest),
        "+CPIN" => Some(Line::Cpin(rest.trim())),
        _ => None,
    };
    parsed.unwrap_or(Line::Other(line))
}

fn err_code(rest: &str) -> ErrCode<'_> {
    let t = rest.trim();
    t.parse().map_or(ErrCode::Text(t), ErrCode::Num)
}

fn num<T: std::str::FromStr>(s: &str) -> Option<T> {
    s.trim().parse().ok()
}

fn unquote(s: &str) -> &str {
    let t = s.trim();
    t.strip_prefix('"').map_or(t, |x| x.strip_suffix('"').unwrap_or(x))
}

/// `<m>[,<str>[,<dcs>]]`; the string may be quoted (and then hold commas) or not.
fn cusd(rest: &str) -> Option<Cusd<'_>> {
    let (m, tail) = match rest.split_once(',') {
        Some((m, t)) => (num::<u8>(m)?, Some(t)),
        None => (num::<u8>(rest)?, None),
    };
    if m > 5 {
        return None;
    }
    let Some(tail) = tail else { return Some(Cusd { m, text: None, dcs: None }) };
    let t = tail.trim_start();
    let (text, after) = if let Some(q) = t.strip_prefix('"') {
        match q.rfind('"') {
            Some(end) => (&q[..end], q[end + 1..].trim_start()),
            // An unterminated string: everything is the text.
            None => (q, ""),
        }
    } else {
        // Unquoted: a trailing `,<digits>` is the dcs.
        match t.rsplit_once(',') {
            Some((s, d)) if !d.trim().is_empty() && d.trim().bytes().all(|b| b.is_ascii_digit()) => (s, d),
            _ => (t, ""),
        }
    };
    let after = after.strip_prefix(',').unwrap_or(after);
    let dcs = if after.trim().is_empty() { None } else { num::<u8>(after) };
    Some(Cusd { m, text: Some(text), dcs })
}

fn cmti(rest: &str) -> Option<Line<'_>> {
    let (mem, index) = rest.split_once(',')?;
    Some(Line::Cmti { mem: unquote(mem), index: num(index)? })
}

fn csq(rest: &str) -> Option<Line<'_>> {
    let (r, b) = rest.split_once(',')?;
    Some(Line::Csq { rssi: num(r)?, ber: num(b)? })
}

fn cesq(rest: &str) -> Option<Line<'_>> {
    let mut out = [0u8; 6];
    let mut it = rest.split(',');
    for slot in &mut out {
        *slot = num(it.next()?)?;
    }
    it.next().is_none().then_some(Line::Cesq(out))
}

/// `+CREG: <n>,<stat>[,...]` answers a read; `+CREG: <stat>[,...]` is unsolicited. A quoted second
/// field (`<lac>`) tells the unsolicited long form apart.
fn reg(rest: &str, eps: bool) -> Option<Line<'_>> {
    let fields: [Option<&str>; 2] = {
        let mut it = rest.split(',');
        [it.next(), it.next()]
    };
    let stat = match fields {
        [Some(_), Some(s)] if !s.trim_start().starts_with('"') => num(s)?,
        [Some(s), _] => num(s)?,
        _ => return None,
    };
    Some(Line::Reg { eps, stat })
}

fn cops(rest: &str) -> Option<Line<'_>> {
    let (mode, tail) = match rest.split_once(',') {
        Some((m, t)) => (num(m)?, Some(t)),
        None => (num(rest)?, None),
    };
    let Some(tail) = tail else { return Some(Line::Cops { mode, oper: None, act: None }) };
    let (_format, t) = tail.split_once(',')?;
    let t = t.trim_start();
    let (oper, after) = match t.strip_prefix('"') {
        Some(q) => {
            let end = q.find('"')?;
            (&q[..end], &q[end + 1..])
        }
        None => t.split_once(',').map_or((t, ""), |(o, a)| (o, a)),
    };
    let act = after.trim_start_matches([',', ' ']);
    Some(Line::Cops { mode, oper: Some(oper), act: if act.is_empty() { None } else { num(act) } })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finals() {
        assert_eq!(parse("OK"), Line::Ok);
        assert_eq!(parse("ERROR\r"), Line::Error);
        assert_eq!(parse("NO CARRIER"), Line::NoCarrier);
        assert_eq!(parse("+CME ERROR: 30"), Line::CmeError(ErrCode::Num(30)));
        assert_eq!(parse("+CME ERROR: SIM not inserted"), Line::CmeError(ErrCode::Text("SIM not inserted")));
        assert_eq!(parse("+CMS ERROR: 321"), Line::CmsError(ErrCode::Num(321)));
        assert_eq!(parse("AT+CUSD=1,\"*144#\",15"), Line::Echo("AT+CUSD=1,\"*144#\",15"));
    }

    #[test]
    fn cusd_variants() {
        // Quectel/SIMCom: IRA text, quoted, with commas inside.
        assert_eq!(
            parse("+CUSD: 1,\"Welcome, choose:\n1. Balance\",15"),
            Line::Cusd(Cusd { m: 1, text: Some("Welcome, choose:\n1. Balance"), dcs: Some(15) })
        );
        // Huawei: GSM 7-bit packed, as hex.
        assert_eq!(
            parse("+CUSD: 0,\"C8329BFD06\",15"),
            Line::Cusd(Cusd { m: 0, text: Some("C8329BFD06"), dcs: Some(15) })
        );
        // UCS2 as hex, dcs 72.
        assert_eq!(parse("+CUSD: 1,\"00480069\",72"), Line::Cusd(Cusd { m: 1, text: Some("00480069"), dcs: Some(72) }));
        // Unquoted string, with and without dcs.
        assert_eq!(
            parse("+CUSD: 1,Balance 100,15"),
            Line::Cusd(Cusd { m: 1, text: Some("Balance 100"), dcs: Some(15) })
        );
        assert_eq!(parse("+CUSD: 0,Bye"), Line::Cusd(Cusd { m: 0, text: Some("Bye"), dcs: None }));
        // The extra release and the network's timeout carry no string.
        assert_eq!(parse("+CUSD: 2"), Line::Cusd(Cusd { m: 2, text: None, dcs: None }));
        assert_eq!(parse("+CUSD: 5"), Line::Cusd(Cusd { m: 5, text: None, dcs: None }));
        assert!(matches!(parse("+CUSD: 9"), Line::Other(_)));
    }

    #[test]
    fn sms_and_radio() {
        assert_eq!(parse("+CMTI: \"SM\",3"), Line::Cmti { mem: "SM", index: 3 });
        assert_eq!(
            parse("+CMGR: \"REC UNREAD\",\"MPESA\",,\"26/12/04,01:00:00+12\""),
            Line::Cmgr("\"REC UNREAD\",\"MPESA\",,\"26/12/04,01:00:00+12\"")
        );
        assert_eq!(parse("+CSQ: 17,99"), Line::Csq { rssi: 17, ber: 99 });
        assert_eq!(parse("+CESQ: 99,99,255,255,20,45"), Line::Cesq([99, 99, 255, 255, 20, 45]));
        assert_eq!(parse("+CREG: 0,1"), Line::Reg { eps: false, stat: 1 });
        assert_eq!(parse("+CREG: 5"), Line::Reg { eps: false, stat: 5 });
        assert_eq!(parse("+CEREG: 2,\"1A2B\",\"01C3F0A\",7"), Line::Reg { eps: true, stat: 2 });
        assert_eq!(parse("+COPS: 0,0,\"Safaricom\",7"), Line::Cops { mode: 0, oper: Some("Safaricom"), act: Some(7) });
        assert_eq!(parse("+COPS: 0"), Line::Cops { mode: 0, oper: None, act: None });
        assert_eq!(parse("+CPIN: SIM PIN"), Line::Cpin("SIM PIN"));
        assert_eq!(parse("RING"), Line::Other("RING"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = parse(&s);
        }

        #[test]
        fn never_panics_on_prefixes(tail in "[0-9,\" A-Za-z]{0,40}", i in 0usize..12) {
            let names = ["+CUSD: ", "+CMTI: ", "+CSQ: ", "+CESQ: ", "+CREG: ", "+CEREG: ", "+COPS: ", "+CPIN: ",
                "+CME ERROR: ", "+CMS ERROR: ", "+CMGR: ", "AT"];
            let _ = parse(&format!("{}{tail}", names[i]));
        }
    }
}
