// Drives the sandbox's MTN MoMo emulation with `mtn-momo`, a MoMo client nobody here wrote (npm,
// installed next to this file by .ci/run with `npm ci`). Called by sandbox/tests/interop.rs; prints
// one JSON report on stdout.
//
// Environment: SANDBOX_BASE_URL, SANDBOX_CALLBACK_URL (a sink on the callback host),
// MOMO_SUBSCRIPTION_KEY, MOMO_API_USER and MOMO_API_KEY (the ready user), MOMO_CALLBACK_HOST.
"use strict";

const momo = require("mtn-momo");

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Polls getTransaction until the payment is no longer PENDING; a failed payment rejects with the
// library's error class for its reason.
async function settle(collections, referenceId) {
  for (let i = 0; i < 200; i++) {
    try {
      const t = await collections.getTransaction(referenceId);
      if (t.status !== "PENDING") return { status: t.status, transaction: t };
    } catch (e) {
      return { status: "FAILED", error: e.name, reason: e.transaction && e.transaction.reason };
    }
    await sleep(25);
  }
  return { status: "STILL_PENDING" };
}

async function main() {
  const baseUrl = env("SANDBOX_BASE_URL");
  const primaryKey = env("MOMO_SUBSCRIPTION_KEY");
  const callbackHost = env("MOMO_CALLBACK_HOST");
  const report = {};

  // MTN's sandbox flow: provision an API user and its key, then use them in `sandbox` (EUR).
  const sandbox = momo.create({ callbackHost, baseUrl, environment: "sandbox" });
  const users = sandbox.Users({ primaryKey });
  const userId = await users.create(callbackHost);
  const { apiKey } = await users.login(userId);
  report.provisioned = { user_is_uuid: /^[0-9a-f-]{36}$/.test(userId), key_length: apiKey.length };
  const eur = sandbox.Collections({ userId, userSecret: apiKey, primaryKey });
  const euroRef = await eur.requestToPay({
    amount: "1",
    currency: "EUR",
    externalId: "interop",
    payer: { partyIdType: "MSISDN", partyId: "46733123400" },
    payerMessage: "interop",
    payeeNote: "interop",
  });
  report.sandbox_payment = await settle(eur, euroRef);

  // Production-shaped: the ready user in mtnuganda (UGX), with a callback.
  const uganda = momo.create({ callbackHost, baseUrl, environment: "mtnuganda" });
  const ugx = uganda.Collections({ userId: env("MOMO_API_USER"), userSecret: env("MOMO_API_KEY"), primaryKey });
  const payment = (partyId) => ({
    amount: "500",
    currency: "UGX",
    externalId: "SavannaPulse",
    payer: { partyIdType: "MSISDN", partyId },
    payerMessage: "Probe",
    payeeNote: "SavannaPulse",
    callbackUrl: env("SANDBOX_CALLBACK_URL"),
  });
  const okRef = await ugx.requestToPay(payment("256772000100"));
  report.paid = { reference_id: okRef, ...(await settle(ugx, okRef)) };
  const rejectedRef = await ugx.requestToPay(payment("256772000201"));
  report.rejected = await settle(ugx, rejectedRef);
  const poorRef = await ugx.requestToPay(payment("256772000302"));
  report.poor = await settle(ugx, poorRef);
  report.balance = await ugx.getBalance();
  report.active = await ugx.isPayerActive("256772000100", "msisdn");
  report.not_found = await ugx.isPayerActive("256772000108", "msisdn");

  // A refusal comes back as the library's error class for MoMo's code.
  try {
    await ugx.requestToPay({ ...payment("256772000100"), currency: "EUR" });
    report.wrong_currency = "accepted";
  } catch (e) {
    report.wrong_currency = e.name;
  }
  process.stdout.write(JSON.stringify(report) + "\n");
}

main().catch((e) => {
  process.stderr.write(`mtn-momo interop failed: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
