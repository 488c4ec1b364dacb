#!/usr/bin/env python3
"""Writes the seed corpus, fuzz/corpus/<target>/seed-*, from what the repository already
holds: the providers' signature vectors (crates/hookline_providers/tests/vectors), the
presets' key templates, the config files and the unit tests' bodies.

Run it again after adding a vector (`python3 fuzz/seeds.py`); it rewrites only seed-*
files, so inputs libFuzzer found and merged (named by their hash) stay. The input format
of each target is documented at the top of fuzz/src/<target>.rs.
"""

import base64
import hashlib
import hmac
import json
import os
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
VECTORS = json.load(
    open(os.path.join(ROOT, "crates/hookline_providers/tests/vectors/providers.json"))
)
T0_MS = 1_735_689_600_000


def write(target, name, data):
    if isinstance(data, str):
        data = data.encode()
    directory = os.path.join(CORPUS, target)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "seed-" + name), "wb") as f:
        f.write(data)


def request(name, now_ms, query, headers, body):
    """verify_raw's format: verifier, now, query, headers, empty line, body."""
    lines = [name, str(now_ms), query] + [f"{k}: {v}" for k, v in headers]
    return ("\n".join(lines) + "\n\n").encode() + (body.encode() if isinstance(body, str) else body)


def mac(algorithm, key, *pieces):
    return hmac.new(key.encode(), b"".join(p.encode() if isinstance(p, str) else p for p in pieces), algorithm).digest()


def form(params):
    return "&".join(
        urllib.parse.quote(k, safe="-._~") + "=" + urllib.parse.quote(v, safe="-._~")
        for k, v in params
    )


def verify_raw():
    for i, v in enumerate(VECTORS["standard_webhooks"]):
        hs = [("webhook-id", v["webhook_id"]), ("webhook-timestamp", v["webhook_timestamp"]),
              ("webhook-signature", v["webhook_signature"])]
        write("verify_raw", f"standard-webhooks-{i}",
              request("standard-webhooks", int(v["webhook_timestamp"]) * 1000, "", hs, v["body"]))
    for i, v in enumerate(VECTORS["svix"]):
        hs = [("svix-id", v["svix_id"]), ("svix-timestamp", v["svix_timestamp"]),
              ("svix-signature", v["svix_signature"])]
        write("verify_raw", f"svix-{i}", request("svix", int(v["svix_timestamp"]) * 1000, "", hs, v["body"]))
    for i, v in enumerate(VECTORS["stripe"]):
        write("verify_raw", f"stripe-{i}",
              request("stripe", T0_MS, "", [("Stripe-Signature", v["stripe_signature"])], v["body"]))
    for i, v in enumerate(VECTORS["github"]):
        hs = [("X-Hub-Signature-256", v["x_hub_signature_256"])]
        if "x_github_delivery" in v:
            hs += [("X-GitHub-Delivery", v["x_github_delivery"]), ("X-GitHub-Event", v["x_github_event"])]
        write("verify_raw", f"github-{i}", request("github", T0_MS, "", hs, v["body"]))
        legacy = "sha1=" + mac(hashlib.sha1, v["secret"], v["body"]).hex()
        write("verify_raw", f"github-legacy-{i}",
              request("github", T0_MS, "", [("X-Hub-Signature", legacy)], v["body"]))
    for i, v in enumerate(VECTORS["shopify"]):
        write("verify_raw", f"shopify-{i}", request("shopify", T0_MS, "", v["headers"].items(), v["body"]))
    for i, v in enumerate(VECTORS["slack"]):
        hs = [("X-Slack-Request-Timestamp", v["x_slack_request_timestamp"]),
              ("X-Slack-Signature", v["x_slack_signature"])]
        now = int(v["x_slack_request_timestamp"]) * 1000
        write("verify_raw", f"slack-{i}", request("slack", now, "", hs, v["body"]))
    for i, v in enumerate(VECTORS["retell"]):
        header = v["x_retell_signature"]
        now = int(header.split(",")[0].removeprefix("v="))
        write("verify_raw", f"retell-{i}", request("retell", now, "", [("X-Retell-Signature", header)], v["body"]))
    for i, v in enumerate(VECTORS["paystack"]):
        write("verify_raw", f"paystack-{i}",
              request("paystack", T0_MS, "", [("x-paystack-signature", v["x_paystack_signature"])], v["body"]))
    for i, v in enumerate(VECTORS["twilio"]):
        _, query = v["url"].split("?", 1)
        hs = [("X-Twilio-Signature", v["x_twilio_signature"])]
        if "x_twilio_webhooks_signature_settings" in v:
            hs.append(("X-Twilio-Webhooks-Signature-Settings", v["x_twilio_webhooks_signature_settings"]))
        if "body" in v:
            name, body = "twilio-json", v["body"]
        else:
            name = "twilio-sha256" if "secret" in v else "twilio"
            body = form(reversed(list(v["params"].items())))
        write("verify_raw", f"{name}-{i}", request(name, T0_MS, query, hs, body))
    for i, v in enumerate(VECTORS["flutterwave"]):
        both = [("verif-hash", v["verif_hash"]), ("flutterwave-signature", v["flutterwave_signature"])]
        for j, hs in enumerate([both, both[:1], both[1:]]):
            write("verify_raw", f"flutterwave-{i}-{j}", request("flutterwave", T0_MS, "", hs, v["body"]))
    for i, v in enumerate(VECTORS["apify"]):
        _, query = v["request_url"].split("?", 1)
        hs = list(v["headers"].items())
        write("verify_raw", f"apify-{i}", request("apify", T0_MS, query, [h for h in hs if h[0] != "Authorization"], v["body"]))
        write("verify_raw", f"apify-bearer-{i}", request("apify-bearer", T0_MS, "", hs, v["body"]))
    body = VECTORS["apify"][0]["body"]
    write("verify_raw", "token-header", request("token", T0_MS, "", [("X-Hookline-Token", "fuzz-token-0123456789")], body))
    write("verify_raw", "token-query", request("token", T0_MS, "token=fuzz-token-0123456789", [], body))
    refersion = '{"id":"ord_1","total":"12.00"}'
    write("verify_raw", "refersion", request("refersion", T0_MS, "", [
        ("Refersion-Topic", "order.created"),
        ("Refersion-Signature", base64.b64encode(mac(hashlib.sha256, "fuzz-refersion-secret", refersion)).decode()),
    ], refersion))
    ts, xid, a = "1735689600", "evt_1", "q v"
    signature = "v1=" + mac(hashlib.sha512, "fuzz-hmac-secret", ts, ".", xid, ".", a, ".", refersion).hex()
    write("verify_raw", "hmac-parts", request("hmac-parts", T0_MS, "a=q+v", [
        ("X-Timestamp", ts), ("X-Id", xid), ("X-Signature", signature)], refersion))


# verify_signed's schemes (fuzz/src/verify_signed.rs SCHEMES) and a vector body for each.
SIGNED = {
    "token": ("apify", "<secret in URL>"),
    "token-query": ("apify", "<secret in URL>"),
    "token-bearer": ("apify", "<token you put in headersTemplate>"),
    "apify": ("apify", "<secret in URL>"),
    "hmac": ("github", "gh-webhook-secret"),
    "hmac-sha1-base64-prefixed": ("github", "It's a Secret to Everybody"),
    "hmac-sha512-timestamped": ("paystack", "sk_test_0123456789abcdef0123456789abcdef01234567"),
    "hmac-parts": ("stripe", "whsec_test_secret"),
    "refersion": ("shopify", "refersion secret"),
    "standard-webhooks": ("standard_webhooks", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    "svix": ("svix", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    "stripe": ("stripe", "whsec_test_secret"),
    "github": ("github", "It's a Secret to Everybody"),
    "github-legacy-sha1": ("github", "gh-webhook-secret"),
    "shopify": ("shopify", "shpss_test_client_secret"),
    "slack": ("slack", "8f742231b10e8888abcd99yyyzzz85a5"),
    "retell": ("retell", "key_test_retell_webhook_badge"),
    "paystack": ("paystack", "sk_test_0123456789abcdef0123456789abcdef01234567"),
    "twilio": ("slack", "12345"),
    "twilio-json": ("flutterwave", "12345"),
    "twilio-sha256": ("slack", "webhooks_sharedkey_secret"),
    "flutterwave": ("flutterwave", "my-flw-secret-hash"),
    "flutterwave-v3": ("flutterwave", "my-flw-secret-hash"),
}


def verify_signed():
    for scheme, (provider, secret) in SIGNED.items():
        body = VECTORS[provider][0].get("body", "a=1&b=2")
        for tamper in range(12):
            skew = [0, -299_000, 299_000, 59_000][tamper % 4]
            lines = [scheme, secret, "another-secret", str(T0_MS), str(skew),
                     str(tamper + 12 * 7), "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", "q=1 &x"]
            write("verify_signed", f"{scheme}-{tamper}", "\n".join(lines) + "\n" + body)


def template():
    templates = [
        "{header:webhook-id|header:svix-id}", "{json:/id}", "{header:x-github-delivery}",
        "{header:x-shopify-webhook-id}", "{json:/event_id}", "{json:/event}:{json:/call/call_id}",
        "{json:/event}:{json:/data/id}", "{json:/data/reference|json:/data/id}", "{json:/data/status}",
        "{header:i-twilio-idempotency-token|form:MessageSid|form:CallSid}:{form:MessageStatus|form:SmsStatus|form:CallStatus?}",
        "{json:/eventData/actorRunId}:{json:/eventType}", "{json:/resource/status}",
        "{header:refersion-topic}:{json:/id}", "{source}-{json:/n}", "{query:run}", "{{literal}}",
        "{header:a?}x", "{json:/a~1b/%7E0}", "{json:/list/0}", "{json:/eventData}",
    ]
    bodies = [
        (v["body"], list(v.get("headers", {}).items()))
        for provider in ("apify", "stripe", "retell", "paystack", "flutterwave", "shopify", "slack")
        for v in VECTORS[provider][:1]
    ] + [
        (form(VECTORS["twilio"][0]["params"].items()), [("I-Twilio-Idempotency-Token", "idem-1")]),
        ('{"a/b":{"~0":"x"},"list":[1,null,"z"],"n":7,"id":null}', [("webhook-id", "msg_1")]),
    ]
    for i, text in enumerate(templates):
        body, headers = bodies[i % len(bodies)]
        lines = [text, "run=r%2F2&token=x"] + [f"{k}: {v}" for k, v in headers]
        write("template", f"{i:02}", "\n".join(lines) + "\n\n" + body)


def form_seeds():
    seeds = [
        "a=1&token=s%2Fx+y", "flag&a=1", "t=%2B1%", "t=%zz%41%4", "b=2&&a=%FF", "100%", "%+1",
        "/a+b%2Fc", "=&=x&y=", VECTORS["slack"][0]["body"], form(VECTORS["twilio"][0]["params"].items()),
        VECTORS["apify"][0]["request_url"].split("?", 1)[1],
        VECTORS["twilio"][1]["url"].split("?", 1)[1],
    ]
    for i, seed in enumerate(seeds):
        write("form", f"{i:02}", seed)


def envelope():
    one = {"v": 1, "event_id": "0193a5f4-7c1e-7b3a-9f00-000000000001", "source": "apify",
           "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "attempt": 1}
    two = {"event_id": "0193a5f4-7c1e-7b3a-9f00-000000000002", "source": "stripe"}
    seeds = [
        json.dumps(one), json.dumps({**one, "attempt": 7}), json.dumps({"v": 1, **two}),
        json.dumps({"v": 2, "events": [one, two]}), json.dumps({"v": 2, "events": []}),
        '{"v":3}', "garbage", '{"v":1,"event_id":"not-a-uuid","source":"x"}',
        '{"v":2,"events":[{"v":1,"event_id":"00000000-0000-0000-0000-000000000000","source":"x","attempt":4294967295}]}',
    ]
    for i, seed in enumerate(seeds):
        write("envelope", f"{i:02}", seed)


def config():
    for name in ("hookline.example.toml", "hookline.toml"):
        write("config", name.removesuffix(".toml"), open(os.path.join(ROOT, "config", name)).read())
    presets = ["standard-webhooks", "svix", "stripe", "github", "shopify", "slack", "retell",
               "paystack", "flutterwave", "apify", "refersion"]
    for preset in presets:
        write("config", f"preset-{preset}", f'[sources.{preset}]\npreset = "{preset}"\nsecrets = ["whsec_c2VjcmV0"]\n')
    write("config", "twilio", '[sources.twilio]\npreset = "twilio"\nsecrets = ["t"]\n'
          'public_url = "https://h.example/webhooks/twilio"\nalgorithm = "sha256"\n')
    write("config", "custom", '''[http]
addr = "127.0.0.1:0"
max_body_bytes = 4096

[admin]
token = "env:HOOKLINE_ADMIN_TOKEN"

[sources.orders]
verifier = "hmac"
secrets = ["a", "b"]
signature_header = "X-Sig"
algorithm = "sha512"
encoding = "base64"
signature_prefix = "v1="
signed_content = "{timestamp}.{header:x-id}.{body}"
timestamp_header = "x-ts"
tolerance_secs = 60
dedup_key = "{header:x-id}"
resource_key = "{json:/order/id}"
status = "{json:/order/status}"
lifecycle = "order"

[lifecycles.order]
ranks = [["new"], ["paid", "cancelled"], ["shipped"]]
terminal = ["cancelled", "shipped"]
''')
    write("config", "durations", 'request_timeout = "8s"\ndedup_horizon = "7d"\ninterval = "1h"\ntimeout = "250ms"\n')


if __name__ == "__main__":
    verify_raw()
    verify_signed()
    template()
    form_seeds()
    envelope()
    config()
