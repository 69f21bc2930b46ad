// The test application: what it does depends on the message content.
var msg_id;
function reply(text) {
    api.request('outbound.reply_to', {content: text, in_reply_to: msg_id}, function () {
        api.done();
    });
}
function chain(steps, done) {
    // runs requests one after the other, collecting the replies
    var out = [];
    function next(i) {
        if (i === steps.length) { return done(out); }
        api.request(steps[i][0], steps[i][1], function (r) { out.push(r); next(i + 1); });
    }
    next(0);
}
api.on_inbound_message = function (command) {
    var msg = command.msg;
    msg_id = msg.message_id;
    var words = (msg.content || '').split(' ');
    switch (words[0]) {
    case 'ping':
        return reply('pong');
    case 'count':
        return api.request('kv.incr', {key: 'count'}, function (r) { reply('count=' + r.value); });
    case 'kv':
        return chain([
            ['kv.set', {key: 'a', value: {x: '42'}}],
            ['kv.get', {key: 'a'}],
            ['kv.get', {key: 'missing'}],
            ['kv.incr', {key: 'n', amount: 3}],
            ['kv.incr', {key: 'n'}],
            ['kv.incr', {key: 'a'}],
            ['kv.delete', {key: 'a'}],
            ['kv.delete', {key: 'a'}],
            ['kv.set', {key: 'short', value: 1, seconds: 0.2}],
            ['kv.set', {key: 'k3', value: 3}],
            ['kv.set', {key: 'k4', value: 4}],
            ['kv.set', {key: 'k5', value: 5}],
            ['kv.get', {}],
        ], function (r) {
            reply(JSON.stringify([r[0].success, r[1].value, r[2].value, r[3].value, r[4].value,
                r[5].success, r[6].existed, r[7].existed, r[8].success, r[9].success, r[10].success,
                r[11].success, r[11].reason, r[12].success]));
        });
    case 'expired':
        return api.request('kv.get', {key: 'short'}, function (r) { reply('short=' + JSON.stringify(r.value)); });
    case 'log':
        return chain([
            ['log.debug', {msg: 'a debug line'}],
            ['log.info', {msg: 'an info line'}],
            ['log.warning', {msg: 'a warning line'}],
            ['log.error', {msg: 'an error line'}],
            ['log.critical', {msg: 'a critical line'}],
            ['log.log', {msg: 'a level 30 line', level: 30}],
            ['log.log', {msg: 'default level line'}],
            ['log.info', {}],
            ['log.log', {msg: 'x', level: 'high'}],
        ], function (r) {
            reply(r.map(function (x) { return x.success + (x.reason ? ':' + x.reason : ''); }).join(','));
        });
    case 'config':
        return api.request('config.get', {key: 'greeting'}, function (r) { reply('config=' + r.value); });
    case 'send':
        return api.request('outbound.send_to', {to_addr: '+27830000000', content: 'sent', endpoint: 'default'}, function (r) {
            api.request('outbound.reply_to_group', {content: 'to group', in_reply_to: msg_id, continue_session: false}, function (r2) {
                api.request('outbound.reply_to', {content: 'x', in_reply_to: 'not-this-one'}, function (r3) {
                    reply('send=' + r.success + ',' + r2.success + ',' + r3.success + ':' + r3.reason);
                });
            });
        });
    case 'http':
        var base = words[1];
        var files = {upload: {file_name: 'a.txt', content_type: 'text/plain', data: 'aGVsbG8='}};
        return chain([
            ['http.get', {url: base + '/get', headers: {'X-Test': ['one', 'two']}}],
            ['http.head', {url: base + '/head'}],
            ['http.post', {url: base + '/post', data: 'posted'}],
            ['http.put', {url: base + '/put', data: 'put'}],
            ['http.patch', {url: base + '/patch', data: 'patched'}],
            ['http.delete', {url: base + '/delete'}],
            ['http.post', {url: base + '/files', files: files}],
            ['http.get', {url: base + '/big'}],
            ['http.get', {}],
            ['http.get', {url: words[2] + '/tls', verify_options: ['VERIFY_NONE']}],
            ['http.get', {url: words[2] + '/tls', verify_options: ['VERIFY_PEER']}],
        ], function (r) {
            reply(JSON.stringify(r.map(function (x) {
                return x.success ? [x.code, x.body] : ['fail', x.reason.slice(0, 40)];
            })));
        });
    case 'unknown':
        return api.request('nosuch.thing', {}, function (r) { reply('unknown=' + r.success); });
    case 'loop':
        while (true) {}
    case 'bomb':
        var a = [];
        while (true) { a.push(new Array(1e6).fill(1.5)); }
    case 'flood':
        return api.log_info(new Array(1024 * 1024).join('x'));
    case 'crash':
        throw new Error('boom');
    case 'global':
        // a fresh context per message: nothing leaks from the last one
        var seen = typeof leaked !== 'undefined';
        leaked = true;
        return reply('leaked=' + seen);
    }
    reply('unknown command ' + words[0]);
};
api.on_inbound_event = function (command) {
    api.request('outbound.send_to', {to_addr: 'events', content: 'event:' + command.msg.event_type}, function () {
        api.done();
    });
};
