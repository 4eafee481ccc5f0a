import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { combineLoads, parseVllmLoad } from './vllm-load';

/** Trimmed from a real vLLM 0.9 /metrics page: gauges, a histogram and a counter. */
const VLLM_V0 = `# HELP vllm:num_requests_running Number of requests currently running on GPU.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="meta-llama/Llama-3.1-8B-Instruct"} 4.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="meta-llama/Llama-3.1-8B-Instruct"} 7.0
# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.8125
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{le="0.001",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0
vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"} 12.0
vllm:prompt_tokens_total{model_name="meta-llama/Llama-3.1-8B-Instruct"} 1234.0
`;

describe('parseVllmLoad', () => {
  it('reads waiting, running and the older gpu_cache_usage_perc', () => {
    assert.deepEqual(parseVllmLoad(VLLM_V0), { waiting: 7, running: 4, kvCacheUsage: 0.8125 });
  });

  it('sums the counts over label sets and keeps the highest kv_cache_usage_perc', () => {
    const text = [
      'vllm:num_requests_running{model_name="a",engine="0"} 2',
      'vllm:num_requests_running{model_name="a",engine="1"} 3',
      'vllm:num_requests_waiting{model_name="a",engine="0"} 1',
      'vllm:num_requests_waiting{model_name="a",engine="1"} 5',
      'vllm:kv_cache_usage_perc{model_name="a",engine="0"} 0.4',
      'vllm:kv_cache_usage_perc{model_name="a",engine="1"} 0.9',
    ].join('\n');
    assert.deepEqual(parseVllmLoad(text), { waiting: 6, running: 5, kvCacheUsage: 0.9 });
  });

  it('leaves kvCacheUsage out when the server does not report it', () => {
    assert.deepEqual(parseVllmLoad('vllm:num_requests_waiting 3\n'), { waiting: 3, running: 0 });
  });

  it('reads the prefix-cache counters, with or without the _total suffix, summed over label sets', () => {
    const text = [
      'vllm:num_requests_waiting 0',
      'vllm:prefix_cache_queries_total{model_name="a"} 100',
      'vllm:prefix_cache_queries_total{model_name="b"} 50',
      'vllm:prefix_cache_hits_total{model_name="a"} 80',
      'vllm:prefix_cache_hits{model_name="b"} 10',
    ].join('\n');
    assert.deepEqual(parseVllmLoad(text), { waiting: 0, running: 0, prefixCacheQueries: 150, prefixCacheHits: 90 });
  });

  it('is undefined for a server that is not vLLM', () => {
    assert.equal(parseVllmLoad('# HELP process_cpu_seconds_total x\nprocess_cpu_seconds_total 12\n'), undefined);
    assert.equal(parseVllmLoad('<html>Not Found</html>'), undefined);
    assert.equal(parseVllmLoad(''), undefined);
  });

  it('ignores malformed lines, NaN and negative values, and clamps the cache ratio', () => {
    const text = 'vllm:num_requests_waiting{model_name="a" 9\nvllm:num_requests_waiting NaN\nvllm:num_requests_running -4\nvllm:num_requests_running 2\nvllm:kv_cache_usage_perc 1.7\n';
    assert.deepEqual(parseVllmLoad(text), { waiting: 0, running: 2, kvCacheUsage: 1 });
  });
});

describe('combineLoads', () => {
  it('adds counts across upstreams and keeps the busiest cache', () => {
    assert.deepEqual(combineLoads([{ waiting: 1, running: 2, kvCacheUsage: 0.2 }, { waiting: 3, running: 1 }, { waiting: 0, running: 0, kvCacheUsage: 0.7 }]), {
      waiting: 4,
      running: 3,
      kvCacheUsage: 0.7,
    });
    assert.equal(combineLoads([]), undefined);
  });
});
