import { BeforeApplicationShutdown, Injectable } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import type { ServerResponse } from 'node:http';
import { Clock } from '../common/clock';
import { ShutdownService } from '../common/shutdown.service';
import { DashboardService } from './dashboard.service';

/** A tick that cannot be written within this time (the client stopped reading) ends the stream. */
const WRITE_DEADLINE_MS = 5000;
/** Streams are recycled after this long; the page reconnects at once. Bounds any one connection. */
const MAX_LIFETIME_MS = 15 * 60_000;

/**
 * The dashboard's Server-Sent Events: an opening `history` event, then one sample a second. A stream
 * ends when its client leaves, when a tick misses its write deadline, after its lifetime, and as soon
 * as the instance starts draining, so an open dashboard never holds up a shutdown.
 */
@Injectable()
export class DashboardStreams implements BeforeApplicationShutdown {
  private readonly open = new Map<ServerResponse, () => void>();

  constructor(
    private readonly dashboard: DashboardService,
    private readonly shutdown: ShutdownService,
    private readonly clock: Clock,
  ) {}

  /** Streams open now. */
  get size(): number {
    return this.open.size;
  }

  /** Takes the response over and streams to it until one of the ends above. */
  serve(reply: FastifyReply): void {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      ...(reply.getHeaders() as Record<string, string>),
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write(`retry: 2000\nevent: history\ndata: ${JSON.stringify(this.dashboard.data())}\n\n`);
    const openedAt = this.clock.now();
    let blockedSince: number | undefined;
    const end = () => {
      unsubscribe();
      this.open.delete(res);
      if (!res.writableEnded) res.end();
    };
    const unsubscribe = this.dashboard.subscribe((sample) => {
      const now = this.clock.now();
      if (this.shutdown.draining || now - openedAt >= MAX_LIFETIME_MS) return end();
      if (res.writableNeedDrain) {
        blockedSince ??= now;
        if (now - blockedSince >= WRITE_DEADLINE_MS) {
          unsubscribe();
          res.destroy();
        }
        return;
      }
      blockedSince = undefined;
      res.write(`data: ${JSON.stringify(sample)}\n\n`);
    });
    this.open.set(res, end);
    res.once('close', () => {
      unsubscribe();
      this.open.delete(res);
    });
  }

  /** Ends every stream before the HTTP server closes (Nest closes it between this hook and onApplicationShutdown). */
  beforeApplicationShutdown(): void {
    for (const end of [...this.open.values()]) end();
  }
}
