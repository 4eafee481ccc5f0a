import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createOpenAI } from '@ai-sdk/openai';
import { ChatOpenAI, OpenAIEmbeddings } from '@langchain/openai';
import { generateText, streamText, tool } from 'ai';
import OpenAI from 'openai';
import { z } from 'zod';
import { embeddingVector } from '../src/simulator/simulator.responses';
import { words } from './support/http';
import { GatewayStack, startStack } from './support/stack';

/** The simulator's vector for `text`, as float32 (what a base64 embedding carries: little-endian, as on this machine). */
const float32Vector = (text: string) => embeddingVector(text).map((value) => Math.fround(value));

const weatherParameters = {
  type: 'object',
  properties: {
    city: { type: 'string' },
    unit: { type: 'string', enum: ['celsius', 'fahrenheit'] },
    days: { type: 'integer', minimum: 1, maximum: 7 },
    detailed: { type: 'boolean' },
    place: { type: 'object', properties: { lat: { type: 'number' }, lon: { type: 'number' } }, required: ['lat', 'lon'] },
  },
  required: ['city', 'unit', 'days', 'detailed', 'place'],
  additionalProperties: false,
} as const;

/** Asserts that `args` fits weatherParameters: every required property with its declared type. */
function assertWeatherArgs(args: any): void {
  assert.equal(typeof args.city, 'string');
  assert.ok(['celsius', 'fahrenheit'].includes(args.unit), `unit ${args.unit}`);
  assert.ok(Number.isInteger(args.days) && args.days >= 1 && args.days <= 7, `days ${args.days}`);
  assert.equal(typeof args.detailed, 'boolean');
  assert.equal(typeof args.place.lat, 'number');
  assert.equal(typeof args.place.lon, 'number');
}

const weatherTool: OpenAI.Chat.ChatCompletionTool = {
  type: 'function',
  function: { name: 'get_weather', description: 'Weather forecast for a city', parameters: weatherParameters },
};

describe('client matrix: openai, Vercel AI SDK and LangChain against Bulwark and its simulator', () => {
  let stack: GatewayStack;
  let baseURL: string;
  let client: OpenAI;

  before(async () => {
    stack = await startStack({ env: { REQUEST_TIMEOUT_MS: '10000', RETRY_MAX_ATTEMPTS: '1' } });
    baseURL = `${stack.url}/v1`;
    client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0, timeout: 20_000 });
  });

  after(() => stack?.stop());

  describe('openai', () => {
    it('creates a response through the Responses API', async () => {
      const { data: response, response: raw } = await client.responses.create({ model: 'sim-small', input: 'Say hello' }).withResponse();
      assert.equal(response.object, 'response');
      assert.equal(response.status, 'completed');
      assert.equal(response.model, 'sim-small');
      assert.equal(response.output_text, words(8));
      assert.equal(response.usage?.output_tokens, 8);
      assert.equal(response.usage?.input_tokens, 2);
      assert.equal(raw.headers.get('x-model'), 'sim-small');
      assert.equal(raw.headers.get('x-fallback-from'), null);
    });

    it('streams a response: typed text deltas arrive before the response completes', async () => {
      const stream = await client.responses.create({ model: 'sim-small', input: 'Say hello', stream: true });
      const types: string[] = [];
      let text = '';
      let completed: OpenAI.Responses.Response | undefined;
      for await (const event of stream) {
        types.push(event.type);
        if (event.type === 'response.output_text.delta') text += event.delta;
        if (event.type === 'response.completed') completed = event.response;
      }
      assert.equal(types[0], 'response.created');
      assert.equal(types.at(-1), 'response.completed');
      assert.equal(types.filter((t) => t === 'response.output_text.delta').length, 8);
      assert.ok(types.indexOf('response.output_text.delta') < types.indexOf('response.completed'));
      assert.equal(text, words(8));
      assert.equal(completed?.output_text ?? (completed?.output[0] as any)?.content[0].text, words(8));
    });

    it('retrieves a model, and answers 404 model_not_found for one no upstream serves', async () => {
      const model = await client.models.retrieve('sim-small');
      assert.deepEqual([model.id, model.object, typeof model.created, typeof model.owned_by], ['sim-small', 'model', 'number', 'string']);
      const error = await client.models.retrieve('no-such-model').then(
        () => assert.fail('expected a 404'),
        (e: unknown) => e,
      );
      assert.ok(error instanceof OpenAI.NotFoundError);
      assert.equal(error.code, 'model_not_found');
    });

    it('answers n: 2 with two choices', async () => {
      const completion = await client.chat.completions.create({ model: 'sim-small', messages: [{ role: 'user', content: 'hi' }], n: 2, max_tokens: 3 });
      assert.deepEqual(completion.choices.map((c) => [c.index, c.message.content, c.finish_reason]), [
        [0, words(3), 'length'],
        [1, words(3), 'length'],
      ]);
      assert.equal(completion.usage?.completion_tokens, 6);
    });

    it('calls a tool with arguments valid for its schema', async () => {
      const completion = await client.chat.completions.create({ model: 'sim-small', messages: [{ role: 'user', content: 'Weather in Paris?' }], tools: [weatherTool] });
      const choice = completion.choices[0];
      assert.equal(choice.finish_reason, 'tool_calls');
      const call = choice.message.tool_calls?.[0];
      assert.ok(call && call.type === 'function');
      assert.equal(call.function.name, 'get_weather');
      assertWeatherArgs(JSON.parse(call.function.arguments));
    });

    it('streams a tool call as argument deltas that add up to the same arguments', async () => {
      const body = { model: 'sim-small', messages: [{ role: 'user' as const, content: 'Weather in Paris?' }], tools: [weatherTool] };
      const plain = await client.chat.completions.create(body);
      const stream = await client.chat.completions.create({ ...body, stream: true });
      let args = '';
      let deltas = 0;
      let name: string | undefined;
      let finish: string | null = null;
      for await (const chunk of stream) {
        const delta = chunk.choices[0]?.delta;
        const call = delta?.tool_calls?.[0];
        if (call?.function?.name) name = call.function.name;
        if (call?.function?.arguments) {
          args += call.function.arguments;
          deltas++;
        }
        finish = chunk.choices[0]?.finish_reason ?? finish;
      }
      assert.equal(name, 'get_weather');
      assert.equal(finish, 'tool_calls');
      assert.ok(deltas > 1, 'the arguments came in several deltas');
      assertWeatherArgs(JSON.parse(args));
      assert.equal(args, plain.choices[0].message.tool_calls?.[0].type === 'function' ? plain.choices[0].message.tool_calls[0].function.arguments : undefined);
    });

    it('parses a response_format json_schema answer', async () => {
      const completion = await client.chat.completions.parse({
        model: 'sim-small',
        messages: [{ role: 'user', content: 'Describe a city' }],
        response_format: { type: 'json_schema', json_schema: { name: 'city', strict: true, schema: weatherParameters } },
      });
      assertWeatherArgs(completion.choices[0].message.parsed);
    });

    it('decodes base64 embeddings to the simulator vectors', async () => {
      const explicit = await client.embeddings.create({ model: 'sim-small', input: ['first text', 'second'], encoding_format: 'base64' });
      const decoded = explicit.data.map((d) => [...new Float32Array(new Uint8Array(Buffer.from(d.embedding as unknown as string, 'base64')).buffer)]);
      assert.deepEqual(decoded, [float32Vector('first text'), float32Vector('second')]);
      // Without encoding_format the SDK asks for base64 itself and decodes it.
      const implicit = await client.embeddings.create({ model: 'sim-small', input: 'first text' });
      assert.deepEqual(implicit.data[0].embedding, float32Vector('first text'));
    });
  });

  describe('Vercel AI SDK', () => {
    const provider = () => createOpenAI({ baseURL, apiKey: 'unused' });

    it('generateText with the default provider (Responses API) and with openai.chat()', async () => {
      const before = stack.simulator.stats.requestsByPath['/v1/responses'] ?? 0;
      const viaResponses = await generateText({ model: provider()('sim-small'), prompt: 'Say hello', maxRetries: 0 });
      assert.equal(viaResponses.text, words(8));
      assert.equal(stack.simulator.stats.requestsByPath['/v1/responses'], before + 1);
      const viaChat = await generateText({ model: provider().chat('sim-small'), prompt: 'Say hello', maxRetries: 0 });
      assert.equal(viaChat.text, words(8));
      assert.equal(viaChat.usage.outputTokens, 8);
    });

    it('streamText with the default provider and with openai.chat()', async () => {
      for (const model of [provider()('sim-small'), provider().chat('sim-small')]) {
        const result = streamText({ model, prompt: 'Say hello', maxRetries: 0 });
        const parts: string[] = [];
        for await (const part of result.textStream) parts.push(part);
        assert.ok(parts.length > 1, 'the text arrived in several parts');
        assert.equal(parts.join(''), words(8));
      }
    });

    it('calls a tool with tools, through both APIs', async () => {
      for (const model of [provider()('sim-small'), provider().chat('sim-small')]) {
        const seen: unknown[] = [];
        const result = await generateText({
          model,
          prompt: 'Weather in Paris?',
          maxRetries: 0,
          tools: {
            get_weather: tool({
              description: 'Weather forecast for a city',
              inputSchema: z.object({ city: z.string(), unit: z.enum(['celsius', 'fahrenheit']), days: z.number().int().min(1).max(7), detailed: z.boolean(), place: z.object({ lat: z.number(), lon: z.number() }) }),
              execute: async (input) => {
                seen.push(input);
                return { forecast: 'sunny' };
              },
            }),
          },
        });
        assert.equal(result.toolCalls.length, 1);
        assert.equal(result.toolCalls[0].toolName, 'get_weather');
        assert.equal(seen.length, 1);
        assertWeatherArgs(seen[0]);
      }
    });
  });

  describe('LangChain', () => {
    const chat = (extra: Record<string, unknown> = {}) => new ChatOpenAI({ model: 'sim-small', apiKey: 'unused', maxRetries: 0, configuration: { baseURL }, ...extra });

    it('invoke, with chat completions and with the Responses API', async () => {
      assert.equal((await chat().invoke('Say hello')).content, words(8));
      const before = stack.simulator.stats.requestsByPath['/v1/responses'] ?? 0;
      const viaResponses = await chat({ useResponsesApi: true }).invoke('Say hello');
      assert.equal(viaResponses.text, words(8));
      assert.equal(stack.simulator.stats.requestsByPath['/v1/responses'], before + 1);
    });

    it('stream', async () => {
      const parts: string[] = [];
      for await (const chunk of await chat().stream('Say hello')) parts.push(String(chunk.content));
      assert.ok(parts.filter(Boolean).length > 1);
      assert.equal(parts.join(''), words(8));
    });

    it('bindTools', async () => {
      const message = await chat().bindTools([weatherTool]).invoke('Weather in Paris?');
      assert.equal(message.tool_calls?.length, 1);
      assert.equal(message.tool_calls?.[0].name, 'get_weather');
      assertWeatherArgs(message.tool_calls?.[0].args);
    });

    it('withStructuredOutput', async () => {
      const schema = z.object({ title: z.string(), rating: z.number().int().min(1).max(5), tags: z.array(z.string()), published: z.boolean() });
      const result = await chat().withStructuredOutput(schema, { name: 'review' }).invoke('Review a book');
      assert.deepEqual(schema.parse(result), result);
      assert.ok(result.rating >= 1 && result.rating <= 5);
    });

    it('OpenAIEmbeddings returns the simulator vectors', async () => {
      const embeddings = new OpenAIEmbeddings({ model: 'sim-small', apiKey: 'unused', maxRetries: 0, configuration: { baseURL } });
      assert.deepEqual(await embeddings.embedQuery('first text'), float32Vector('first text'));
      assert.equal((stack.simulator.stats.lastBody as { encoding_format?: string }).encoding_format, 'base64', 'the vectors travelled as base64');
      assert.deepEqual(await embeddings.embedDocuments(['first text', 'second']), [float32Vector('first text'), float32Vector('second')]);
    });
  });
});
