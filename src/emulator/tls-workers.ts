// TLS termination in child processes (the `tlsWorkers` option): the mutual-TLS handshake and the
// record crypto are most of the emulator's CPU per connection, and one thread cannot serve a fleet.
//
//   devices ──TLS──> port ──accept──> worker 1..N  (tls-worker.ts: handshake, ALPN, certificate)
//                                          │ plaintext MQTT over a Unix socket, behind a peer header
//                                          v
//                      primary: broker (aedes), policies, registry, hook, control plane
//
// node:child_process fork, not node:cluster: cluster's settings are global to the process (tests
// run several emulators in one), its default round-robin mode accepts every connection in the
// primary and passes it on, and it re-binds a port-0 listener to a new port when every worker is
// gone. Here the primary listens (so the port and its errors are its own), sends the listening
// socket to each worker, and the kernel spreads the accepts among them. The primary holds its
// copy only while a worker starts (measured: holding it for good, it took 46 % of the accepts
// under load, each one handed on over IPC); a worker that starts later gets the socket from a
// running one, or, with none left, the primary listens on the same port again. What the primary
// accepts while it holds the socket goes to a worker over IPC, unread (`pauseOnConnect`).
// Everything that must be exact (the CONNECT rate per client id, policies, registry commits)
// stays in the primary, whatever the number of workers.
import { fork, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, rm, unlink } from 'node:fs/promises';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { packageRoot } from '../shared/package-root.ts';
import { readPeerHeader } from './peer-header.ts';
import { listen, type Peer, type TlsFrontOptions } from './tls-front.ts';
import type { FromTlsWorker, ToTlsWorker } from './tls-worker.ts';

export interface TlsWorkerPoolOptions {
  count: number;
  host: string;
  port: number;
  front: TlsFrontOptions;
  /** The state directory: the Unix socket goes there (or into a private temporary one if that path is too long). */
  dir: string;
  log: (line: string) => void;
  /** A device's connection, plaintext from here on, and what its TLS layer said of it. */
  onConnection: (socket: net.Socket, peer: Peer) => void;
}

/**
 * The CLI's default: every core but one for TLS (the primary keeps one) from 3 cores up; none on 1
 * or 2. On 2 cores a worker bought nothing measurable (the devices or the load generator need the
 * other core: 129 vs 132 provisions/s, docs/emulator.md) and added ~80 MB, which took the
 * emulator's processes over the 200 MB target at 10,000 things.
 */
export function defaultTlsWorkers(cores = os.availableParallelism()): number {
  return cores > 2 ? cores - 1 : 0;
}

export const TLS_WORKERS_SOCKET = 'tls-workers.sock';
/** sun_path holds 108 bytes on Linux. */
const MAX_SOCKET_PATH_BYTES = 100;
/** A worker that dies sooner than this after its start is restarted only after this long (no crash loop). */
const RESTART_BACKOFF_MS = 1000;
/** How long a worker gets to exit once its IPC channel is closed before it is killed. */
const EXIT_GRACE_MS = 5000;

/** The worker's entry: its TypeScript through tsx when we run from src/, the bundle's in dist/. */
function workerEntry(): { file: string; execArgv: string[] } {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.ts')) {
    const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
    return { file: path.join(path.dirname(here), 'tls-worker.ts'), execArgv: ['--import', tsx] };
  }
  return { file: path.join(packageRoot(), 'dist', 'emulator-tls-worker.mjs'), execArgv: [] };
}

const exited = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null;

export class TlsWorkerPool {
  readonly #children = new Set<ChildProcess>();
  readonly #ready = new Set<ChildProcess>();
  readonly #connections = new Set<net.Socket>();
  readonly #restarts = new Set<NodeJS.Timeout>();
  /** The listening socket while the primary holds a copy (a worker is starting), else undefined. */
  #listener: Promise<net.Server> | undefined;
  #started = false;
  #port = 0;
  #starting = 0;
  #plain!: net.Server;
  #socketPath!: string;
  #tmpDir: string | undefined;
  #closing: Promise<void> | undefined;
  #next = 0;
  /** Device connections the workers passed on, and how many of them the primary had accepted itself. */
  #passedOn = 0;
  #acceptedByPrimary = 0;

  private constructor(private readonly opts: TlsWorkerPoolOptions) {}

  static async start(opts: TlsWorkerPoolOptions): Promise<TlsWorkerPool> {
    const pool = new TlsWorkerPool(opts);
    try {
      await pool.#start();
    } catch (error) {
      await pool.close();
      throw error;
    }
    return pool;
  }

  get port(): number {
    return this.#port;
  }

  /** The running workers' process ids. */
  get pids(): number[] {
    return [...this.#children].map((c) => c.pid!);
  }

  async #start(): Promise<void> {
    const { opts } = this;
    const inDir = path.join(opts.dir, TLS_WORKERS_SOCKET);
    if (Buffer.byteLength(inDir) <= MAX_SOCKET_PATH_BYTES) {
      // Left behind by a killed emulator (the caller made sure none runs for this dir).
      await unlink(inDir).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') throw e;
      });
      this.#socketPath = inDir;
    } else {
      this.#tmpDir = await mkdtemp(path.join(os.tmpdir(), 'fp-emulator-'));
      this.#socketPath = path.join(this.#tmpDir, 's');
    }
    // Only this user may hand the broker a connection with a certificate id of its choosing: the
    // socket lives in a 0700 directory and is itself 0600.
    this.#plain = net.createServer((socket) => this.#fromWorker(socket));
    await new Promise<void>((resolve, reject) => {
      this.#plain.once('error', reject);
      this.#plain.listen(this.#socketPath, () => resolve());
    });
    await chmod(this.#socketPath, 0o600);
    await Promise.all(Array.from({ length: opts.count }, () => this.#spawn()));
    this.#started = true;
  }

  /** The listening socket, held by the primary for a starting worker (one hold for all that start together). */
  #hold(): Promise<net.Server> {
    this.#listener ??= this.#acquire();
    return this.#listener;
  }

  /** A running worker's copy of the listening socket, or, with none left, a new one on the same port. */
  async #acquire(): Promise<net.Server> {
    let server: net.Server | undefined;
    for (const child of this.#ready) {
      server = await this.#borrow(child).catch(() => undefined);
      if (server) break;
    }
    if (!server) {
      server = net.createServer();
      this.#port = await listen(server, this.#port || this.opts.port, this.opts.host);
    }
    // Unread, so that a worker can take over a connection the primary accepts meanwhile.
    Object.assign(server, { pauseOnConnect: true });
    server.on('connection', (socket: net.Socket) => this.#handOver(socket));
    return server;
  }

  /** Asks a running worker for its copy of the listening socket. */
  #borrow(child: ChildProcess): Promise<net.Server> {
    return new Promise((resolve, reject) => {
      const onMessage = (message: FromTlsWorker, handle?: unknown) => {
        if (message.t !== 'listener' || !(handle instanceof net.Server)) return;
        child.off('message', onMessage).off('exit', onExit);
        resolve(handle);
      };
      const onExit = () => {
        child.off('message', onMessage);
        reject(new Error('the worker exited'));
      };
      child.on('message', onMessage).once('exit', onExit);
      child.send({ t: 'lend' } satisfies ToTlsWorker);
    });
  }

  /** Once no worker is starting, the primary lets go of its copy: only the workers accept. */
  #release(): void {
    if (this.#starting > 0 || !this.#listener) return;
    void this.#listener.then(
      (server) => server.close(),
      () => undefined,
    );
    this.#listener = undefined;
  }

  #fromWorker(socket: net.Socket): void {
    this.#passedOn++;
    this.#connections.add(socket);
    socket.once('close', () => this.#connections.delete(socket));
    readPeerHeader(socket).then(
      (peer) => this.opts.onConnection(socket, peer),
      (error: Error) => {
        this.opts.log(`tls: dropped a connection from a worker: ${error.message}`);
        socket.destroy();
      },
    );
  }

  /** A connection the primary accepted: a worker does its TLS, round robin. */
  #handOver(socket: net.Socket): void {
    this.#acceptedByPrimary++;
    const ready = [...this.#ready];
    const child = ready[this.#next++ % ready.length];
    if (!child) return void socket.destroy();
    child.send({ t: 'connection' } satisfies ToTlsWorker, socket, (error) => {
      if (error) socket.destroy();
    });
  }

  async #spawn(): Promise<void> {
    this.#starting++;
    try {
      let listener: net.Server;
      try {
        listener = await this.#hold();
      } catch (error) {
        // At the start the caller reports it (EADDRINUSE...); later, try again after a pause.
        if (!this.#started) throw error;
        this.opts.log(`tls: cannot listen on ${this.opts.host}:${this.#port} again for a new worker: ${(error as Error).message}; trying again`);
        this.#later(() => void this.#spawn());
        return;
      }
      if (this.#closing) return;
      await this.#fork(listener);
    } finally {
      this.#starting--;
      if (!this.#closing) this.#release();
    }
  }

  #fork(listener: net.Server): Promise<void> {
    const { file, execArgv } = workerEntry();
    const child = fork(file, [], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'json' });
    const startedAt = Date.now();
    this.#children.add(child);
    // A send to a worker that just died fails; its exit is handled below.
    child.on('error', (error) => this.opts.log(`tls: worker ${child.pid ?? '(starting)'}: ${error.message}`));
    const ready = new Promise<void>((resolve, reject) => {
      child.on('message', (message: FromTlsWorker) => {
        if (message.t === 'log') this.opts.log(message.line);
        else if (message.t === 'ready') {
          this.#ready.add(child);
          this.opts.log(`tls: worker ${child.pid} started`);
          resolve();
        }
      });
      child.once('exit', (code, signal) => {
        this.#children.delete(child);
        this.#ready.delete(child);
        reject(new Error(`a TLS worker exited before it was ready (${signal ?? `code ${code}`})`));
        if (!this.#closing) this.#restart(child, signal ?? `code ${code}`, Date.now() - startedAt);
      });
    });
    child.send({ t: 'init', front: this.opts.front, socketPath: this.#socketPath } satisfies ToTlsWorker, listener);
    return ready;
  }

  #restart(child: ChildProcess, how: string, livedMs: number): void {
    this.opts.log(`tls: worker ${child.pid} exited (${how}); starting another`);
    // A new worker that dies before it is ready comes back here through its own exit.
    const again = () => void this.#spawn().catch((error: Error) => this.opts.log(`tls: ${error.message}`));
    if (livedMs >= RESTART_BACKOFF_MS) again();
    else this.#later(again);
  }

  #later(run: () => void): void {
    const timer = setTimeout(() => {
      this.#restarts.delete(timer);
      run();
    }, RESTART_BACKOFF_MS);
    this.#restarts.add(timer);
  }

  /** Stops accepting, ends every worker (their connections with them) and waits until they are gone. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      for (const timer of this.#restarts) clearTimeout(timer);
      await this.#listener?.then(
        (server) => server.close(),
        () => undefined,
      );
      // How often the kernel gave the primary an accept (each costs it an IPC hand-over).
      this.opts.log(`tls: stopping the workers; they passed on ${this.#passedOn} connection(s), ${this.#acceptedByPrimary} of them accepted by the primary`);
      await Promise.all([...this.#children].map((child) => this.#end(child)));
      for (const socket of this.#connections) socket.destroy();
      if (this.#plain?.listening) await new Promise<void>((resolve) => this.#plain.close(() => resolve()));
      if (this.#tmpDir) await rm(this.#tmpDir, { recursive: true, force: true });
    })();
    return this.#closing;
  }

  /** Closing its IPC channel ends a worker (tls-worker.ts); one that does not exit is killed. */
  async #end(child: ChildProcess): Promise<void> {
    if (exited(child)) return;
    const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    if (child.connected) child.disconnect();
    else child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), EXIT_GRACE_MS);
    await gone;
    clearTimeout(timer);
  }
}
