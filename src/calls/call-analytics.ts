/**
 * Call figures from the Db, on request: per agent (calls, outcomes, talk
 * time, average quality score) and per type (answer rate, average wait until
 * answered). Admins see every agent; an agent sees their own row.
 */
import { type Kysely, sql } from 'kysely';
import { type AuthUser, assertCan, can } from '../auth/permissions.js';
import type { Database } from '../database.js';
import { CALL_TYPES, type CallType } from './call-tables.js';

export interface AgentCallStats {
  agentId: string;
  calls: number;
  answered: number;
  missed: number;
  rejected: number;
  /** Sum of answered calls' durations. */
  talkTimeMs: number;
  avgDurationMs: number | null;
  /** Average of the calls' mean server quality score (0-10), over calls that have one. */
  avgQualityScore: number | null;
}

export interface TypeCallStats {
  type: CallType;
  calls: number;
  answered: number;
  /** answered ÷ calls (0 when none). */
  answerRate: number;
  /** From the start of a call to its answer, over answered calls. */
  avgWaitMs: number | null;
}

export interface CallAnalytics {
  from: string;
  to: string;
  byAgent: AgentCallStats[];
  byType: TypeCallStats[];
}

export interface CallAnalyticsQuery {
  from?: string;
  to?: string;
  agentId?: string;
}

const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));
const round = (v: number | null) => (v === null ? null : Math.round(v * 100) / 100);

export class CallAnalyticsService {
  constructor(private readonly db: Kysely<Database>) {}

  async summary(user: AuthUser, query: CallAnalyticsQuery): Promise<CallAnalytics> {
    // Agents see their own figures; everything else needs calls:read-any (admins).
    let agentId = query.agentId;
    if (!can(user, 'calls:read-any')) {
      assertCan(user, 'calls:answer');
      agentId = user.id;
    }
    const to = query.to ? new Date(query.to) : new Date();
    const from = query.from ? new Date(query.from) : new Date(to.getTime() - 30 * 86_400_000);
    const base = this.db
      .selectFrom('calls')
      .where('created_at', '>=', from)
      .where('created_at', '<', to)
      .$if(agentId !== undefined, (q) => q.where('agent_id', '=', agentId!));

    const agents = await base
      .where('agent_id', 'is not', null)
      .select([
        'agent_id',
        sql<string>`count(*)`.as('calls'),
        sql<string>`count(*) filter (where answered_at is not null)`.as('answered'),
        sql<string>`count(*) filter (where status = 'missed')`.as('missed'),
        sql<string>`count(*) filter (where status = 'rejected')`.as('rejected'),
        sql<
          string | null
        >`sum(extract(epoch from (ended_at - answered_at)) * 1000) filter (where answered_at is not null and ended_at is not null)`.as(
          'talk_ms',
        ),
        sql<
          string | null
        >`avg(extract(epoch from (ended_at - answered_at)) * 1000) filter (where answered_at is not null and ended_at is not null)`.as(
          'avg_ms',
        ),
        sql<
          string | null
        >`avg((quality->'server'->'score'->>'sum')::float8 / nullif((quality->'server'->'score'->>'n')::float8, 0))`.as(
          'avg_score',
        ),
      ])
      .groupBy('agent_id')
      .orderBy('agent_id')
      .execute();

    const types = await base
      .select([
        'type',
        sql<string>`count(*)`.as('calls'),
        sql<string>`count(*) filter (where answered_at is not null)`.as('answered'),
        sql<
          string | null
        >`avg(extract(epoch from (answered_at - created_at)) * 1000) filter (where answered_at is not null)`.as(
          'avg_wait_ms',
        ),
      ])
      .groupBy('type')
      .execute();
    const byTypeRow = new Map(types.map((r) => [r.type, r]));

    return {
      from: from.toISOString(),
      to: to.toISOString(),
      byAgent: agents.map((r) => ({
        agentId: r.agent_id!,
        calls: Number(r.calls),
        answered: Number(r.answered),
        missed: Number(r.missed),
        rejected: Number(r.rejected),
        talkTimeMs: Math.round(num(r.talk_ms) ?? 0),
        avgDurationMs: r.avg_ms === null ? null : Math.round(Number(r.avg_ms)),
        avgQualityScore: round(num(r.avg_score)),
      })),
      byType: CALL_TYPES.map((type) => {
        const r = byTypeRow.get(type);
        const calls = Number(r?.calls ?? 0);
        const answered = Number(r?.answered ?? 0);
        return {
          type,
          calls,
          answered,
          answerRate: calls ? round(answered / calls)! : 0,
          avgWaitMs: r?.avg_wait_ms == null ? null : Math.round(Number(r.avg_wait_ms)),
        };
      }),
    };
  }
}
