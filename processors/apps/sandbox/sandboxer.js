// The JavaScript sandbox of vumi-kafka's JsSandbox (written for this
// project, in the spirit of Vumi's sandboxer.js). It speaks the sandbox
// protocol on stdin and stdout: one JSON command per line.
//
// The worker sends "initialize" once ({javascript, app_context}), then
// one "inbound-message" or "inbound-event" ({msg}) at a time. For each, the
// code runs in a fresh V8 context whose global object is app_context (a
// JavaScript expression, default {}) plus `api`, so no state leaks from
// one message to the next, as when Vumi started a process per message.
// The application calls api.done() when it has finished with a message;
// the process then waits for the next one.
'use strict';
var vm = require('vm');

var nextId = 0;
var pending = {};
var script = null;
var appContext = null;
var current = null; // the api of the message being handled
var reuseContext = false;
var shared = null; // the context kept when reuse_context is set

function send(cmd) {
    process.stdout.write(JSON.stringify(cmd) + '\n');
}

function Api(generation) {
    var self = this;
    self.generation = generation;
    self.finished = false;

    self.next_id = function () {
        nextId += 1;
        return nextId.toString();
    };

    self.populate_command = function (command, msg) {
        msg.cmd = command;
        msg.reply = false;
        msg.cmd_id = self.next_id();
        return msg;
    };

    // request sends a command to a resource, e.g. 'kv.get'; callback, if
    // given, is called with the reply (this is the api).
    self.request = function (command, msg, callback) {
        if (self.finished) {
            return;
        }
        msg = msg || {};
        self.populate_command(command, msg);
        if (callback) {
            pending[msg.cmd_id] = {api: self, callback: callback};
        }
        send(msg);
    };

    self.log_info = function (msg, callback) {
        self.request('log.info', {msg: msg}, callback);
    };

    // done ends the handling of the current message.
    self.done = function () {
        if (self.finished) {
            return;
        }
        self.log_info('Done.', function () {
            self.finished = true;
            send({cmd: 'done', cmd_id: self.next_id(), reply: false});
        });
    };

    self.on_unknown_command = function (command) {};
}

var generation = 0;

function handle(command) {
    if (command.cmd === 'initialize') {
        script = new vm.Script(command.javascript || '', {filename: 'sandboxed.js'});
        appContext = command.app_context || null;
        reuseContext = !!command.reuse_context;
        return;
    }
    if (script === null) {
        send({cmd: 'log.error', cmd_id: 'init', reply: false, msg: 'command before initialize: ' + command.cmd});
        return;
    }
    generation += 1;
    var api = new Api(generation);
    current = api;
    if (!reuseContext || shared === null) {
        var ctxt = {};
        if (appContext) {
            ctxt = vm.runInNewContext('(' + appContext + ')', {});
        }
        shared = vm.createContext(ctxt);
    }
    shared.api = api;
    script.runInContext(shared);
    var name = 'on_' + command.cmd.replace(/[.\-]/g, '_');
    var handler = api[name] || api.on_unknown_command;
    handler.call(api, command);
}

function reply(msg) {
    var p = pending[msg.cmd_id];
    if (!p) {
        return;
    }
    delete pending[msg.cmd_id];
    if (p.api !== current) {
        return; // a late reply for a message already done
    }
    p.callback.call(p.api, msg);
}

var chunk = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', function (data) {
    var parts = (chunk + data).split('\n');
    chunk = parts.pop();
    for (var i = 0; i < parts.length; i++) {
        if (!parts[i]) {
            continue;
        }
        var msg = JSON.parse(parts[i]);
        if (msg.reply) {
            reply(msg);
        } else {
            handle(msg);
        }
    }
});
process.stdin.on('end', function () {
    process.exit(0);
});
