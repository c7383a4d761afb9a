import type { ColumnType, Generated } from 'kysely';
import type { StoredQuality } from './call-quality.js';

export const CALL_TYPES = ['support', 'sales', 'consultation'] as const;
export type CallType = (typeof CALL_TYPES)[number];

/**
 * initiated (a support call waiting in the queue for a free agent) →
 * ringing (an agent's devices ring) → active → ended; or missed (nobody
 * answered before the ring or queue timeout) or rejected.
 */
export const CALL_STATUSES = ['initiated', 'ringing', 'active', 'ended', 'missed', 'rejected'] as const;
export type CallStatus = (typeof CALL_STATUSES)[number];
export const FINAL_CALL_STATUSES: readonly CallStatus[] = ['ended', 'missed', 'rejected'];
export const OPEN_CALL_STATUSES: readonly CallStatus[] = ['initiated', 'ringing', 'active'];

/**
 * Why a call is over: a participant hung up; the caller gave up before an
 * answer (cancelled); the callee rejected it; nobody answered in time (ring or
 * queue timeout); a participant's connection went away and did not come back
 * (disconnected); the media worker process hosting it died.
 */
export const CALL_END_REASONS = [
  'hangup',
  'cancelled',
  'rejected',
  'ring_timeout',
  'queue_timeout',
  'disconnected',
  'media_worker_died',
] as const;
export type CallEndReason = (typeof CALL_END_REASONS)[number];

/** What the shopper was looking at when they called. */
export interface CallContext {
  streamId?: string;
  productId?: string;
  cart?: Array<{ skuId: string; quantity: number }>;
}

/** One recorded track of a call, stored in the ObjectStore. */
export interface CallRecording {
  key: string;
  url: string;
  userId: string;
  kind: 'audio' | 'video';
  bytes: number;
}

export interface CallsTable {
  id: string;
  type: CallType;
  status: CallStatus;
  caller_id: string;
  /** The agent (support) or callee (sales, consultation) once the call rings; null while queued. */
  agent_id: string | null;
  context: ColumnType<CallContext, string, string>;
  created_at: Generated<Date>;
  ringing_at: Date | null;
  answered_at: Date | null;
  ended_at: Date | null;
  /** Who ended it (hung up, cancelled, rejected, disconnected); null when the server did (timeouts, media loss). */
  ended_by: string | null;
  end_reason: CallEndReason | null;
  /** Quality summary (see call-quality.ts); null until the first sample. */
  quality: ColumnType<StoredQuality | null, string | undefined, string>;
  /** Recorded server-side (both parties see it on the call). */
  record: Generated<boolean>;
  recordings: ColumnType<CallRecording[] | null, string | undefined, string>;
}

export interface CallTables {
  calls: CallsTable;
}
