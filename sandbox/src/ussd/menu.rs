//! The "Savanna Pay" menu: a pure function from the inputs so far to the next screen. The three
//! gateway dialects share it; only their envelopes differ.
//!
//! ```text
//! ""            → CON Savanna Pay / 1. My balance / 2. Send money / 3. Buy airtime / 4. Lipa na M-Pesa
//! 1             → END Your M-Pesa balance is KES 1,250.00
//! 2 → phone → amount → PIN   → END Sent KES <amount> to <masked phone>. Ref <ref>
//! 3 → amount                 → END You bought KES <amount> of airtime.
//! 4 → till → amount → PIN    → END Paid KES <amount> to till <till>. Ref <ref>
//! ```

use crate::mask::mask_phone;

/// The service code the sandbox advertises (any code is accepted).
pub const SERVICE_CODE: &str = "*384*7#";
/// The most characters one GSM-7 USSD screen can carry (160 octets × 8 / 7).
pub const MAX_SCREEN_CHARS: usize = 182;
/// Largest amount the app accepts, in KES (the M-Pesa single-transaction cap it models).
pub const MAX_AMOUNT_KES: u32 = 150_000;

const MAIN_MENU: &str = "Savanna Pay\n1. My balance\n2. Send money\n3. Buy airtime\n4. Lipa na M-Pesa";
const BALANCE: &str = "Your M-Pesa balance is KES 1,250.00";
const ENTER_PHONE: &str = "Enter phone number";
const ENTER_AMOUNT: &str = "Enter amount (KES)";
const ENTER_TILL: &str = "Enter till number";
const WRONG_PIN: &str = "Wrong PIN. Transaction cancelled.";
const INVALID_CHOICE: &str = "Invalid choice";
const INVALID_PHONE: &str = "Invalid phone number";
const INVALID_AMOUNT: &str = "Invalid amount";
const INVALID_TILL: &str = "Invalid till number";

/// One screen: either a menu that waits for input, or a final message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screen {
    /// `CON`: show the text and wait for the user's input.
    Continue(String),
    /// `END`: show the text and end the session.
    End(String),
}

impl Screen {
    /// The text the user sees (no `CON `/`END ` prefix).
    pub fn text(&self) -> &str {
        match self {
            Screen::Continue(t) | Screen::End(t) => t,
        }
    }

    pub fn is_end(&self) -> bool {
        matches!(self, Screen::End(_))
    }

    /// The Africa's Talking body: `CON <text>` or `END <text>`.
    pub fn to_africastalking(&self) -> String {
        match self {
            Screen::Continue(t) => format!("CON {t}"),
            Screen::End(t) => format!("END {t}"),
        }
    }
}

fn con(text: impl Into<String>) -> Screen {
    Screen::Continue(text.into())
}

fn end(text: impl Into<String>) -> Screen {
    Screen::End(text.into())
}

/// The menu engine. Holds the PIN it checks; `Debug` does not show it.
#[derive(Clone)]
pub struct Menu {
    pin: String,
}

impl std::fmt::Debug for Menu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Menu").field("pin", &"<redacted>").finish()
    }
}

/// The inputs a direct dial carries: `*384*7*1#` is the service code `*384*7#` followed by the
/// input `1`, as networks pass "dial-through" strings to the app. A dial of the bare code, or of
/// another code, carries none.
pub fn direct_dial_inputs(dial: &str) -> Vec<String> {
    let prefix = SERVICE_CODE.trim_end_matches('#');
    match dial.trim().strip_prefix(prefix).and_then(|rest| rest.strip_prefix('*')) {
        Some(rest) => rest.trim_end_matches('#').split('*').filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        None => Vec::new(),
    }
}

impl Menu {
    pub fn new(pin: impl Into<String>) -> Self {
        Self { pin: pin.into() }
    }

    /// The screen after `inputs` (every input so far, oldest first; empty on the first hit).
    /// `reference` makes a transaction reference when a payment completes.
    pub fn screen<S: AsRef<str>>(&self, inputs: &[S], reference: &mut dyn FnMut() -> String) -> Screen {
        let inputs: Vec<&str> = inputs.iter().map(|s| s.as_ref().trim()).collect();
        match inputs.as_slice() {
            [] => con(MAIN_MENU),
            ["1"] => end(BALANCE),
            ["2"] => con(ENTER_PHONE),
            ["2", phone, rest @ ..] => self.send_money(phone, rest, reference),
            ["3"] => con(ENTER_AMOUNT),
            ["3", amount] => match parse_amount(amount) {
                Some(amount) => end(format!("You bought KES {amount} of airtime.")),
                None => end(INVALID_AMOUNT),
            },
            ["4"] => con(ENTER_TILL),
            ["4", till, rest @ ..] => self.lipa_na_mpesa(till, rest, reference),
            _ => end(INVALID_CHOICE),
        }
    }

    fn send_money(&self, phone: &str, rest: &[&str], reference: &mut dyn FnMut() -> String) -> Screen {
        if !valid_phone(phone) {
            return end(INVALID_PHONE);
        }
        let masked = mask_phone(phone);
        let Some((amount, rest)) = rest.split_first() else { return con(ENTER_AMOUNT) };
        let Some(amount) = parse_amount(amount) else { return end(INVALID_AMOUNT) };
        match rest {
            [] => con(format!("Send KES {amount} to {masked}?\nEnter PIN to confirm")),
            [pin] if *pin == self.pin => end(format!("Sent KES {amount} to {masked}. Ref {}", reference())),
            [_] => end(WRONG_PIN),
            _ => end(INVALID_CHOICE),
        }
    }

    fn lipa_na_mpesa(&self, till: &str, rest: &[&str], reference: &mut dyn FnMut() -> String) -> Screen {
        if !valid_till(till) {
            return end(INVALID_TILL);
        }
        let Some((amount, rest)) = rest.split_first() else { return con(ENTER_AMOUNT) };
        let Some(amount) = parse_amount(amount) else { return end(INVALID_AMOUNT) };
        match rest {
            [] => con(format!("Pay KES {amount} to till {till}?\nEnter PIN to confirm")),
            [pin] if *pin == self.pin => end(format!("Paid KES {amount} to till {till}. Ref {}", reference())),
            [_] => end(WRONG_PIN),
            _ => end(INVALID_CHOICE),
        }
    }
}

/// 10 digits starting with 0 (`0712345678`) or 12 starting with 254 (`254712345678`).
pub fn valid_phone(phone: &str) -> bool {
    let digits = phone.chars().all(|c| c.is_ascii_digit());
    digits && ((phone.len() == 10 && phone.starts_with('0')) || (phone.len() == 12 && phone.starts_with("254")))
}

/// A till (Buy Goods) number: 5 to 7 digits.
pub fn valid_till(till: &str) -> bool {
    (5..=7).contains(&till.len()) && till.chars().all(|c| c.is_ascii_digit())
}

/// A whole number of KES from 1 to [`MAX_AMOUNT_KES`] (digits only: no sign, separator or decimals).
pub fn parse_amount(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 9 || !s.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse::<u32>().ok().filter(|a| (1..=MAX_AMOUNT_KES).contains(a))
}

/// The inputs with the PIN replaced by `****`, for anything stored or shown (events, logs).
pub fn redact_inputs<S: AsRef<str>>(inputs: &[S]) -> Vec<String> {
    let first = inputs.first().map(|s| s.as_ref().trim());
    let pin_at = matches!(first, Some("2") | Some("4")).then_some(3);
    inputs
        .iter()
        .enumerate()
        .map(|(i, s)| if Some(i) == pin_at { "****".to_owned() } else { s.as_ref().to_owned() })
        .collect()
}

/// Africa's Talking `text`: `""` on the first hit, then every input so far joined with `*`.
pub fn split_africastalking_text(text: &str) -> Vec<&str> {
    if text.is_empty() { Vec::new() } else { text.split('*').collect() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn run(inputs: &[&str]) -> String {
        Menu::new("1234").screen(inputs, &mut || "ABCDE12345".to_owned()).to_africastalking()
    }

    #[test]
    fn main_menu_and_balance() {
        assert_eq!(run(&[]), "CON Savanna Pay\n1. My balance\n2. Send money\n3. Buy airtime\n4. Lipa na M-Pesa");
        assert_eq!(run(&["1"]), "END Your M-Pesa balance is KES 1,250.00");
    }

    #[test]
    fn send_money_dialogue() {
        assert_eq!(run(&["2"]), "CON Enter phone number");
        assert_eq!(run(&["2", "0712345678"]), "CON Enter amount (KES)");
        assert_eq!(run(&["2", "0712345678", "500"]), "CON Send KES 500 to 0***678?\nEnter PIN to confirm");
        assert_eq!(run(&["2", "0712345678", "500", "1234"]), "END Sent KES 500 to 0***678. Ref ABCDE12345");
        assert_eq!(run(&["2", "0712345678", "500", "9999"]), "END Wrong PIN. Transaction cancelled.");
        assert_eq!(run(&["2", "254712345678", "7"]), "CON Send KES 7 to 254***678?\nEnter PIN to confirm");
    }

    #[test]
    fn send_money_rejects_bad_phone_and_amount() {
        for phone in ["071234567", "1712345678", "25471234567", "07123456789", "07123a5678", "", "+254712345678"] {
            assert_eq!(run(&["2", phone]), "END Invalid phone number", "{phone:?}");
        }
        for amount in ["0", "150001", "-5", "1.5", "1,000", "", "abc", "99999999999"] {
            assert_eq!(run(&["2", "0712345678", amount]), "END Invalid amount", "{amount:?}");
        }
        assert_eq!(run(&["2", "0712345678", "150000"]), "CON Send KES 150000 to 0***678?\nEnter PIN to confirm");
        assert_eq!(run(&["2", "0712345678", "007"]), "CON Send KES 7 to 0***678?\nEnter PIN to confirm");
    }

    #[test]
    fn airtime_and_lipa_na_mpesa() {
        assert_eq!(run(&["3"]), "CON Enter amount (KES)");
        assert_eq!(run(&["3", "50"]), "END You bought KES 50 of airtime.");
        assert_eq!(run(&["3", "0"]), "END Invalid amount");
        assert_eq!(run(&["4"]), "CON Enter till number");
        assert_eq!(run(&["4", "522533"]), "CON Enter amount (KES)");
        assert_eq!(run(&["4", "522533", "120"]), "CON Pay KES 120 to till 522533?\nEnter PIN to confirm");
        assert_eq!(run(&["4", "522533", "120", "1234"]), "END Paid KES 120 to till 522533. Ref ABCDE12345");
        assert_eq!(run(&["4", "522533", "120", "0000"]), "END Wrong PIN. Transaction cancelled.");
        assert_eq!(run(&["4", "12"]), "END Invalid till number");
    }

    #[test]
    fn anything_else_is_an_invalid_choice() {
        for inputs in
            [&["5"][..], &["0"], &[""], &["1", "1"], &["3", "50", "1"], &["2", "0712345678", "5", "1234", "x"]]
        {
            assert_eq!(run(inputs), "END Invalid choice", "{inputs:?}");
        }
    }

    #[test]
    fn the_pin_comes_from_the_menu() {
        let menu = Menu::new("4321");
        let s = menu.screen(&["2", "0712345678", "5", "1234"], &mut || "R".into());
        assert_eq!(s, Screen::End("Wrong PIN. Transaction cancelled.".into()));
        let s = menu.screen(&["2", "0712345678", "5", "4321"], &mut || "R".into());
        assert!(s.text().starts_with("Sent KES 5"));
        assert!(!format!("{menu:?}").contains("4321"));
    }

    #[test]
    fn redaction_hides_only_the_pin() {
        assert_eq!(redact_inputs(&["2", "0712345678", "500", "1234"]), ["2", "0712345678", "500", "****"]);
        assert_eq!(redact_inputs(&["4", "522533", "120", "1234"]), ["4", "522533", "120", "****"]);
        assert_eq!(redact_inputs(&["3", "50"]), ["3", "50"]);
    }

    #[test]
    fn a_direct_dial_carries_its_inputs() {
        assert_eq!(direct_dial_inputs("*384*7*1#"), ["1"]);
        assert_eq!(direct_dial_inputs("*384*7*2*0712345678#"), ["2", "0712345678"]);
        assert!(direct_dial_inputs("*384*7#").is_empty());
        assert!(direct_dial_inputs("*384*77*1#").is_empty());
        assert!(direct_dial_inputs("*144#").is_empty());
    }

    #[test]
    fn africastalking_text_splits_on_star() {
        assert!(split_africastalking_text("").is_empty());
        assert_eq!(split_africastalking_text("2*0712345678*500"), ["2", "0712345678", "500"]);
    }

    proptest! {
        /// Whatever a user types, the engine answers with a screen that fits one GSM-7 USSD page
        /// (Nalo's 120-character cap too) in plain ASCII, and never panics.
        #[test]
        fn every_screen_fits_a_ussd_page(
            inputs in proptest::collection::vec(
                prop_oneof![
                    Just("1".to_owned()), Just("2".to_owned()), Just("3".to_owned()), Just("4".to_owned()),
                    Just("0712345678".to_owned()), Just("254712345678".to_owned()), Just("1234".to_owned()),
                    Just("150000".to_owned()), Just("1234567".to_owned()), "[0-9]{0,15}", ".{0,20}",
                ],
                0..6,
            )
        ) {
            let screen = Menu::new("1234").screen(&inputs, &mut || "ABCDEFGHIJ".to_owned());
            let text = screen.to_africastalking();
            prop_assert!(text.chars().count() <= 120 + 4, "{} chars: {text:?}", text.chars().count());
            prop_assert!(text.chars().count() <= MAX_SCREEN_CHARS);
            prop_assert!(text.is_ascii());
        }
    }
}
