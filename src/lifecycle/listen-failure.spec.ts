import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { listenFailureMessage } from './listen-failure';

const failure = (code: string, message = `listen ${code}`) => Object.assign(new Error(message), { code });

describe('listenFailureMessage', () => {
  it('names PORT and HOST with their values when the port is taken', () => {
    const message = listenFailureMessage('0.0.0.0', 8000, failure('EADDRINUSE'));
    assert.match(message, /PORT=8000 on HOST=0\.0\.0\.0 is already in use/);
    assert.match(message, /set PORT to a free port/);
  });

  it('says a low port needs privileges', () => {
    assert.match(listenFailureMessage('127.0.0.1', 80, failure('EACCES')), /PORT=80 on HOST=127\.0\.0\.1 needs privileges.*PORT to 1024 or above/);
  });

  it('says which HOST is not an address of this machine', () => {
    assert.match(listenFailureMessage('10.9.9.9', 8000, failure('EADDRNOTAVAIL')), /HOST=10\.9\.9\.9 is not an address of this machine \(PORT=8000\)/);
    assert.match(listenFailureMessage('no-such-host', 8000, failure('ENOTFOUND')), /HOST=no-such-host is not an address/);
  });

  it('falls back to the first line of any other error, still naming PORT and HOST', () => {
    const message = listenFailureMessage('::', 9000, new Error('something odd\n    at stack'));
    assert.equal(message, 'cannot listen on PORT=9000 on HOST=::: something odd');
    assert.match(listenFailureMessage('::', 9000, 'plain'), /PORT=9000 on HOST=::: plain/);
  });
});
