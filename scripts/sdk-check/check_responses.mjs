// Checks the openai TypeScript SDK's Responses API calls against a running gateway, with
// non-OpenAI models. Usage: GATEWAY=http://127.0.0.1:18400 node check_responses.mjs (from a
// directory whose node_modules holds `openai`). Prints `PASS name` / `FAIL name: reason`.
import OpenAI from "openai";

const GATEWAY = (process.env.GATEWAY ?? "http://127.0.0.1:18400").replace(/\/$/, "");
const MODEL = "deepseek/deepseek-chat";
const CLAUDE = "anthropic/claude-sonnet-4.5";
const TOOLS = [{
  type: "function", name: "get_weather", description: "Weather for a city", strict: false,
  parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
}];
const TOOL_TURN = [
  { role: "user", content: "Weather in Paris?" },
  { type: "function_call", call_id: "call_1", name: "get_weather", arguments: '{"city":"Paris"}' },
  { type: "function_call_output", call_id: "call_1", output: "18C, sunny" },
];

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

const oa = new OpenAI({ baseURL: `${GATEWAY}/api/v1`, apiKey: "anything", maxRetries: 0 });

await check("node.openai.responses.create", async () => {
  const r = await oa.responses.create({ model: MODEL, instructions: "Be brief.", input: "Hello" });
  expect(r.id.startsWith("gen-"), `id ${r.id}`);
  expect(r.status === "completed", `status ${r.status}`);
  expect(r.output_text, "no output_text");
  expect(r.usage?.input_tokens > 0 && r.usage?.output_tokens > 0, `usage ${JSON.stringify(r.usage)}`);
});

await check("node.openai.responses.create(stream)", async () => {
  const s = await oa.responses.create({ model: MODEL, input: "Hello", stream: true });
  const kinds = [];
  let text = "";
  let final;
  for await (const ev of s) {
    kinds.push(ev.type);
    if (ev.type === "response.output_text.delta") text += ev.delta;
    if (ev.type === "response.completed") final = ev.response;
  }
  expect(kinds[0] === "response.created" && kinds.at(-1) === "response.completed", `events ${kinds[0]} … ${kinds.at(-1)}`);
  expect(text && final.output.find((o) => o.type === "message").content[0].text === text, "deltas disagree");
  expect(final.usage.output_tokens > 0, "no usage");
});

await check("node.openai.responses.stream(helper, final response)", async () => {
  const s = oa.responses.stream({ model: MODEL, input: "Hello" });
  for await (const _ev of s) { /* drain */ }
  const r = await s.finalResponse();
  expect(r.output_text, "no output_text");
  expect(r.usage.total_tokens > 0, "no usage");
});

await check("node.openai.responses.tools(function_call round trip)", async () => {
  const r = await oa.responses.create({ model: MODEL, input: TOOL_TURN, tools: TOOLS, tool_choice: "auto" });
  expect(r.status === "completed" && r.output.length, `status ${r.status}`);
  expect(r.tools?.[0]?.name === "get_weather", "tools not echoed");
});

await check("node.openai.responses.tools(stream, anthropic-wire provider)", async () => {
  const s = await oa.responses.create({ model: CLAUDE, input: TOOL_TURN, tools: TOOLS, stream: true });
  let final;
  for await (const ev of s) if (ev.type === "response.completed") final = ev.response;
  expect(final?.output?.length, "no completed response");
});

await check("node.openai.responses.err.previous_response_id(400)", async () => {
  try {
    await oa.responses.create({ model: MODEL, input: "Hi", previous_response_id: "resp_1" });
  } catch (e) {
    expect(e instanceof OpenAI.BadRequestError, `raised ${e?.constructor?.name}`);
    expect(String(e.message).includes("previous_response_id"), `message ${e.message}`);
    return;
  }
  throw new Error("no BadRequestError");
});

console.log(`node responses: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
