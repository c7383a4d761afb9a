/** The live-streams module's public surface. */
export * from './live-migrations.js';
export * from './live-routes.js';
export * from './live-streams-service.js';
export type {
  LiveTables,
  StreamEndReason,
  StreamPinKind,
  StreamPinsTable,
  StreamProductsTable,
  StreamStatus,
  StreamsTable,
} from './live-tables.js';
export { STREAM_END_REASONS, STREAM_STATUSES } from './live-tables.js';
export { hashStreamKey, PUBLIC_ID_PATTERN, STREAM_KEY_PATTERN } from './stream-keys.js';
