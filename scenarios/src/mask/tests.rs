use super::*;

/// The table of shapes in `docs/security.md`: (input, masked). The sandbox's copy of the
/// rule is tested against the same table.
fn shapes() -> Vec<(String, String)> {
    let doc = include_str!("../../../docs/security.md");
    let (_, rest) = doc.split_once("<!-- phone-shapes: begin -->").expect("the table's start marker");
    let (table, _) = rest.split_once("<!-- phone-shapes: end -->").expect("the table's end marker");
    let rows: Vec<(String, String)> = table
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(|c| c.trim().trim_matches('`')).collect();
            (cells[1].to_owned(), cells[2].to_owned())
        })
        .collect();
    assert!(rows.len() >= 30, "the table has its rows ({})", rows.len());
    rows
}

#[test]
fn phones_are_masked_in_every_shape_of_the_documented_table() {
    let wrong: Vec<String> = shapes()
        .into_iter()
        .filter_map(|(input, want)| {
            let got = mask_phones(&input);
            (got != want).then(|| format!("{input:?} → {got:?}, the table says {want:?}"))
        })
        .collect();
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn a_known_number_is_masked_in_every_shape_even_bare() {
    let mut m = Masker::default();
    m.add_number("+254712345678");
    m.add_number("+447700900123");
    m.add_number("12345"); // too short to be anyone's number
    for (text, want) in [
        ("airtel msisdn 712345678.", "airtel msisdn ***678."),
        ("7 1 2 3 4 5 6 7 8", "***678"),
        ("(0)712 345 678", "0***678"),
        ("+254 (0) 712-345-678", "+254***678"),
        ("to 0712345678", "to 0***678"),
        ("uk +44 7700 900123 and 447700900123", "uk +***123 and ***123"),
        ("7123456789", "7123456789"), // a longer run is another number
        ("pin 12345", "pin 12345"),
    ] {
        assert_eq!(m.mask(text), want, "{text}");
    }
    assert_eq!(format!("{m:?}"), "Masker(0 secrets, 2 numbers)", "Debug shows no value");
}

#[test]
fn fields_named_like_secrets_are_masked_before_their_values_are_known() {
    for (text, want) in [
        (r#"{"access_token":"c7DHOUV6","expires_in":"3599"}"#, r#"{"access_token":"***","expires_in":"3599"}"#),
        (r#"{"Password": "MTc0"}"#, r#"{"Password": "***"}"#),
        (r#"{"api_key":"a\"b","x":1}"#, r#"{"api_key":"***","x":1}"#),
        (r#"{"csrf_token":"cut off"#, r#"{"csrf_token":"***"#),
        (r#"{"token_type":"Bearer"}"#, r#"{"token_type":"Bearer"}"#),
        (r#"{"output_SessionID":"15ca76cf"}"#, r#"{"output_SessionID":"***"}"#),
        (r#"{"SessionId":"ATUid_1"}"#, r#"{"SessionId":"ATUid_1"}"#),
        ("user=a&pin=1234&x=1", "user=a&pin=***&x=1"),
        ("q=1&csrf_token=abc&spin=2", "q=1&csrf_token=***&spin=2"),
        ("text=2*0712*100*1234", "text=2*0712*100*1234"),
        (
            "GET / HTTP/1.1\nAuthorization: Bearer abc.def\nX-Api-Key: k\naccept: */*",
            "GET / HTTP/1.1\nAuthorization: ***\nX-Api-Key: ***\naccept: */*",
        ),
    ] {
        assert_eq!(mask_secret_fields(text), want, "{text}");
    }
}

#[test]
fn secrets_are_masked_longest_first_and_pins_after_phones() {
    let mut m = Masker::new(["s3cret", "s3cret-key-long"]);
    m.add_secret("ab"); // too short to mask without destroying the text
    assert_eq!(m.mask("k=s3cret-key-long p=s3cret ab"), "k=*** p=*** ab");
    let pin = Masker::new(["1234"]);
    assert_eq!(pin.mask("text=2*0712345678*100*1234"), "text=2*0***678*100****");
    // A digit run inside a long secret does not break it apart.
    let long = Masker::new(["Zq9X254712345678abc"]);
    assert_eq!(long.mask("k=Zq9X254712345678abc"), "k=***");
}

#[test]
fn masking_comes_before_the_cut() {
    let secret = "Zq9Xw7Vt3Rp5Lm2Kd8Hj4Nb6Pc1T";
    let m = Masker::new([secret]);
    // A secret that straddles the 600-character cut, at every offset.
    for lead in 560..600 {
        let text = format!("{}{secret}{}", "a".repeat(lead), "b".repeat(200));
        let e = m.excerpt(&text);
        assert!(!e.contains(&secret[..MIN_PREFIX]), "lead {lead}: {e}");
        assert!(e.ends_with(&format!("… ({} bytes in all)", text.len())), "{e}");
    }
    // And a phone number.
    for lead in 585..600 {
        let text = format!("{}254712345678{}", "a".repeat(lead), "b".repeat(50));
        assert!(!m.excerpt(&text).contains("2547123"), "lead {lead}");
    }
    // Masking shortens the text: more of it fits, and the excerpt is still at most the limit.
    let repeated = vec![secret; 200].join(",");
    let e = m.excerpt(&repeated);
    assert!(!e.contains(&secret[..MIN_PREFIX]), "{e}");
    assert_eq!(m.excerpt("short"), "short");
    let kept = e.split('…').next().unwrap();
    assert_eq!(kept.chars().count(), crate::trace::EXCERPT_LIMIT);
}

#[test]
fn a_text_that_was_cut_before_it_reached_us_hides_what_the_cut_left() {
    let secret = "Zq9Xw7Vt3Rp5Lm2Kd8Hj4Nb6Pc1T";
    let m = Masker::new([secret]);
    // A body cut upstream in the middle of the secret: the start of a message shows its end.
    assert_eq!(m.start("token=Zq9Xw7Vt", 100), "token=***");
    assert_eq!(m.start("echo: Zq9Xw7Vt", 100), "echo: ***");
    assert_eq!(m.start("x Zq9Xw7Vt3R", 11), "x ***");
    assert_eq!(m.start("x Zq", 100), "x ***");
    assert_eq!(m.start("x Z", 100), "x Z", "below the minimum prefix");
    assert_eq!(m.start("call 2547123456", 14), "call ***");
    assert_eq!(m.start("KES 125", 7), "KES 125", "3 digits are not a number's start");
}
