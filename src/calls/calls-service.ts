/**
 * Call lifecycle: starting, ringing, answering, rejecting, hanging up and
 * timing out calls; agent availability and the support queue; history.
 *
 * Every transition is one conditional UPDATE (`... where status in (...)`),
 * so two instances (or a timeout racing an answer) cannot both win. Events go
 * to the call's room `call:<id>` (`call.updated` with the whole call, and
 * `call.queued` with the queue position) and to the callee's room
 * `agent:<userId>` (`call.ringing`, then `call.updated` when it stops).
 * Timeouts are enforced by a sweep every instance runs (`expireDue`), so a
 * dying instance does not leave calls ringing forever.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Kysely, Selectable } from 'kysely';
import { type AuthUser, can } from '../auth/permissions.js';
import type { Database } from '../database.js';
import { AppError } from '../platform/errors.js';
import type { AgentQueue, AgentStatus } from './agent-queue.js';
import { type QualityView, qualityView } from './call-quality.js';
import {
  type CallContext,
  type CallEndReason,
  type CallRecording,
  type CallStatus,
  type CallsTable,
  type CallType,
  OPEN_CALL_STATUSES,
} from './call-tables.js';
import { type IceServer, type IceServerOptions, iceServersFor } from './ice-servers.js';

/** What clients see of a call. */
export interface CallView {
  id: string;
  type: CallType;
  status: CallStatus;
  callerId: string;
  agentId: string | null;
  context: CallContext;
  createdAt: string;
  ringingAt: string | null;
  answeredAt: string | null;
  endedAt: string | null;
  endedBy: string | null;
  endReason: CallEndReason | null;
  /** Time between answer and end, once both happened. */
  durationMs: number | null;
  /** 1-based place in the support queue while waiting for a free agent. */
  queuePosition?: number;
  /** Media quality so far (server samples and client reports); null before any. */
  quality: QualityView | null;
  /** The caller asked for a server-side recording (both parties see this). */
  record: boolean;
  /** The recorded tracks, once the call is over and they are stored. */
  recordings: CallRecording[];
}

export interface StartCallInput {
  type: CallType;
  /** Who to call (sales, consultation); support calls go to the queue. */
  calleeId?: string;
  context?: CallContext;
  /** Record the call on the server (the callee sees it before answering). */
  record?: boolean;
}

/** Where call events go; the realtime gateway satisfies it. */
export interface CallPublisher {
  publish(room: string, event: string, data?: unknown): Promise<unknown>;
}

export interface CallsLogger {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface CallsServiceOptions {
  publisher: CallPublisher;
  queue: AgentQueue;
  iceServers: IceServerOptions;
  /** A ringing call nobody answers within this ends as missed. */
  ringTimeoutMs: number;
  /** A queued support call without a free agent within this ends as missed. */
  queueTimeoutMs: number;
  logger: CallsLogger;
}

export interface CallsServiceEvents {
  /** A call reached a final state (its media must be released). */
  ended: [call: CallView];
}

type Row = Selectable<CallsTable>;

/** Roles that may be called directly (sales, consultation). */
const CALLABLE_ROLES = ['agent', 'streamer', 'admin'];
const QUEUE_POSITION_UPDATES = 50;

export function callRoom(callId: string): string {
  return `call:${callId}`;
}

export function agentRoom(userId: string): string {
  return `agent:${userId}`;
}

function toView(row: Row, queuePosition?: number): CallView {
  const iso = (d: Date | null) => (d ? d.toISOString() : null);
  return {
    id: row.id,
    type: row.type,
    status: row.status,
    callerId: row.caller_id,
    agentId: row.agent_id,
    context: row.context,
    createdAt: row.created_at.toISOString(),
    ringingAt: iso(row.ringing_at),
    answeredAt: iso(row.answered_at),
    endedAt: iso(row.ended_at),
    endedBy: row.ended_by,
    endReason: row.end_reason,
    durationMs: row.answered_at && row.ended_at ? row.ended_at.getTime() - row.answered_at.getTime() : null,
    quality: qualityView(row.quality),
    record: row.record,
    recordings: row.recordings ?? [],
    ...(queuePosition !== undefined ? { queuePosition } : {}),
  };
}

export class CallsService extends EventEmitter<CallsServiceEvents> {
  private readonly publisher: CallPublisher;
  readonly queue: AgentQueue;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly options: CallsServiceOptions,
  ) {
    super();
    this.publisher = options.publisher;
    this.queue = options.queue;
  }

  iceServersFor(userId: string): IceServer[] {
    return iceServersFor(this.options.iceServers, userId);
  }

  async start(user: AuthUser, input: StartCallInput): Promise<CallView> {
    const id = randomUUID();
    const context = JSON.stringify(input.context ?? {});
    if (input.type === 'support') {
      if (input.calleeId)
        throw new AppError('CALL_CALLEE_INVALID', 'Support calls go to the next free agent');
      await this.db
        .insertInto('calls')
        .values({
          id,
          type: 'support',
          status: 'initiated',
          caller_id: user.id,
          context,
          record: input.record ?? false,
        })
        .execute();
      await this.queue.enqueue(id);
      await this.dispatch();
      return this.view(await this.row(id));
    }
    const calleeId = input.calleeId;
    if (!calleeId || calleeId === user.id) throw new AppError('CALL_CALLEE_INVALID');
    const callee = await this.db
      .selectFrom('users')
      .select(['id', 'roles'])
      .where('id', '=', calleeId)
      .executeTakeFirst();
    if (!callee?.roles.some((r) => CALLABLE_ROLES.includes(r)))
      throw new AppError('CALL_CALLEE_INVALID', undefined, { calleeId });
    const row = (await this.db
      .insertInto('calls')
      .values({
        id,
        type: input.type,
        status: 'ringing',
        caller_id: user.id,
        agent_id: calleeId,
        ringing_at: new Date(),
        context,
        record: input.record ?? false,
      })
      .returningAll()
      .executeTakeFirstOrThrow()) as Row;
    const view = toView(row);
    await this.announceRinging(view);
    return view;
  }

  /** A call as its participants (or an admin) see it. */
  async get(user: AuthUser, callId: string): Promise<CallView> {
    const row = await this.findRow(callId);
    if (!row || !(row.caller_id === user.id || row.agent_id === user.id || can(user, 'users:manage')))
      throw new AppError('CALL_NOT_FOUND');
    return this.view(row);
  }

  /**
   * The call if `userId` takes part in it and it is in one of `statuses`;
   * CALL_NOT_FOUND otherwise (other people's calls are not revealed).
   */
  async participantCall(
    userId: string,
    callId: string,
    statuses: readonly CallStatus[] = OPEN_CALL_STATUSES,
  ): Promise<CallView> {
    const row = await this.findRow(callId);
    if (!row || (row.caller_id !== userId && row.agent_id !== userId)) throw new AppError('CALL_NOT_FOUND');
    if (!statuses.includes(row.status))
      throw new AppError('CALL_STATE_INVALID', undefined, { status: row.status });
    return toView(row);
  }

  async answer(user: AuthUser, callId: string): Promise<CallView> {
    const row = (await this.db
      .updateTable('calls')
      .set({ status: 'active', answered_at: new Date() })
      .where('id', '=', callId)
      .where('status', '=', 'ringing')
      .where('agent_id', '=', user.id)
      .returningAll()
      .executeTakeFirst()) as Row | undefined;
    if (!row) throw await this.whyNot(user, callId);
    const view = toView(row);
    await this.announce(view);
    return view;
  }

  async reject(user: AuthUser, callId: string): Promise<CallView> {
    const row = await this.findRow(callId);
    if (row?.status !== 'ringing' || row.agent_id !== user.id) throw await this.whyNot(user, callId);
    const ended = await this.end(callId, 'rejected', 'rejected', user.id, ['ringing']);
    if (!ended) throw await this.whyNot(user, callId);
    return ended;
  }

  /** Either participant ends the call; before an answer the caller cancels it. */
  async hangup(user: AuthUser, callId: string): Promise<CallView> {
    const row = await this.findRow(callId);
    if (!row || (row.caller_id !== user.id && row.agent_id !== user.id)) throw new AppError('CALL_NOT_FOUND');
    const reason: CallEndReason = row.status === 'active' ? 'hangup' : 'cancelled';
    const ended = await this.end(callId, 'ended', reason, user.id);
    if (!ended) throw new AppError('CALL_STATE_INVALID', undefined, { status: row.status });
    return ended;
  }

  /**
   * Moves an open call to a final state once; null if it was already over
   * (or not in `from`). Frees the agent, leaves the queue, tells everyone.
   */
  async end(
    callId: string,
    status: 'ended' | 'missed' | 'rejected',
    reason: CallEndReason,
    endedBy: string | null,
    from: readonly CallStatus[] = OPEN_CALL_STATUSES,
  ): Promise<CallView | null> {
    const row = (await this.db
      .updateTable('calls')
      .set({ status, end_reason: reason, ended_by: endedBy, ended_at: new Date() })
      .where('id', '=', callId)
      .where('status', 'in', [...from])
      .returningAll()
      .executeTakeFirst()) as Row | undefined;
    if (!row) return null;
    const view = toView(row);
    const wasQueued = await this.queue.dequeue(callId);
    if (row.type === 'support' && row.agent_id) {
      // An agent who let a call ring out is probably not at their desk: stop ringing them.
      if (reason === 'ring_timeout') await this.queue.setStatus(row.agent_id, 'away');
      else await this.queue.release(row.agent_id);
    }
    this.emit('ended', view);
    await this.announce(view);
    if (wasQueued) await this.publishQueuePositions();
    else if (row.type === 'support' && row.agent_id) await this.dispatch();
    return view;
  }

  /** Ends calls that rang or waited too long. Safe on every instance at once. */
  async expireDue(now = Date.now()): Promise<number> {
    const ringing = await this.db
      .selectFrom('calls')
      .select('id')
      .where('status', '=', 'ringing')
      .where('ringing_at', '<=', new Date(now - this.options.ringTimeoutMs))
      .limit(500)
      .execute();
    const queued = await this.db
      .selectFrom('calls')
      .select('id')
      .where('status', '=', 'initiated')
      .where('created_at', '<=', new Date(now - this.options.queueTimeoutMs))
      .limit(500)
      .execute();
    let n = 0;
    for (const { id } of ringing) if (await this.end(id, 'missed', 'ring_timeout', null, ['ringing'])) n++;
    for (const { id } of queued) if (await this.end(id, 'missed', 'queue_timeout', null, ['initiated'])) n++;
    return n;
  }

  /** Active calls answered before `answeredBefore` (for the abandoned-call sweep). */
  async activeSince(answeredBefore: Date, limit = 1000): Promise<CallView[]> {
    const rows = await this.db
      .selectFrom('calls')
      .selectAll()
      .where('status', '=', 'active')
      .where('answered_at', '<=', answeredBefore)
      .orderBy('answered_at')
      .limit(limit)
      .execute();
    return rows.map((r) => toView(r));
  }

  /** A participant's calls, newest first, keyset-paged by `before` (createdAt of the last one seen). */
  async history(user: AuthUser, query: { limit?: number; before?: string }): Promise<CallView[]> {
    let q = this.db
      .selectFrom('calls')
      .selectAll()
      .where((eb) => eb.or([eb('caller_id', '=', user.id), eb('agent_id', '=', user.id)]))
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(query.limit ?? 50);
    if (query.before) q = q.where('created_at', '<', new Date(query.before));
    return ((await q.execute()) as Row[]).map((r) => toView(r));
  }

  /** Support calls waiting for a free agent, oldest first, with their place in the queue. */
  async waiting(limit = 50): Promise<Array<{ call: CallView; position: number }>> {
    const ids = await this.queue.waiting(limit);
    if (ids.length === 0) return [];
    const rows = (await this.db
      .selectFrom('calls')
      .selectAll()
      .where('id', 'in', ids)
      .where('status', '=', 'initiated')
      .execute()) as Row[];
    const byId = new Map(rows.map((r) => [r.id, r]));
    return ids.flatMap((id, i) => {
      const row = byId.get(id);
      return row ? [{ call: toView(row, i + 1), position: i + 1 }] : [];
    });
  }

  async availability(user: AuthUser): Promise<AgentStatus> {
    return this.queue.status(user.id);
  }

  /** An agent goes online (and may get a waiting call at once), busy or away. */
  async setAvailability(user: AuthUser, status: AgentStatus): Promise<AgentStatus> {
    // An agent with a support call ringing or running stays busy (online again when it ends).
    const onCall =
      status === 'online' &&
      (await this.db
        .selectFrom('calls')
        .select('id')
        .where('agent_id', '=', user.id)
        .where('type', '=', 'support')
        .where('status', 'in', ['ringing', 'active'])
        .executeTakeFirst()) !== undefined;
    await this.queue.setStatus(user.id, onCall ? 'busy' : status);
    if (status === 'online') await this.dispatch();
    return this.queue.status(user.id);
  }

  /**
   * Hands waiting support calls to free agents, oldest call to the
   * longest-idle agent, until one side runs out. Instances may run it
   * concurrently: each call and each agent is claimed by one of them.
   */
  async dispatch(): Promise<void> {
    let changed = false;
    for (;;) {
      const [callId] = await this.queue.waiting(1);
      if (!callId) break;
      const caller = await this.db
        .selectFrom('calls')
        .select('caller_id')
        .where('id', '=', callId)
        .executeTakeFirst();
      // An agent who asks for support themselves is not rung for their own call.
      const agentId = await this.queue.claimAgent(caller ? [caller.caller_id] : []);
      if (!agentId) break;
      if (!(await this.queue.dequeue(callId))) {
        await this.queue.release(agentId);
        continue;
      }
      changed = true;
      const row = (await this.db
        .updateTable('calls')
        .set({ status: 'ringing', agent_id: agentId, ringing_at: new Date() })
        .where('id', '=', callId)
        .where('status', '=', 'initiated')
        .returningAll()
        .executeTakeFirst()) as Row | undefined;
      if (!row) {
        await this.queue.release(agentId);
        continue;
      }
      await this.announceRinging(toView(row));
    }
    if (changed) await this.publishQueuePositions();
  }

  private async announceRinging(view: CallView): Promise<void> {
    await this.announce(view);
    if (view.agentId) await this.safePublish(agentRoom(view.agentId), 'call.ringing', { call: view });
  }

  /** `call.updated` to the call's room, and to the callee's room (their ringing UI follows it). */
  private async announce(view: CallView): Promise<void> {
    await this.safePublish(callRoom(view.id), 'call.updated', { call: view });
    if (view.agentId) await this.safePublish(agentRoom(view.agentId), 'call.updated', { call: view });
  }

  private async publishQueuePositions(): Promise<void> {
    const waiting = await this.queue.waiting(QUEUE_POSITION_UPDATES);
    for (const [i, id] of waiting.entries())
      await this.safePublish(callRoom(id), 'call.queued', { callId: id, position: i + 1 });
  }

  /** Events are best effort: the call's GET is the truth for a client that missed one. */
  private async safePublish(room: string, event: string, data: unknown): Promise<void> {
    try {
      await this.publisher.publish(room, event, data);
    } catch (err) {
      this.options.logger.warn({ err, room, event }, 'call event publish failed');
    }
  }

  private async view(row: Row): Promise<CallView> {
    if (row.status !== 'initiated') return toView(row);
    return toView(row, (await this.queue.position(row.id)) ?? undefined);
  }

  private async findRow(callId: string): Promise<Row | undefined> {
    return (await this.db.selectFrom('calls').selectAll().where('id', '=', callId).executeTakeFirst()) as
      | Row
      | undefined;
  }

  private async row(callId: string): Promise<Row> {
    const row = await this.findRow(callId);
    if (!row) throw new AppError('CALL_NOT_FOUND');
    return row;
  }

  /** The error for an answer/reject that did not apply: unknown call, not yours, or too late. */
  private async whyNot(user: AuthUser, callId: string): Promise<AppError> {
    const row = await this.findRow(callId);
    if (!row || (row.caller_id !== user.id && row.agent_id !== user.id))
      return new AppError('CALL_NOT_FOUND');
    if (row.agent_id !== user.id) return new AppError('CALL_AGENT_ONLY');
    return new AppError('CALL_STATE_INVALID', undefined, { status: row.status });
  }
}
