"""Drives the sandbox's Daraja emulation with the third-party `daraja-v3` client (PyPI, import `mpesa`).

Run by tests/interop.rs. Phase `flow`: OAuth, STK push, STK query while pending, query until done, for a
success (suffix 00) and a cancellation (suffix 01), then OAuth with a wrong secret. Phase `parse`: the
client's own callback parser on a callback body read from stdin. Prints one JSON object.
"""
import json
import os
import sys
import time

from mpesa import MpesaClient
from mpesa.exceptions import AuthenticationError, MpesaError


def client(secret=None):
    return MpesaClient(
        consumer_key=os.environ["SANDBOX_KEY"],
        consumer_secret=secret or os.environ["SANDBOX_SECRET"],
        shortcode=os.environ["SANDBOX_SHORTCODE"],
        passkey=os.environ["SANDBOX_PASSKEY"],
        base_url=os.environ["SANDBOX_BASE_URL"],
        timeout=10,
    )


def pay(c, phone):
    pushed = c.stk_push(
        phone=phone,
        amount=1,
        reference="Interop",
        description="Interop test",
        callback_url=os.environ["SANDBOX_CALLBACK_URL"],
    )
    out = {"checkout_request_id": pushed.checkout_request_id, "merchant_request_id": pushed.merchant_request_id,
           "response_description": pushed.response_description, "pending_codes": []}
    deadline = time.time() + 20
    while True:
        try:
            result = c.stk_query(pushed.checkout_request_id)
        except MpesaError as e:  # HTTP 500 "The transaction is being processed" while pending
            out["pending_codes"].append(e.code)
            out["pending_message"] = e.message
            if time.time() > deadline:
                raise
            time.sleep(0.05)
            continue
        out.update(result_code=result.result_code, result_desc=result.result_desc, is_paid=result.is_paid,
                   query_checkout_request_id=result.checkout_request_id)
        return out


def flow():
    c = client()
    report = {"paid": pay(c, "0708920400"), "cancelled": pay(c, "0708920401")}
    try:
        client(secret="wrong-secret").stk_push(phone="0708920400", amount=1, reference="Interop",
                                               callback_url=os.environ["SANDBOX_CALLBACK_URL"])
        report["bad_credentials"] = None
    except AuthenticationError as e:
        report["bad_credentials"] = e.code
    return report


def parse():
    parsed = MpesaClient.parse_stk_callback(json.load(sys.stdin))
    parsed.pop("raw")
    return parsed


if __name__ == "__main__":
    print(json.dumps(flow() if sys.argv[1] == "flow" else parse()))
