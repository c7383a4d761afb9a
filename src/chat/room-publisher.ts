/**
 * How chat reaches connected clients without depending on the WebSocket
 * gateway: the service publishes `(room, event, data)` after its transaction
 * commits; the composition root hands it the gateway (src/services.ts).
 *
 * Rooms: `conv:<conversationId>` for conversation events, `user:<userId>` for
 * personal notifications.
 */
export interface RoomPublisher {
  publish(room: string, event: string, data: unknown): Promise<void>;
}

export const conversationRoom = (conversationId: string): string => `conv:${conversationId}`;
export const userRoom = (userId: string): string => `user:${userId}`;
