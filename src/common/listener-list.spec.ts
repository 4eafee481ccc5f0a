import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ListenerList } from './listener-list';

describe('ListenerList', () => {
  it('calls every listener in order; one that throws is logged and the others still run', () => {
    const warnings: string[] = [];
    const list = new ListenerList<number>({ warn: (message: string) => warnings.push(message) }, 'test');
    const seen: string[] = [];
    list.add((n) => seen.push(`a${n}`));
    list.add(() => {
      throw new Error('broken consumer');
    });
    list.add((n) => seen.push(`c${n}`));
    list.emit(1);
    list.emit(2);
    assert.deepEqual(seen, ['a1', 'c1', 'a2', 'c2']);
    assert.deepEqual(warnings, ['test listener failed: broken consumer', 'test listener failed: broken consumer']);
  });
});
