// Checks the official TypeScript SDKs (openai, @anthropic-ai/sdk, @openrouter/sdk) against a
// running gateway. Usage: GATEWAY=http://127.0.0.1:18400 node check_node.mjs (from a directory
// whose node_modules holds the SDKs). Prints `PASS name` / `FAIL name: reason`; exits 1 on failure.
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";

const GATEWAY = (process.env.GATEWAY ?? "http://127.0.0.1:18400").replace(/\/$/, "");
const DEMO_KEY = "sk-demo-small-budget";
const MODEL = "openai/gpt-4o-mini";
const CLAUDE = "anthropic/claude-sonnet-4.5";
const UNKNOWN = "nobody/no-such-model";
const HELLO = [{ role: "user", content: "Hello" }];

let passed = 0;
let failed = 0;

async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`PASS ${name}`);
  } catch (e) {
    failed++;
    const msg = `${e?.constructor?.name ?? "Error"}: ${e?.message ?? e}`.replace(/\n/g, " ").slice(0, 400);
    console.log(`FAIL ${name}: ${msg}`);
    if (process.env.VERBOSE) console.error(e);
  }
}

function expect(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function expectRaises(cls, fn, status, contains) {
  try {
    await fn();
  } catch (e) {
    expect(e instanceof cls, `raised ${e?.constructor?.name}: ${e?.message}, expected ${cls.name}`);
    if (status !== undefined) expect(e.status === status || e.statusCode === status, `status ${e.status ?? e.statusCode}, expected ${status}`);
    if (contains) expect(String(e.message).toLowerCase().includes(contains.toLowerCase()), `message ${e.message} lacks ${contains}`);
    return e;
  }
  throw new Error(`expected ${cls.name}, nothing raised`);
}

// ---------------------------------------------------------------- openai
const oa = new OpenAI({ baseURL: `${GATEWAY}/api/v1`, apiKey: "anything", maxRetries: 0 });
const oaDemo = new OpenAI({ baseURL: `${GATEWAY}/api/v1`, apiKey: DEMO_KEY, maxRetries: 0 });

await check("node.openai.chat.create", async () => {
  const r = await oa.chat.completions.create({ model: MODEL, messages: HELLO, max_tokens: 16 });
  expect(r.choices[0].message.content, "no content");
  expect(r.usage?.total_tokens > 0, "no usage");
  expect(r.provider, "no provider");
});

await check("node.openai.chat.stream+include_usage", async () => {
  const s = await oa.chat.completions.create({
    model: MODEL, messages: HELLO, max_tokens: 16, stream: true, stream_options: { include_usage: true },
  });
  let text = "";
  let usage = null;
  for await (const c of s) {
    if (c.choices.length) text += c.choices[0].delta.content ?? "";
    if (c.usage) usage = c.usage;
  }
  expect(text, "no text");
  expect(usage?.completion_tokens > 0, "no usage");
});

await check("node.openai.chat.tools+response_format+extra", async () => {
  const tools = [{ type: "function", function: { name: "f", parameters: { type: "object", properties: {} } } }];
  const r = await oa.chat.completions.create({
    model: MODEL, messages: HELLO, max_tokens: 8, tools, tool_choice: "auto",
    response_format: { type: "json_object" },
    provider: { sort: "price" }, models: [MODEL, "deepseek/deepseek-chat"],
  });
  expect(r.choices.length, "no choices");
});

await check("node.openai.models.list", async () => {
  const ids = [];
  for await (const m of oa.models.list()) ids.push(m.id);
  expect(ids.includes(MODEL), `${MODEL} missing`);
});

// OpenRouter answers an unknown model id with 400 "… is not a valid model ID" on its own routes.
await check("node.openai.err.unknown_model(400 BadRequestError, as OpenRouter)", () =>
  expectRaises(OpenAI.BadRequestError, () => oa.chat.completions.create({ model: UNKNOWN, messages: HELLO }), 400, UNKNOWN));

await check("node.openai.err.bad_field(400 BadRequestError)", () =>
  expectRaises(OpenAI.BadRequestError, () => oa.chat.completions.create({ model: MODEL, messages: HELLO, max_tokens: "lots" }), 400, "max_tokens"));

await check("node.openai.err.budget(402 APIError)", () =>
  expectRaises(OpenAI.APIError, () => oaDemo.chat.completions.create({ model: CLAUDE, messages: HELLO, max_tokens: 60000 }), 402));

// ---------------------------------------------------------------- anthropic
for (const suffix of ["/api", ""]) {
  const tag = `node.anthropic[${suffix || "/"}]`;
  const an = new Anthropic({ baseURL: `${GATEWAY}${suffix}`, apiKey: "anything", maxRetries: 0 });
  const anDemo = new Anthropic({ baseURL: `${GATEWAY}${suffix}`, apiKey: DEMO_KEY, maxRetries: 0 });

  await check(`${tag}.messages.create`, async () => {
    const m = await an.messages.create({ model: MODEL, max_tokens: 32, messages: HELLO });
    expect(m.content[0]?.text, "no text");
    expect(m.usage.output_tokens > 0, "no usage");
  });

  await check(`${tag}.messages.stream`, async () => {
    const s = an.messages.stream({ model: MODEL, max_tokens: 32, messages: HELLO });
    let text = "";
    s.on("text", (t) => { text += t; });
    const final = await s.finalMessage();
    expect(text && final.content[0].text === text, "text mismatch");
  });

  await check(`${tag}.tools(tool_use->tool_result)+thinking+system`, async () => {
    const m = await an.messages.create({
      model: CLAUDE, max_tokens: 2048,
      thinking: { type: "enabled", budget_tokens: 1024 },
      system: [{ type: "text", text: "Be terse.", cache_control: { type: "ephemeral" } }],
      tools: [{ name: "get_weather", input_schema: { type: "object", properties: { city: { type: "string" } } } }],
      messages: [
        { role: "user", content: "Weather?" },
        { role: "assistant", content: [{ type: "tool_use", id: "toolu_1", name: "get_weather", input: { city: "Paris" } }] },
        { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_1", content: "sunny" }] },
      ],
    });
    expect(m.content.length, "no content");
  });

  await check(`${tag}.messages.countTokens`, async () => {
    const r = await an.messages.countTokens({ model: MODEL, messages: HELLO });
    expect(r.input_tokens > 0, "no count");
  });

  await check(`${tag}.models.list`, async () => {
    const ids = [];
    for await (const m of an.models.list()) ids.push(m.id);
    expect(ids.includes(MODEL), `${MODEL} missing`);
  });

  await check(`${tag}.err.unknown_model(404 NotFoundError)`, () =>
    expectRaises(Anthropic.NotFoundError, () => an.messages.create({ model: UNKNOWN, max_tokens: 8, messages: HELLO }), 404, UNKNOWN));

  await check(`${tag}.err.bad_field(400 BadRequestError)`, () =>
    expectRaises(Anthropic.BadRequestError, () => an.messages.create({ model: MODEL, max_tokens: "lots", messages: HELLO }), 400, "max_tokens"));

  await check(`${tag}.err.budget(402 APIError)`, () =>
    expectRaises(Anthropic.APIError, () => anDemo.messages.create({ model: CLAUDE, max_tokens: 20000, messages: HELLO }), 402));
}

// ---------------------------------------------------------------- openrouter
let OpenRouter;
let orErrors;
try {
  ({ OpenRouter } = await import("@openrouter/sdk"));
  orErrors = await import("@openrouter/sdk/models/errors");
} catch (e) {
  console.log(`FAIL node.openrouter.import: ${e.message}`);
  failed++;
}
if (OpenRouter) {
  const orc = new OpenRouter({ apiKey: "anything", serverURL: `${GATEWAY}/api/v1` });
  const orcDemo = new OpenRouter({ apiKey: DEMO_KEY, serverURL: `${GATEWAY}/api/v1` });

  await check("node.openrouter.chat.send", async () => {
    const r = await orc.chat.send({
      chatRequest: { model: MODEL, messages: HELLO, maxTokens: 16, stream: false, provider: { sort: "price" } },
    });
    expect(r.choices[0].message.content, "no content");
    expect(r.usage?.totalTokens > 0, "no usage");
  });

  await check("node.openrouter.chat.send(stream)", async () => {
    const s = await orc.chat.send({
      chatRequest: { model: MODEL, messages: HELLO, maxTokens: 16, stream: true, streamOptions: { includeUsage: true } },
    });
    let text = "";
    let usage = null;
    for await (const c of s) {
      if (c.error) throw new Error(`error chunk ${JSON.stringify(c.error)}`);
      if (c.choices?.length) text += c.choices[0].delta?.content ?? "";
      if (c.usage) usage = c.usage;
    }
    expect(text, "no text");
    expect(usage, "no usage");
  });

  await check("node.openrouter.models.list", async () => {
    const page = await orc.models.list();
    const data = page.result?.data ?? page.data;
    expect(data?.some((m) => m.id === MODEL), `${MODEL} missing`);
  });

  await check("node.openrouter.err.unknown_model(400 BadRequestResponseError, as OpenRouter)", () =>
    expectRaises(orErrors.BadRequestResponseError, () => orc.chat.send({ chatRequest: { model: UNKNOWN, messages: HELLO, stream: false } }), 400, UNKNOWN));

  await check("node.openrouter.err.budget(402 PaymentRequiredResponseError)", () =>
    expectRaises(orErrors.PaymentRequiredResponseError, () => orcDemo.chat.send({ chatRequest: { model: CLAUDE, messages: HELLO, maxTokens: 60000, stream: false } }), 402));
}

console.log(`node: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
