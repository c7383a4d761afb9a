/**
 * The baseline of `npm run bench -- chat-fanout`: the least a Node process
 * with `ws` can do to broadcast, in its own process like the real server.
 * Plain JavaScript on plain node (bench/run.ts only lists `.ts` files).
 *
 * - `/ws`: a member. Gets a `hello`, answers `join` with `ok` and is then in
 *   the one room (a Set). Same handshake the gateway's clients do.
 * - `/pub`: the publisher. Each text frame it sends is the finished event
 *   frame; it is framed once (`Sender.frame(buf, {opcode: 1, fin: true,
 *   mask: false, readOnly: true, rsv1: false})`, header and payload joined
 *   into one Buffer) and written with `ws._socket.write(frame)` to every
 *   member: no per-socket JSON, no per-socket framing, no buffer checks.
 *
 * Same ws server options as the gateway: noServer, perMessageDeflate off,
 * clientTracking off, maxPayload 64 KiB. Prints `{"port":N}` on stdout when
 * listening; SIGTERM exits.
 */
import { createServer } from 'node:http';
import { Sender, WebSocketServer } from 'ws';

const members = new Set();
const wss = new WebSocketServer({
  noServer: true,
  perMessageDeflate: false,
  clientTracking: false,
  maxPayload: 65536,
});
const server = createServer((_req, res) => {
  res.statusCode = 404;
  res.end();
});

function broadcast(data) {
  const parts = Sender.frame(data, { opcode: 1, fin: true, mask: false, readOnly: true, rsv1: false });
  const frame = parts.length === 1 ? parts[0] : Buffer.concat(parts);
  for (const ws of members) ws._socket.write(frame);
}

server.on('upgrade', (req, socket, head) => {
  const path = req.url?.split('?')[0];
  if (path !== '/ws' && path !== '/pub') {
    socket.destroy();
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.on('error', () => undefined);
    if (path === '/pub') {
      ws.on('message', (data, isBinary) => {
        if (!isBinary) broadcast(data);
      });
      return;
    }
    ws.on('close', () => members.delete(ws));
    ws.on('message', (data) => {
      let frame;
      try {
        frame = JSON.parse(data.toString());
      } catch {
        return;
      }
      if (frame.t === 'join') {
        members.add(ws);
        ws.send(JSON.stringify({ t: 'ok', id: frame.id, d: { room: frame.d?.room, lastSeq: 0 } }));
      }
    });
    ws.send(JSON.stringify({ t: 'hello', d: { connectionId: 'bare', userId: null } }));
  });
});

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
