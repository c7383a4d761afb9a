/**
 * The RTMP handshake, server side. A client sends C0 (version 3) and C1
 * (1536 bytes); we answer S0 S1 S2 and then read C2.
 *
 * Two dialects exist. The "simple" one (librtmp, OBS) carries no digest and
 * is answered by echoing C1. The "complex" one (Flash Player, ffmpeg, some
 * hardware encoders) hides an HMAC-SHA256 digest at an offset in C1; a
 * client of that kind may check that S1 and S2 carry our digests, so we
 * compute them with the published constants.
 */
import { createHmac, randomBytes } from 'node:crypto';

export const HANDSHAKE_SIZE = 1536;
export const RTMP_VERSION = 3;
const DIGEST_SIZE = 32;

const RANDOM_CRUD = Buffer.from('f0eec24a8068bee82e00d0d1029e7e576eec5d2d29806fab93b8e636cfeb31ae', 'hex');
const FMS_KEY = Buffer.from('Genuine Adobe Flash Media Server 001', 'utf8');
const FP_KEY = Buffer.from('Genuine Adobe Flash Player 001', 'utf8');
const FMS_KEY_FULL = Buffer.concat([FMS_KEY, RANDOM_CRUD]);

/** Where the digest sits: scheme 0 puts it in the first half, scheme 1 in the second. */
type DigestScheme = 0 | 1;

function hmac(data: Buffer, key: Buffer): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

function digestOffset(packet: Buffer, scheme: DigestScheme): number {
  const base = scheme === 0 ? 8 : 772;
  const sum =
    (packet[base] ?? 0) + (packet[base + 1] ?? 0) + (packet[base + 2] ?? 0) + (packet[base + 3] ?? 0);
  return (sum % 728) + base + 4;
}

function withoutDigest(packet: Buffer, offset: number): Buffer {
  return Buffer.concat([packet.subarray(0, offset), packet.subarray(offset + DIGEST_SIZE)]);
}

/** The scheme whose digest C1 carries, or null for a simple-handshake client. */
function clientScheme(c1: Buffer): DigestScheme | null {
  for (const scheme of [1, 0] as const) {
    const offset = digestOffset(c1, scheme);
    const expected = hmac(withoutDigest(c1, offset), FP_KEY);
    if (expected.equals(c1.subarray(offset, offset + DIGEST_SIZE))) return scheme;
  }
  return null;
}

/** S0 + S1 + S2 in answer to C1. */
export function serverHandshake(c1: Buffer): Buffer {
  if (c1.length !== HANDSHAKE_SIZE) throw new RangeError('C1 must be 1536 bytes');
  const s0 = Buffer.from([RTMP_VERSION]);
  const scheme = clientScheme(c1);
  if (scheme === null) return Buffer.concat([s0, c1, c1]);

  // S1: time 0, a server version, random bytes, our digest at the client's scheme's offset.
  const s1 = Buffer.concat([Buffer.from([0, 0, 0, 0, 1, 2, 3, 4]), randomBytes(HANDSHAKE_SIZE - 8)]);
  const s1Offset = digestOffset(s1, scheme);
  hmac(withoutDigest(s1, s1Offset), FMS_KEY).copy(s1, s1Offset);

  // S2: random bytes signed with a key derived from the client's digest.
  const clientOffset = digestOffset(c1, scheme);
  const challenge = c1.subarray(clientOffset, clientOffset + DIGEST_SIZE);
  const s2Random = randomBytes(HANDSHAKE_SIZE - DIGEST_SIZE);
  const s2 = Buffer.concat([s2Random, hmac(s2Random, hmac(challenge, FMS_KEY_FULL))]);
  return Buffer.concat([s0, s1, s2]);
}
