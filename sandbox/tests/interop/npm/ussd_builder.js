// A USSD application written with `ussd-builder`, a menu framework nobody here wrote (npm, installed
// next to this file by .ci/run with `npm ci`), behind three of the gateways it speaks: Africa's
// Talking, Hubtel and Nalo. The prober plays each gateway against it (scenarios/tests/ussd_interop.rs).
// Prints `listening <port>` on stdout, serves on 127.0.0.1 until killed.
"use strict";

const http = require("http");
const UssdMenu = require("ussd-builder");

const BALANCE = "Your M-Pesa balance is KES 1,250.00";

// Hubtel and Nalo send only the current input: the framework keeps the route per session.
const sessions = {};
const store = {
  start: (id, cb) => {
    if (!(id in sessions)) sessions[id] = {};
    cb();
  },
  end: (id, cb) => {
    delete sessions[id];
    cb();
  },
  set: (id, key, value, cb) => {
    sessions[id][key] = value;
    cb();
  },
  get: (id, key, cb) => cb(null, sessions[id][key]),
};

function menu(provider) {
  const m = new UssdMenu({ provider });
  m.sessionConfig(store);
  m.startState({
    run: () => m.con("Savanna Pay\n1. My balance\n2. Exit"),
    next: { 1: "balance", 2: "bye" },
  });
  m.state("balance", { run: () => m.end(BALANCE) });
  m.state("bye", { run: () => m.end("Goodbye") });
  return m;
}

const apps = { "/at": "africasTalking", "/hubtel": "hubtel", "/nalo": "nalo" };

const server = http.createServer((req, res) => {
  const provider = apps[req.url];
  if (!provider || req.method !== "POST") {
    res.writeHead(404).end();
    return;
  }
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", async () => {
    const args = provider === "africasTalking" ? Object.fromEntries(new URLSearchParams(body)) : JSON.parse(body);
    try {
      const out = await menu(provider).run(args);
      if (typeof out === "string") {
        res.writeHead(200, { "Content-Type": "text/plain" }).end(out);
      } else {
        res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify(out));
      }
    } catch (e) {
      res.writeHead(500, { "Content-Type": "text/plain" }).end(String(e));
    }
  });
});

server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
