// A TLS worker: a child process of the emulator that accepts devices' connections on the
// emulator's port (its listening socket, shared by the primary), does the mutual-TLS handshake
// with the emulator's TLS front (tls-front.ts: the same checks and logs as in-process) and passes
// the plaintext MQTT stream to the primary over a Unix socket, behind a header naming the peer
// (peer-header.ts). The broker and the registry stay in the primary. Started by tls-workers.ts.
import net from 'node:net';
import type { TLSSocket } from 'node:tls';
import { encodePeerHeader } from './peer-header.ts';
import { createTlsFront, type Peer, type TlsFrontOptions } from './tls-front.ts';

/**
 * From the primary. `init` comes with the listening server, `connection` with a socket the
 * primary accepted; `lend` asks for this worker's copy of the listening server (for a new worker).
 */
export type ToTlsWorker = { t: 'init'; front: TlsFrontOptions; socketPath: string } | { t: 'connection' } | { t: 'lend' };
/** To the primary. `listener` comes with the listening server. */
export type FromTlsWorker = { t: 'ready' } | { t: 'log'; line: string } | { t: 'listener' };

const send = (message: FromTlsWorker) => process.send?.(message);
const log = (line: string) => send({ t: 'log', line });

/** Ties a device's TLS socket to a fresh connection to the primary, both ways. */
function forward(socket: TLSSocket, peer: Peer, socketPath: string): void {
  const up = net.connect(socketPath);
  up.write(encodePeerHeader(peer));
  socket.pipe(up);
  up.pipe(socket);
  // When one side closes, the other goes too, as the broker's own TLS socket goes when it closes
  // a connection (tlsWorkers 0): at once after a reset or an error, and after an orderly end only
  // once the data before the end is passed on (pipe ends `to`): the broker's DISCONNECT to the
  // client, the client's DISCONNECT to the broker (or it would publish the client's will). Never
  // only half-closed: a client still sending (a refused 10 MB publish) must see the close.
  const follow = (from: net.Socket, to: net.Socket) => {
    from.on('error', () => undefined);
    from.once('close', () => {
      if (to.destroyed) return;
      if (to.writableEnded && !to.writableFinished) to.once('finish', () => to.destroy());
      else to.destroy();
    });
  };
  follow(socket, up);
  follow(up, socket);
}

if (!process.send) {
  console.error('tls-worker: the emulator starts this process (fp-yocto emulator --tls-workers); it needs its IPC channel');
  process.exit(64);
}

let front: ReturnType<typeof createTlsFront> | undefined;
let listening: net.Server | undefined;

process.on('message', (message: ToTlsWorker, handle?: net.Server | net.Socket) => {
  if (message.t === 'init' && handle instanceof net.Server) {
    const { socketPath } = message;
    const tlsFront = createTlsFront(message.front, log, (socket, peer) => forward(socket, peer, socketPath));
    front = tlsFront;
    // The listening socket is shared: this process takes its turn at accepting from it.
    handle.on('connection', (socket: net.Socket) => tlsFront.emit('connection', socket));
    listening = handle;
    send({ t: 'ready' });
  } else if (message.t === 'lend' && listening) {
    process.send!({ t: 'listener' } satisfies FromTlsWorker, listening);
  } else if (message.t === 'connection' && handle instanceof net.Socket) {
    if (front) front.emit('connection', handle);
    else handle.destroy();
  }
});

// The primary is gone (closed, crashed or killed -9) when the IPC channel closes: so is this worker.
process.on('disconnect', () => process.exit(0));
// Ctrl-C reaches the whole process group: the primary decides when its workers end.
process.on('SIGINT', () => undefined);
