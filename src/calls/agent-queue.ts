/**
 * Agent availability and the support queue, in the Engine so every instance
 * sees the same ones. An agent is `online` (free to take a call), `busy` (on
 * or being rung for a call) or `away`. Free agents sit in a sorted set by
 * the time they became free (longest idle first); waiting support calls in
 * another by arrival. Claiming takes a member out with ZREM, whose count says
 * who won when instances race: no script needed.
 */
import type { Engine } from '../platform/engine/engine.js';

export const AGENT_STATUSES = ['online', 'busy', 'away'] as const;
export type AgentStatus = (typeof AGENT_STATUSES)[number];

const KEYS = {
  free: '{calls}:agents:free',
  queue: '{calls}:queue',
  status: (agentId: string) => `{calls}:agent:${agentId}`,
};

export class AgentQueue {
  constructor(private readonly engine: Engine) {}

  async status(agentId: string): Promise<AgentStatus> {
    const value = await this.engine.get(KEYS.status(agentId));
    return (AGENT_STATUSES as readonly string[]).includes(value ?? '') ? (value as AgentStatus) : 'away';
  }

  async setStatus(agentId: string, status: AgentStatus): Promise<void> {
    await this.engine.set(KEYS.status(agentId), status);
    if (status === 'online') await this.engine.zAdd(KEYS.free, [[Date.now(), agentId]]);
    else await this.engine.zRem(KEYS.free, agentId);
  }

  /** Takes the longest-idle free agent (now busy), or null when none is free. */
  async claimAgent(exclude: string[] = []): Promise<string | null> {
    for (;;) {
      const candidates = await this.engine.zRangeByScore(KEYS.free, -Infinity, Infinity, 10 + exclude.length);
      const pick = candidates.find((c) => !exclude.includes(c.member));
      if (!pick) return null;
      if ((await this.engine.zRem(KEYS.free, pick.member)) === 1) {
        await this.engine.set(KEYS.status(pick.member), 'busy');
        return pick.member;
      }
    }
  }

  /** An agent's call is over: free again unless they went away meanwhile. */
  async release(agentId: string): Promise<void> {
    if ((await this.status(agentId)) === 'busy') await this.setStatus(agentId, 'online');
  }

  async enqueue(callId: string): Promise<void> {
    await this.engine.zAdd(KEYS.queue, [[Date.now(), callId]]);
  }

  /** Removes a call from the queue; true if it was there (so this caller owns its dispatch). */
  async dequeue(callId: string): Promise<boolean> {
    return (await this.engine.zRem(KEYS.queue, callId)) === 1;
  }

  /** The first waiting calls, oldest first. */
  async waiting(limit: number): Promise<string[]> {
    return (await this.engine.zRangeByScore(KEYS.queue, -Infinity, Infinity, limit)).map((e) => e.member);
  }

  /** 1-based place of a waiting call, or null when it is not queued. */
  async position(callId: string): Promise<number | null> {
    const score = await this.engine.zScore(KEYS.queue, callId);
    if (score === null) return null;
    return (await this.engine.zRangeByScore(KEYS.queue, -Infinity, score)).length;
  }
}
