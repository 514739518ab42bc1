"""The official `openai` SDK against a running moltgate: chat, stream, error,
resume, embeddings, completions and responses.

Usage: python openai_sdk.py http://127.0.0.1:PORT/v1 KEY CANONICAL
The upstream is the fake provider, so model names choose its behaviour;
CANONICAL is its `fake-answer` text.
"""
import sys

import openai

base_url = sys.argv[1]
# A moltgate API key (operator.write), created by the test harness.
client = openai.OpenAI(base_url=base_url, api_key=sys.argv[2], max_retries=0, timeout=20)
msgs = [{"role": "user", "content": "hi"}]

# 1. Plain chat completion (streamed from the provider and assembled: the
# fake's stream text).
r = client.chat.completions.create(model="ollama/fake-ok", messages=msgs)
assert r.choices[0].message.content == "c0 c1 c2 ", r
assert r.usage.total_tokens == 8, r.usage
assert r.model == "ollama/fake-ok", r.model
assert r.usage.total_tokens == 8, r.usage
print("chat ok:", r.model)

# Raw response exposes which provider answered.
raw = client.chat.completions.with_raw_response.create(model="fake-ok", messages=msgs)
assert raw.headers["x-moltgate-provider"] == "ollama", raw.headers
print("headers ok")

# 2. Streaming.
text = ""
chunks = 0
for chunk in client.chat.completions.create(model="ollama/fake-stream-4", messages=msgs, stream=True):
    chunks += 1
    if chunk.choices and chunk.choices[0].delta.content:
        text += chunk.choices[0].delta.content
assert text == "c0 c1 c2 c3 ", repr(text)
print("stream ok:", chunks, "chunks")

# 3. Errors surface as SDK exceptions with our message.
try:
    client.chat.completions.create(model="ollama/fake-content-policy", messages=msgs)
    raise SystemExit("expected BadRequestError")
except openai.BadRequestError as e:
    assert e.status_code == 400
    assert e.code == "content_policy_violation", e.code
    assert "safety system" in e.message, e.message
    print("error ok:", e.code)

try:
    client.chat.completions.create(model="ollama/fake-503", messages=msgs)
    raise SystemExit("expected InternalServerError")
except openai.InternalServerError as e:
    assert e.status_code == 502, e.status_code
    assert "ollama/fake-503" in e.message, e.message
print("502 ok")

# 4. A stream cut after content raises instead of looking complete.
try:
    for _ in client.chat.completions.create(model="ollama/fake-cut-mid", messages=msgs, stream=True):
        pass
    raise SystemExit("expected APIError from a cut stream")
except openai.APIError as e:
    assert "incomplete" in str(e.message), e.message
print("cut stream ok")

# 5. With a fallback, a stream cut mid-answer is resumed there: the SDK
#    reads the whole answer, each word once.
canonical = sys.argv[3]
text = ""
for chunk in client.chat.completions.create(
    model="ollama/fake-answer-cut-5",
    messages=msgs,
    stream=True,
    extra_body={"fallbacks": ["ollama/fake-answer"]},
):
    if chunk.choices and chunk.choices[0].delta.content:
        text += chunk.choices[0].delta.content
assert text == canonical, repr(text)
print("resumed stream ok")

# 6. Embeddings, completions and responses, with a fallback after a 503.
fb = {"fallbacks": ["ollama/fake-ok"]}
e = client.embeddings.create(model="ollama/fake-503", input="hi", extra_body=fb)
assert e.data[0].embedding == [0.25, -0.5, 1.0], e
assert e.model == "ollama/fake-ok", e.model
c = client.completions.create(model="ollama/fake-503", prompt="hi", extra_body=fb)
assert c.choices[0].text == "Hello from fake", c
resp = client.responses.create(model="ollama/fake-503", input="hi", extra_body=fb)
assert resp.output_text == "Hello from fake", resp
assert resp.usage.input_tokens == 5, resp.usage
text = ""
for ev in client.responses.create(model="ollama/fake-stream-3", input="hi", stream=True):
    if ev.type == "response.output_text.delta":
        text += ev.delta
assert text == "c0 c1 c2 ", repr(text)
try:
    for _ in client.responses.create(model="ollama/fake-cut-mid", input="hi", stream=True):
        pass
    raise SystemExit("expected APIError from a cut Responses stream")
except openai.APIError as err:
    assert "incomplete" in str(err.message), err.message
print("embeddings, completions, responses ok")

print("ALL OK")
