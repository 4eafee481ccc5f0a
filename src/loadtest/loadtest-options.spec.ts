import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LoadTestUsageError, parseDuration, parseLoadTestArgs, wantsHelp } from './loadtest-options';

test('parseLoadTestArgs maps the issue command line to options', () => {
  const options = parseLoadTestArgs([
    '--url', 'http://localhost:8000/v1/', '--model', 'sim-small', '--stream', '--key', 'k1',
    '--concurrency', '5, 10,20', '--duration', '30s', '--priority', 'low', '--report', 'results.md', '--honor-retry-after',
  ]);
  assert.deepEqual(options, {
    url: 'http://localhost:8000/v1',
    model: 'sim-small',
    stream: true,
    key: 'k1',
    concurrency: [5, 10, 20],
    durationMs: 30_000,
    requests: undefined,
    priority: 'low',
    reportPath: 'results.md',
    timeoutMs: 60_000,
    honorRetryAfter: true,
    prompt: 'What is 2+2?',
    maxTokens: 32,
  });
});

test('parseLoadTestArgs defaults: 5,10,20 for 30 s each, not streamed', () => {
  const options = parseLoadTestArgs(['--url', 'http://h/v1', '--model', 'm', '--requests', '7']);
  assert.deepEqual([options.concurrency, options.durationMs, options.stream, options.requests, options.key, options.honorRetryAfter], [[5, 10, 20], 30_000, false, 7, undefined, false]);
});

test('parseLoadTestArgs refuses what it cannot run, naming the flag', () => {
  const cases: [string[], RegExp][] = [
    [['--model', 'm'], /--url is required/],
    [['--url', 'http://h/v1'], /--model is required/],
    [['--url', 'ftp://h', '--model', 'm'], /--url must be an http/],
    [['--url', 'http://h', '--model', 'm', '--concurrency', '5,0'], /--concurrency must be a whole number/],
    [['--url', 'http://h', '--model', 'm', '--concurrency', '5,x'], /--concurrency/],
    [['--url', 'http://h', '--model', 'm', '--priority', 'urgent'], /--priority must be high, normal or low/],
    [['--url', 'http://h', '--model', 'm', '--duration', 'forever'], /--duration must be a duration/],
    [['--url', 'http://h', '--model', 'm', '--bogus'], /bogus/],
  ];
  for (const [argv, message] of cases) assert.throws(() => parseLoadTestArgs(argv), (e: Error) => e instanceof LoadTestUsageError && message.test(e.message), argv.join(' '));
});

test('parseDuration reads ms, s, m and bare seconds', () => {
  assert.equal(parseDuration('d', '500ms'), 500);
  assert.equal(parseDuration('d', '1.5s'), 1500);
  assert.equal(parseDuration('d', '2m'), 120_000);
  assert.equal(parseDuration('d', '10'), 10_000);
  assert.throws(() => parseDuration('d', '0s'), LoadTestUsageError);
  assert.throws(() => parseDuration('d', '-3s'), LoadTestUsageError);
});

test('wantsHelp finds --help or -h anywhere on the command line, and nothing else', () => {
  assert.equal(wantsHelp(['--help']), true);
  assert.equal(wantsHelp(['--url', 'http://x/v1', '-h']), true);
  assert.equal(wantsHelp(['--url', 'http://x/v1', '--model', 'm']), false);
  assert.equal(wantsHelp(['--prompt', 'help']), false);
});
