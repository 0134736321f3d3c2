use std::path::Path;

use super::*;
use crate::journey::parse_journey;

fn warnings(text: &str) -> Vec<Warning> {
    let j = parse_journey(text, "j.yaml", Path::new(".")).unwrap();
    check(&Source::new("j.yaml", text), &j)
}

const LITERAL: &str = r#"name: literal
variables:
  base: http://127.0.0.1:7700
  session_token: "abc123"
  tok: "Zq9Xw7Vt3Rp5Lm2Kd8Hj4Nb6Pc1T"
  run_note: "nightly"
secrets:
  key: env:HOME
steps:
  - name: call
    http:
      url: "{{ base }}/x?api_key=k-live-1&page=2&q={{ run_note }}"
      headers:
        Authorization: "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
        X-Api-Key: "{{ secrets.key }}"
        X-Trace: "{{ tok }}"
        Cookie: "{{ session_token }}"
        Accept: application/json
      form: {user: probe, password: hunter22}
"#;

#[test]
fn literal_credentials_are_named_by_file_line_and_field_never_by_value() {
    let w = warnings(LITERAL);
    let fields: Vec<(&str, usize)> = w.iter().map(|w| (w.field.as_str(), w.line)).collect();
    assert_eq!(
        fields,
        [
            ("variables.session_token", 4),
            ("variables.tok", 5),
            ("steps[0].http.headers.Authorization", 14),
            ("steps[0].http.form.password", 19),
            ("steps[0].http.url", 12),
        ],
        "{w:#?}"
    );
    for w in &w {
        let text = w.to_string();
        assert!(text.starts_with(&format!("j.yaml:{}: {}: ", w.line, w.field)), "{text}");
        for value in ["abc123", "Zq9X", "eyJ", "hunter22", "k-live-1"] {
            assert!(!text.contains(value), "{text}");
        }
    }
}

#[test]
fn references_and_bundled_journeys_draw_no_warning() {
    let by_reference = r#"name: ok
variables: {daraja: "http://127.0.0.1:7700", token_url: "https://example.com/oauth", shortcode: "174379"}
secrets: {t: env:HOME}
steps:
  - name: call
    http:
      url: "{{ daraja }}/x?token={{ secrets.t }}"
      headers: {authorization: "Bearer {{ secrets.t }}", x-request-id: "{{ run_id }}"}
"#;
    assert_eq!(warnings(by_reference), []);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    for f in [
        "ussd-balance.yaml",
        "ussd-send-money.yaml",
        "mpesa-stk-push.yaml",
        "checkout-mpesa.yaml",
        "airtel-collect.yaml",
        "checkout-momo.yaml",
        "checkout-mpesa-tz.yaml",
    ] {
        let path = dir.join(f);
        let src = Source::read(&path).unwrap();
        let j = crate::journey::load_file(&path).unwrap();
        assert_eq!(check(&src, &j), [], "{f}");
    }
}

#[test]
fn names_and_shapes() {
    for n in ["api_key", "apiKey", "X-API-Key", "Ocp-Apim-Subscription-Key", "session_token", "PIN", "client_secret"] {
        assert!(is_credential_name(n) || is_credential_header(n), "{n}");
    }
    for n in ["shipping", "keyboard", "spin", "phone", "events_url", "monkey"] {
        assert!(!is_credential_name(n), "{n}");
    }
    assert!(is_credential_header("cookie") && is_credential_header("X-Auth-Token") && !is_credential_header("accept"));
    for v in [
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
        "f3a9c2e17b5d4086a1e2c3d4b5a69788",
        "c2F2YW5uYS1zYW5kYm94LWtleTpz",
    ] {
        assert!(looks_like_credential(v), "{v}");
    }
    for v in
        ["http://127.0.0.1:7700/ussd/at", "0123456789abcdef", "NLJ7RT61SV", "CustomerPayBillOnline", "254700000100"]
    {
        assert!(!looks_like_credential(v), "{v}");
    }
    assert_eq!(secret_parts("Bearer abc.def"), ["Bearer abc.def", "abc.def"]);
    assert_eq!(secret_parts("sid=s3ss10n; theme=dark"), ["sid=s3ss10n; theme=dark", "s3ss10n", "dark"]);
    assert_eq!(secret_parts("k-1"), ["k-1"]);
}
