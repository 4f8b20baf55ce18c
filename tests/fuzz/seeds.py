#!/usr/bin/env python3
"""Writes the hand-made seed inputs of every fuzz target.

    python3 tests/fuzz/seeds.py [OUTDIR]      (default: tests/fuzz/corpus)

Each seed is a meaningful input: the sample payload, the official signature
vectors, the README's config examples, real request heads. They are named
seed-*; the rest of the committed corpus is what libFuzzer added on top of
them (tests/fuzz/run.sh --merge keeps only inputs that add coverage).
"""
import hashlib
import hmac
import json
import os
import re
import sys
import base64

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, '..', '..'))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, 'corpus')


def read(path):
    with open(path, 'rb') as f:
        return f.read()


SAMPLE = read(os.path.join(ROOT, 'tests', 'data', 'northflank-build-start.json'))
VEC = json.load(open(os.path.join(ROOT, 'tests', 'data', 'signature-vectors.json')))


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, 'seed-' + name), 'wb') as f:
        f.write(data)


# ---- payload: JSON bodies, forms, and "\0\0" + dotted paths ----
deep = '{"a":' * 999 + '1' + '}' * 999
put('payload', 'northflank-build-start', SAMPLE)
put('payload', 'northflank-paths', SAMPLE + b'\0\0data.build.id\nevent\ndata.build.commit.sha\n\n.a\na..b')
put('payload', 'camel-and-arrays', '{"pullRequestId":7,"data":{"items":[{"name":"a"},{"name":"b"}],'
    '"v2Api":true,"HTTPServer":null,"__x__":"y","":"empty","a.b":"dot"}}\0\0data.items.1.name\ndata.v2Api')
put('payload', 'numbers', '{"big":123456789012345678901234,"neg":-0,"f":1.50,"e":1e400,'
    '"max":18446744073709551615,"min":-9223372036854775808,"over":-9223372036854775809,"arr":[0,-1,2.0E+3]}')
put('payload', 'leading-zero', '{"a":01}')
put('payload', 'strings', '{"nul":"a\\u0000b","uni":"\\u00e9\\ud83d\\ude00","esc":"\\"\\\\\\/\\b\\f\\n\\r\\t",'
    '"single":\'x\'}')
put('payload', 'duplicate-keys', '{"a":1,"a":2,"A":3,"b_":4,"B":5}')
put('payload', 'collisions', '{"event":"x","id":"y","hook":{"x":1},"remote_addr":"z"}')
put('payload', 'deep-1000', deep)
put('payload', 'deep-1001', '[' * 1001 + ']' * 1001)
put('payload', 'deep-1001-empty', '{"a":' + '[' * 1000 + ']' * 1000 + '}')
put('payload', 'deep-arrays', '{"a":' + '[' * 40 + '1,"x",null' + ']' * 40 + ',"b":' + '[' * 31 + '2' + ']' * 31 + '}')
put('payload', 'deep-objects', '{"a":' * 40 + '{"leaf":1}' + '}' * 40)
put('payload', 'not-object', '[1,2,3]')
put('payload', 'trailing', '{"a":1} x')
put('payload', 'trailing-nul', b'{"a":1}\0')
put('payload', 'empty', '')
put('payload', 'form-payload', 'payload=' + '%7B%22action%22%3A%22opened%22%2C%22number%22%3A1%7D')
put('payload', 'form-slash', VEC.get('slack', {}).get('body', 'command=%2Fdeploy&text=now'))
put('payload', 'form-bad', 'a=%zz&b')
put('payload', 'many-leaves', '{"a":[' + ','.join(['0'] * 1030) + ']}')

# ---- jsonscan: bodies, and "\0\0" + dotted paths, against json-c ----
put('jsonscan', 'northflank-build-start', SAMPLE + b'\0\0data.build.id\ndata.service.name')
put('jsonscan', 'lenient', '{\'a\':NaN,"b":Infinity,"c":1.,"d":"x\ty"}')
put('jsonscan', 'duplicates', '{"o":{"a":"x"},"o":{"b":1},"event":"a","event":"b"}\0\0o.a\no.b')
put('jsonscan', 'escapes', '{"ev\\u0065nt":"x","type":"a\\u003ab","id":"\\ud800"}')
put('jsonscan', 'slack', '{"type":"event_callback","event":{"type":"app_mention"},"event_id":"Ev1",'
    '"challenge":"c"}')
put('jsonscan', 'gitlab', '{"object_kind":"merge_request","object_attributes":{"action":"open"}}')
put('jsonscan', 'numbers', '{"a":[0,-0,-0.0,1e400,18446744073709551616,-9223372036854775809,01]}')
put('jsonscan', 'deep-1000', deep)
put('jsonscan', 'deep-1001', '[' * 1001 + ']' * 1001)
put('jsonscan', 'arrays', '{"items":[{"b":"x"}],"a":{"b":{"c":"deep"}}}\0\0items.0.b\na..b\n')

# ---- route: event names ----
for ev in ['build:start', 'build:success', 'build', 'addon-backup:start',
           'service:deployment:status-update', 'infrastructure:service:container-crash',
           'release-flow-template-run:aborted', 'cdn:action-delay', 'billing:invoice-paid',
           'pull_request:opened', 'payment_intent.succeeded', 'event_callback:app_mention',
           '_default', 'a::b', 'a:.b', 'a:', '1.2.3', 'a.b:c', 'deploy', 'pipe', 'broken',
           'link', 'link:x', 'build:start:now', '../x', 'a/b', '.a', '_x', 'a b', '',
           'x' * 128, 'x' * 129, 'a:' * 64, 'build\0start']:
    put('route', re.sub(r'[^A-Za-z0-9_.:-]', '_', ev)[:40] + '-' + str(len(ev)) +
        ('-' + hashlib.sha1(ev.encode()).hexdigest()[:6] if '/' in ev or ' ' in ev else ''), ev)

# ---- config: the shipped example, the README's examples, edge cases ----
configs = {'hookd.ini': read(os.path.join(ROOT, 'hookd.ini')).decode()}
readme = read(os.path.join(ROOT, 'README.md')).decode()
blocks = re.findall(r'```ini\n(.*?)```', readme, re.S)
configs['readme-all'] = '\n'.join(blocks)
configs['secret-file'] = ('[endpoint a]\npath = /a\nscheme = github\nsecret_file = secret.txt\n'
                          '[endpoint b]\npath = /b\nscheme = standard\nsecret_file = secret.txt\n')
configs['secret-env'] = ('[endpoint a]\npath = /a\nscheme = slack\nsecret_env = HOOKD_FUZZ_SECRET\n'
                         'tolerance = 1m\n')
configs['full-server'] = '''\ufeff[server]
listen = [::1]:9000
hooks_dir = /srv/hooks.d/
max_body = 64KiB
timeout = 250ms
kill_grace = 0
max_running = 1
max_queued = 0
env_prefix = WH_
pass_env = PATH HOME
include_output = yes
max_headers = 8K
max_connections = 10
read_timeout = 1h
idle_timeout = 30d
limit_nofile = 64
limit_nproc = 10
limit_memory = 1GiB
limit_cpu = 5
user = nobody
group = nogroup
trusted_proxies = 10.0.0.0/8 ::1
state_dir = state
journal_keep = 7d
journal_max = 10
journal_body_max = 0
log_format = json
[admin]
listen = unix:/run/hookd.sock
[endpoint x]
path = /x
scheme = hmac
secret = a b  c
algorithm = sha512
encoding = base64
signature_prefix = v1=
signature_header = X-Sig
event_header = X-Ev
id_header = X-Id
event_field = data.kind
mode = async
retries = 3
retry_backoff = 1s
serialize = data.id
allow_from = 192.168.0.0/16
[status]
0 = 200
1 = 422
75 = 503
default = 502
timeout = 408
[event build:success]
timeout = 10m
mode = sync
[event _default]
retries = 0
[endpoint x]
hooks_dir = other
'''
configs['errors'] = '[server]\ntimout = 1\n'
configs['dup-path'] = '[endpoint a]\npath = /a\nscheme = none\n[endpoint b]\npath = /a\nscheme = none\n'
configs['tls-half'] = '[server]\ntls_cert = c.pem\n[endpoint a]\npath=/a\nscheme=none\n'
configs['comments'] = '; c\n# c\n  [endpoint a] ; x\npath = /a ; inline\nscheme: none\n\n'
configs['nul'] = '[endpoint a]\npath = /a\0\n'
configs['long-line'] = '[endpoint a]\npath = /' + 'a' * 300 + '\nsecret = ' + 's ' * 400 + '\n'
for name, text in configs.items():
    put('config', name, text)

# ---- verify: [flags0][flags1] header lines, empty line, body ----
SCHEME = dict(northflank=0, github=1, gitlab=2, standard=3, stripe=4, slack=5, hmac=6, none=7,
              token=8, basic=9)  # the registry's order
CLOCK_SLACK, EMPTY_FIRST, NO_SECRET, SIGN, SHA1 = 8, 16, 32, 64, 128


def req(scheme, f0, f1, headers, body):
    """Past the eighth scheme, byte 1's algorithm bits are 3 (fuzz_verify.c)."""
    head = ''.join('%s: %s\r\n' % kv for kv in headers)
    b = body if isinstance(body, bytes) else body.encode()
    i = SCHEME[scheme]
    if i >= 8:
        f1 |= 3
    return bytes([(i & 7) | f0, f1]) + head.encode() + b'\r\n' + b


g = VEC.get('github', {})
if g:
    put('verify', 'github-vector', req('github', 0, 0, [('X-Hub-Signature-256', g['signature']),
        ('X-GitHub-Event', 'push'), ('X-GitHub-Delivery', '72d3162e-cc78-11e3-81ab-4c9367dc0958')],
        g['body']))
s = VEC.get('standard-webhooks', {})
if s:
    put('verify', 'standard-vector', req('standard', 0, 0, [('webhook-id', s['webhook-id']),
        ('webhook-timestamp', s['webhook-timestamp']),
        ('webhook-signature', 'v2,abc ' + s['invalid-signature'] + ' ' + s['webhook-signature'])],
        s['body']))
sl = VEC.get('slack', {})
if sl:
    put('verify', 'slack-vector', req('slack', CLOCK_SLACK, 0, [
        ('X-Slack-Request-Timestamp', sl['X-Slack-Request-Timestamp']),
        ('X-Slack-Signature', sl['X-Slack-Signature']),
        ('Content-Type', 'application/x-www-form-urlencoded')], sl['body']))
put('verify', 'northflank-signed', req('northflank', SIGN, 0, [
    ('Content-Type', 'application/json'),
    ('X-Northflank-Notification-Integration-Event-Type', 'build:start'),
    ('X-Northflank-Notification-Integration-Event-Id', 'evt-1')], SAMPLE))
put('verify', 'northflank-token', req('northflank', 0, 0, [
    ('X-Northflank-Notification-Integration-Token', "It's a Secret to Everybody")], SAMPLE))
put('verify', 'github-sha1-form', req('github', SIGN | SHA1, 0, [
    ('X-GitHub-Event', 'pull_request'), ('Content-Type', 'application/x-www-form-urlencoded')],
    'payload=%7B%22action%22%3A%22opened%22%7D'))
put('verify', 'gitlab-signed', req('gitlab', SIGN, 0, [('Idempotency-Key', 'k1'),
    ('X-Gitlab-Event-UUID', 'u1')],
    '{"object_kind":"merge_request","object_attributes":{"action":"open"}}'))
put('verify', 'standard-signed', req('standard', SIGN, 0, [('webhook-id', 'msg_1'),
    ('webhook-signature', 'v1a,x v1,short')], '{"type":"invoice.paid"}'))
put('verify', 'stripe-signed', req('stripe', SIGN, 0, [
    ('Stripe-Signature', 't=1,v0=abc,v1=00')], '{"id":"evt_1","type":"payment_intent.succeeded"}'))
put('verify', 'stripe-unsigned', req('stripe', 0, 0, [
    ('Stripe-Signature', 't=1614265330,v1=' + '0' * 64 + ',v1=zz')], '{"type":"x"}'))
put('verify', 'slack-event', req('slack', SIGN, 0, [('Content-Type', 'application/json; charset=utf-8')],
    '{"type":"event_callback","event":{"type":"app_mention"},"event_id":"Ev1"}'))
put('verify', 'slack-challenge', req('slack', SIGN, 0, [],
    '{"type":"url_verification","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}'))
put('verify', 'slack-interactive', req('slack', SIGN, 0, [
    ('Content-Type', 'application/x-www-form-urlencoded')],
    'payload=%7B%22type%22%3A%22block_actions%22%7D'))
for f1, name in [(0, 'hex'), (1 | 4, 'sha512-b64'), (2 | 8, 'sha1-prefix'), (16 | 32 | 64 | 128, 'headers')]:
    put('verify', 'hmac-' + name, req('hmac', SIGN, f1, [('X-Event', 'deploy:prod'), ('X-Delivery', 'd-1'),
        ('Content-Type', 'application/vnd.ci+json')], '{"event":"a.b","data":{"kind":"build:done"}}'))
put('verify', 'hmac-unsigned', req('hmac', 0, 4 | 8, [('X-Signature', 'sha256=AAAA')], '{}'))
put('verify', 'none', req('none', 0, 32 | 64, [('X-Event', 'local'), ('X-Delivery', 'x' * 300)], '{}'))
put('verify', 'token-signed', req('token', SIGN, 64, [('X-Delivery', 'd-2'),
    ('Content-Type', 'application/json')], '{"event":"alert","status":"firing"}'))
put('verify', 'token-prefixes', req('token', 0, 0, [('Authorization', 'bearer\tIt\'s a Secret to Everybody')],
    '{"event":"a"}'))
put('verify', 'token-no-space', req('token', 0, 0, [('Authorization', 'BearerIt\'s')], '{}'))
put('verify', 'basic-signed', req('basic', SIGN, 32, [('X-Event', 'up')], '{}'))
put('verify', 'basic-unpadded', req('basic', 0, 0, [
    ('Authorization', 'Basic ' + base64.b64encode(b"alice:It's a Secret to Everybody").decode().rstrip('='))],
    '{"event":"down"}'))
put('verify', 'basic-no-colon', req('basic', 0, 0, [('Authorization', 'basic YWxpY2U=')], ''))
put('verify', 'none-body', req('none', 0, 128, [('Content-Type', 'text/plain')], '{"data":{"kind":1}}'))

# ---- netaddr: CIDR list, peer, X-Forwarded-For ----
for name, text in {
    'proxies': '127.0.0.1 10.0.0.0/8 ::1\n127.0.0.1\n203.0.113.7, 10.1.2.3',
    'all-trusted': '10.0.0.0/8\n10.0.0.1\n10.0.0.2,10.0.0.3',
    'unknown': '::1\n::1\nunknown, 1.2.3.4:80',
    'mapped': '::ffff:10.0.0.0/104 fd00::/8\n::ffff:10.1.1.1\n2001:db8::1 , ::ffff:1.2.3.4',
    'github-ranges': '192.30.252.0/22 185.199.108.0/22 140.82.112.0/20 2a0a:a440::/29\n140.82.115.9\n',
    'bad-comma': '10.0.0.0/8,::1\n10.0.0.1\n1.1.1.1',
    'bad-prefix': '10.0.0.0/33 ::/129 1.2.3.4/ /8 1.2.3.4/-1 1.2.3.4/08\n1.2.3.4\n',
    'host-bits': '10.1.2.3/8 2001:db8::1/32 0.0.0.0/0 ::/0\n2001:db8:ffff::1\n  ,  ,',
    'empty-xff': '127.0.0.1\n127.0.0.1\n   ',
}.items():
    put('netaddr', name, text)

# ---- http: request heads as clients send them ----
body = SAMPLE.decode()
heads = {
    'northflank': 'POST /webhook HTTP/1.1\r\nHost: hooks.example.com\r\nContent-Type: application/json\r\n'
                  'Content-Length: %d\r\nX-Northflank-Notification-Integration-Token: t0ken\r\n'
                  'X-Northflank-Notification-Integration-Event-Type: build:start\r\n\r\n%s' % (len(body), body),
    'pipelined': 'POST /a HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}GET /b?x=1#f HTTP/1.1\r\n'
                 'Connection: close\r\n\r\n',
    'expect': 'POST /a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello',
    'chunked': 'POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
    'http10': 'POST /a HTTP/1.0\nConnection: keep-alive, Upgrade\nContent-Length:0\n\n',
    'lf-only': '\r\nGET / HTTP/1.1\nHost: x\n\n',
    'conflict': 'POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n',
    'same-length': 'POST / HTTP/1.1\r\nContent-length: 1\r\nCONTENT-LENGTH: 1\r\n\r\nx',
    'huge-length': 'POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n',
    'folded': 'POST / HTTP/1.1\r\nX-A: 1\r\n  folded\r\n\r\n',
    'bad-version': 'POST / HTTP/2.0\r\n\r\n',
    'ctl': 'POST / HTTP/1.1\r\nX-A: a\x01b\r\n\r\n',
    'tabs': 'POST /\tx HTTP/1.1\r\nX-A:\t v \t\r\n\r\n',
    'no-colon': 'POST / HTTP/1.1\r\nX-A\r\n\r\n',
    'empty-value': 'POST / HTTP/1.1\r\nX-A:\r\nX-B: \r\n\r\n',
    'head-then-post': 'HEAD /a HTTP/1.1\r\n\r\nPOST /a HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}',
}
for name, text in heads.items():
    put('http', name, text)

# ---- conn: [server flags] then the same bytes on a real connection ----
for name, text in heads.items():
    put('conn', name, b'\0' + text.encode())
    put('conn', name + '-deferred', b'\1' + text.encode())
put('conn', 'small-limits', b'\x0c' + heads['northflank'].encode())
put('conn', 'timeout', b'\x02' + heads['pipelined'].encode())
put('conn', 'close', b'\x11' + heads['pipelined'].encode())
put('conn', 'bytewise', b'\x40' + heads['expect'].encode())
put('conn', 'pieces-16-deferred', b'\x81' + heads['northflank'].encode())
put('conn', 'pieces-256-small', b'\xcc' + heads['northflank'].encode())
put('conn', 'linger', b'\x48' + heads['northflank'].encode())
put('conn', 'hang-up-deferred', b'\x21' + heads['expect'].encode())
put('conn', 'hang-up-pieces', b'\xa0' + heads['pipelined'].encode())
print('seeds written to', OUT)
