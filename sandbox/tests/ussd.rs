//! The USSD app through each gateway dialect, over HTTP.

mod common;

use common::{Http, start, start_with};
use http::StatusCode;
use serde_json::{Value, json};

const MAIN_MENU: &str = "CON Savanna Pay\n1. My balance\n2. Send money\n3. Buy airtime\n4. Lipa na M-Pesa";

fn is_ref(s: &str) -> bool {
    s.len() == 10 && s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

async fn at_hop(http: &Http, base: &str, session: &str, text: &str) -> (StatusCode, String, String) {
    let r = http
        .post_form(
            &format!("{base}/ussd/at"),
            &[
                ("sessionId", session),
                ("serviceCode", "*384*7#"),
                ("phoneNumber", "+254711223344"),
                ("networkCode", "63902"),
                ("text", text),
            ],
        )
        .await;
    let ct = r.headers.get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (r.status, ct, r.text())
}

#[tokio::test]
async fn africastalking_send_money_dialogue() {
    let sb = start().await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let steps = [
        ("", MAIN_MENU.to_owned()),
        ("2", "CON Enter phone number".to_owned()),
        ("2*0712345678", "CON Enter amount (KES)".to_owned()),
        ("2*0712345678*500", "CON Send KES 500 to 0***678?\nEnter PIN to confirm".to_owned()),
    ];
    for (text, expected) in steps {
        let (status, ct, body) = at_hop(&http, &base, "ATUid_1", text).await;
        assert_eq!(status, StatusCode::OK);
        assert!(ct.starts_with("text/plain"), "{ct}");
        assert_eq!(body, expected, "text={text:?}");
        assert!(body.chars().count() <= 182);
    }
    let (_, _, body) = at_hop(&http, &base, "ATUid_1", "2*0712345678*500*1234").await;
    let reference = body.strip_prefix("END Sent KES 500 to 0***678. Ref ").unwrap_or_else(|| panic!("{body}"));
    assert!(is_ref(reference), "{reference}");

    let (_, _, body) = at_hop(&http, &base, "ATUid_2", "2*0712345678*500*9999").await;
    assert_eq!(body, "END Wrong PIN. Transaction cancelled.");
    let (_, _, body) = at_hop(&http, &base, "ATUid_3", "2*12345").await;
    assert_eq!(body, "END Invalid phone number");
    let (_, _, body) = at_hop(&http, &base, "ATUid_4", "2*254712345678*0").await;
    assert_eq!(body, "END Invalid amount");
    let (_, _, body) = at_hop(&http, &base, "ATUid_5", "1").await;
    assert_eq!(body, "END Your M-Pesa balance is KES 1,250.00");
    let (_, _, body) = at_hop(&http, &base, "ATUid_6", "3*50").await;
    assert_eq!(body, "END You bought KES 50 of airtime.");
    let (_, _, body) = at_hop(&http, &base, "ATUid_7", "4*522533*120").await;
    assert_eq!(body, "CON Pay KES 120 to till 522533?\nEnter PIN to confirm");
    let (_, _, body) = at_hop(&http, &base, "ATUid_7", "4*522533*120*1234").await;
    assert!(body.starts_with("END Paid KES 120 to till 522533. Ref "), "{body}");
    let (_, _, body) = at_hop(&http, &base, "ATUid_8", "9").await;
    assert_eq!(body, "END Invalid choice");
    sb.shutdown().await;
}

#[tokio::test]
async fn the_pin_is_configurable() {
    let sb = start_with(sandbox::Config { ussd_pin: "8080".into(), ..common::fast_config() }).await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let (_, _, body) = at_hop(&http, &base, "s", "2*0712345678*5*1234").await;
    assert_eq!(body, "END Wrong PIN. Transaction cancelled.");
    let (_, _, body) = at_hop(&http, &base, "s", "2*0712345678*5*8080").await;
    assert!(body.starts_with("END Sent KES 5"), "{body}");
    sb.shutdown().await;
}

#[tokio::test]
async fn africastalking_bad_requests_name_the_field() {
    let sb = start().await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let r = http.post_form(&format!("{base}/ussd/at"), &[("phoneNumber", "+254711223344"), ("text", "")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.json()["error"].as_str().unwrap().contains("sessionId"), "{}", r.text());
    let long = "1".repeat(200);
    let r =
        http.post_form(&format!("{base}/ussd/at"), &[("sessionId", "x"), ("phoneNumber", "1"), ("text", &long)]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("text"), "{}", r.text());
    sb.shutdown().await;
}

#[tokio::test]
async fn africastalking_events_are_kept_masked_and_redacted() {
    let sb = start().await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let r = http
        .post_form(
            &format!("{base}/ussd/at/events"),
            &[
                ("date", "2025-09-29 12:00:00"),
                ("sessionId", "ATUid_ev"),
                ("serviceCode", "*384*7#"),
                ("networkCode", "63902"),
                ("phoneNumber", "+254711223344"),
                ("status", "Success"),
                ("cost", "KES 0.0000"),
                ("durationInMillis", "5342"),
                ("hopsCount", "5"),
                ("hopsMetadata", ""),
                ("input", "2*0712345678*500*1234"),
                ("lastAppResponse", "END Sent KES 500 to 0***678. Ref ABCDEFGHIJ"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = http.post_form(&format!("{base}/ussd/at/events"), &[("sessionId", "x"), ("status", "Done")]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("status"));
    let r = http
        .post_form(
            &format!("{base}/ussd/at/events"),
            &[("sessionId", "x"), ("status", "Failed"), ("hopsCount", "many")],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("hopsCount"));

    let events = http.get(&format!("{base}/ussd/at/events")).await.json();
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 1, "refused events are not kept: {events:?}");
    let e = &events[0];
    assert_eq!(e["sessionId"], "ATUid_ev");
    assert_eq!(e["status"], "Success");
    assert_eq!(e["phoneNumber"], "+254***344");
    assert_eq!(e["input"], "2*0***678*500*****");
    assert_eq!(e["durationInMillis"], 5342);
    assert_eq!(e["hopsCount"], 5);
    assert!(!e.to_string().contains("1234\""), "the PIN is not kept: {e}");
    sb.shutdown().await;
}

#[tokio::test]
async fn the_event_log_is_bounded() {
    let mut config = common::fast_config();
    config.limits.max_events = 3;
    let sb = start_with(config).await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    for i in 0..5 {
        let id = format!("s{i}");
        let r = http
            .post_form(&format!("{base}/ussd/at/events"), &[("sessionId", id.as_str()), ("status", "Incomplete")])
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let events = http.get(&format!("{base}/ussd/at/events")).await.json();
    let ids: Vec<&str> = events.as_array().unwrap().iter().map(|e| e["sessionId"].as_str().unwrap()).collect();
    assert_eq!(ids, ["s2", "s3", "s4"]);
    sb.shutdown().await;
}

async fn hubtel(http: &Http, base: &str, kind: &str, message: &str, seq: u32) -> Value {
    let body = json!({
        "SessionId": "hub-1", "Mobile": "233200000000", "ServiceCode": "*384*7#", "Type": kind,
        "Message": message, "Operator": "mtn", "Sequence": seq, "ClientState": "", "Platform": "USSD"
    });
    let r = http.post_json(&format!("{base}/ussd/hubtel"), &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()
}

#[tokio::test]
async fn hubtel_send_money_dialogue() {
    let sb = start().await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let first = hubtel(&http, &base, "Initiation", "*384*7#", 1).await;
    assert_eq!(
        first,
        json!({"SessionId": "hub-1", "Type": "response", "Message": MAIN_MENU.strip_prefix("CON ").unwrap(),
               "Label": "Savanna Pay", "ClientState": "", "DataType": "input", "FieldType": "text"})
    );
    assert_eq!(hubtel(&http, &base, "Response", "2", 2).await["Message"], "Enter phone number");
    // A gateway retry of the same hop does not add the input twice.
    assert_eq!(hubtel(&http, &base, "Response", "2", 2).await["Message"], "Enter phone number");
    assert_eq!(hubtel(&http, &base, "Response", "0712345678", 3).await["Message"], "Enter amount (KES)");
    let confirm = hubtel(&http, &base, "Response", "500", 4).await;
    assert_eq!(confirm["Message"], "Send KES 500 to 0***678?\nEnter PIN to confirm");
    assert_eq!(confirm["Type"], "response");
    let done = hubtel(&http, &base, "Response", "1234", 5).await;
    assert_eq!(done["Type"], "release");
    assert_eq!(done["DataType"], "display");
    assert_eq!(done["FieldType"], "text");
    let msg = done["Message"].as_str().unwrap();
    assert!(is_ref(msg.strip_prefix("Sent KES 500 to 0***678. Ref ").unwrap_or_else(|| panic!("{msg}"))));
    // The session is gone after the release.
    assert_eq!(hubtel(&http, &base, "Response", "1", 6).await["Type"], "release");

    // A gateway Release/Timeout ends a session; later hops are refused politely.
    hubtel(&http, &base, "Initiation", "*384*7#", 1).await;
    assert_eq!(hubtel(&http, &base, "Timeout", "", 2).await["Type"], "release");
    let after = hubtel(&http, &base, "Response", "1", 3).await;
    assert_eq!(after["Type"], "release");
    assert!(after["Message"].as_str().unwrap().contains("expired"));

    let r = http.post_json(&format!("{base}/ussd/hubtel"), &json!({"SessionId": "x", "Type": "AddToCart"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("Type"), "{}", r.text());
    let r = http.post_json(&format!("{base}/ussd/hubtel"), &json!({"Type": "Initiation"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("SessionId"), "{}", r.text());
    sb.shutdown().await;
}

async fn nalo(http: &Http, base: &str, session: &str, initial: bool, data: &str) -> Value {
    let body = json!({"USERID": "savanna", "MSISDN": "233244000000", "USERDATA": data, "MSGTYPE": initial,
                      "NETWORK": "MTN", "SESSIONID": session});
    let r = http.post_json(&format!("{base}/ussd/nalo"), &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()
}

#[tokio::test]
async fn nalo_send_money_dialogue() {
    let sb = start().await;
    let (http, base) = (Http::default(), sb.base_url().to_owned());
    let first = nalo(&http, &base, "n1", true, "*384*7#").await;
    assert_eq!(
        first,
        json!({"USERID": "savanna", "MSISDN": "233244000000", "MSG": MAIN_MENU.strip_prefix("CON ").unwrap(), "MSGTYPE": true})
    );
    assert_eq!(nalo(&http, &base, "n1", false, "2").await["MSG"], "Enter phone number");
    assert_eq!(nalo(&http, &base, "n1", false, "254712345678").await["MSG"], "Enter amount (KES)");
    // Another session in parallel keeps its own history.
    assert_eq!(nalo(&http, &base, "n2", true, "*384*7#").await["MSGTYPE"], true);
    assert_eq!(
        nalo(&http, &base, "n2", false, "1").await,
        json!({"USERID": "savanna", "MSISDN": "233244000000",
        "MSG": "Your M-Pesa balance is KES 1,250.00", "MSGTYPE": false})
    );
    let confirm = nalo(&http, &base, "n1", false, "1500").await;
    assert_eq!(confirm["MSG"], "Send KES 1500 to 254***678?\nEnter PIN to confirm");
    assert_eq!(confirm["MSGTYPE"], true);
    let wrong = nalo(&http, &base, "n1", false, "0000").await;
    assert_eq!(wrong["MSG"], "Wrong PIN. Transaction cancelled.");
    assert_eq!(wrong["MSGTYPE"], false);
    let gone = nalo(&http, &base, "n1", false, "1").await;
    assert_eq!(gone["MSGTYPE"], false);

    let r = http
        .post_json(
            &format!("{base}/ussd/nalo"),
            &json!({"USERID": "u", "MSISDN": "1", "MSGTYPE": "yes", "SESSIONID": "s"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("MSGTYPE"), "{}", r.text());
    let r = http.post_json(&format!("{base}/ussd/nalo"), &json!({"USERID": "u", "MSISDN": "1", "MSGTYPE": true})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("SESSIONID"), "{}", r.text());
    sb.shutdown().await;
}
