//! Phone-number masking for logs and stored records: phone numbers never reach a log line whole.

/// Keeps the first 4 and the last 3 characters and puts `***` between them:
/// `0712345678` → `0712***678`, `254712345678` → `2547***678`, `+254711223344` → `+254***344`.
/// Anything of 7 characters or fewer becomes `***`, since what would remain identifies it.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    if chars.len() <= 7 {
        return "***".to_owned();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 3..].iter().collect();
    format!("{head}***{tail}")
}

#[cfg(test)]
mod tests {
    use super::mask_phone;

    #[test]
    fn keeps_four_and_three() {
        assert_eq!(mask_phone("0712345678"), "0712***678");
        assert_eq!(mask_phone("254712345678"), "2547***678");
        assert_eq!(mask_phone("+254711223344"), "+254***344");
    }

    #[test]
    fn short_values_are_fully_hidden() {
        assert_eq!(mask_phone("1234567"), "***");
        assert_eq!(mask_phone(""), "***");
    }
}
