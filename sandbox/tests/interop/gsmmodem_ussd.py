"""Drives the sandbox's modem emulator with python-gsmmodem-new: connect (its init sequence),
radio health, a USSD dialogue, and reading an SMS. Prints one JSON object."""
import json
import sys

from gsmmodem.modem import GsmModem

port = sys.argv[1]
modem = GsmModem(port, 115200)
modem.connect()
out = {
    "manufacturer": modem.manufacturer,
    "signal": modem.signalStrength,
    "network": modem.networkName,
}
reply = modem.sendUssd("*384*7#", responseTimeout=15)
out["menu"] = reply.message
out["menu_session_active"] = reply.sessionActive
reply = reply.reply("1")
out["balance"] = reply.message
out["balance_session_active"] = reply.sessionActive
sms = modem.listStoredSms()
out["sms"] = [{"number": m.number, "text": m.text} for m in sms]
modem.close()
print(json.dumps(out))
