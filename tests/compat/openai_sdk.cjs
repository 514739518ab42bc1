// The official `openai` Node SDK against a running moltgate: chat, a
// stream resumed through a cut, embeddings, responses, errors.
//
// Usage: node openai_sdk.cjs OPENAI_MODULE_DIR http://127.0.0.1:PORT/v1 KEY CANONICAL
// The upstream is the fake provider, so model names choose its behaviour;
// CANONICAL is its `fake-answer` text.
"use strict";
const assert = require("node:assert/strict");
const [moduleDir, baseURL, apiKey, canonical] = process.argv.slice(2);
const { OpenAI } = require(moduleDir);

async function main() {
  const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 20000 });
  const messages = [{ role: "user", content: "hi" }];

  const r = await client.chat.completions.create({ model: "ollama/fake-ok", messages });
  // Streamed from the provider and assembled: the fake's stream text.
  assert.equal(r.choices[0].message.content, "c0 c1 c2 ");
  assert.equal(r.model, "ollama/fake-ok");
  assert.equal(r.usage.total_tokens, 8);
  console.log("chat ok");

  // A stream cut after five words is resumed on the fallback: every word once.
  let text = "";
  const stream = await client.chat.completions.create({
    model: "ollama/fake-answer-cut-5",
    messages,
    stream: true,
    fallbacks: ["ollama/fake-answer"],
  });
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? "";
  }
  assert.equal(text, canonical);
  console.log("resumed stream ok");

  // Without a fallback the cut is an error, never a quiet end.
  await assert.rejects(async () => {
    const s = await client.chat.completions.create({ model: "ollama/fake-cut-mid", messages, stream: true });
    for await (const _ of s) {
    }
  }, (e) => e instanceof OpenAI.APIError && /incomplete/.test(e.message));
  console.log("cut stream ok");

  const fallbacks = ["ollama/fake-ok"];
  const e = await client.embeddings.create({ model: "ollama/fake-503", input: "hi", fallbacks, encoding_format: "float" });
  assert.deepEqual(e.data[0].embedding, [0.25, -0.5, 1.0]);
  assert.equal(e.model, "ollama/fake-ok");
  const resp = await client.responses.create({ model: "ollama/fake-503", input: "hi", fallbacks });
  assert.equal(resp.output_text, "Hello from fake");
  let deltas = "";
  for await (const ev of await client.responses.create({ model: "ollama/fake-stream-3", input: "hi", stream: true })) {
    if (ev.type === "response.output_text.delta") deltas += ev.delta;
  }
  assert.equal(deltas, "c0 c1 c2 ");
  console.log("embeddings, responses ok");

  await assert.rejects(
    client.chat.completions.create({ model: "ollama/fake-content-policy", messages }),
    (err) => err instanceof OpenAI.BadRequestError && err.code === "content_policy_violation",
  );
  console.log("error ok");
  console.log("ALL OK");
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
