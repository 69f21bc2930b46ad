// An SMSC built on the npm "smpp" package (not on this project's code), for
// the Go transport's interop test. It accepts binds from esme/secret,
// answers submit_sm with message ids, sends a delivery receipt when one is
// requested, and sends a deliver_sm for every "MO <from> <to> <text>" line
// read on stdin. It reports on stdout, one JSON object a line.
'use strict';
const smpp = require('smpp');
const readline = require('readline');

let counter = 0;
const sessions = new Set();
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

const server = smpp.createServer({}, (session) => {
  session.on('error', (err) => out({event: 'error', error: String(err)}));
  const bind = (pdu) => {
    if (pdu.system_id !== 'esme' || pdu.password !== 'secret') {
      session.send(pdu.response({command_status: smpp.ESME_RBINDFAIL}));
      session.close();
      return;
    }
    session.send(pdu.response({system_id: 'node-smsc'}));
    sessions.add(session);
    out({event: 'bound', command: pdu.command, system_id: pdu.system_id});
  };
  session.on('bind_transceiver', bind);
  session.on('bind_receiver', bind);
  session.on('bind_transmitter', bind);
  session.on('enquire_link', (pdu) => session.send(pdu.response()));
  session.on('unbind', (pdu) => {
    session.send(pdu.response());
    sessions.delete(session);
    session.close();
  });
  session.on('close', () => sessions.delete(session));
  session.on('submit_sm', (pdu) => {
    const id = 'node' + (++counter);
    const text = typeof pdu.short_message === 'object' && pdu.short_message.message !== undefined
      ? String(pdu.short_message.message) : String(pdu.short_message);
    session.send(pdu.response({message_id: id}));
    out({event: 'submit_sm', id: id, to: pdu.destination_addr, from: pdu.source_addr, text: text, data_coding: pdu.data_coding});
    if ((pdu.registered_delivery & 0x03) === 1) {
      const receipt = 'id:' + id + ' sub:001 dlvrd:001 submit date:2601011200 done date:2601011201 stat:DELIVRD err:000 text:' + text.slice(0, 20);
      session.deliver_sm({
        source_addr: pdu.destination_addr,
        destination_addr: pdu.source_addr,
        esm_class: 0x04,
        short_message: Buffer.from(receipt, 'latin1'),
        receipted_message_id: id,
        message_state: 2,
      }, (resp) => out({event: 'receipt_resp', id: id, status: resp.command_status}));
    }
  });
});

server.listen(0, '127.0.0.1', () => out({event: 'listening', port: server.address().port}));

readline.createInterface({input: process.stdin}).on('line', (line) => {
  const m = /^MO (\S+) (\S+) (.*)$/.exec(line);
  if (!m) {
    return;
  }
  for (const s of sessions) {
    s.deliver_sm({source_addr: m[1], destination_addr: m[2], data_coding: 0, short_message: m[3]},
      (resp) => out({event: 'mo_resp', status: resp.command_status}));
    break;
  }
});
process.stdin.on('end', () => process.exit(0));
