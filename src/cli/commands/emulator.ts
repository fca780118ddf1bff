import { defineCommand } from 'citty';
import path from 'node:path';
import { EXIT, UserError } from '../../shared/errors.ts';

const DESCRIPTION = `Run a local stand-in for AWS IoT Core fleet provisioning.

MQTT 3.1.1 and 5 over mutual TLS with a local CA, the fleet-provisioning topics
($aws/certificates/create*, $aws/provisioning-templates/<name>/provision), provisioning
templates, the pre-provisioning hook and IoT policy checks, with a registry that survives
restarts. Devices connect to localhost:<port> (or a --server-name), trust the CA file it
prints (<state-dir>/root-ca.pem) instead of AmazonRootCA1, and present a claim certificate
issued by this emulator. \`fp-yocto init --local\` drives it through its control plane, served
on loopback (URL in <state-dir>/emulator.json, bearer token in <state-dir>/control-token).
Stop it with Ctrl-C.`;

/** Refuses a count no machine has: TLS workers beyond the cores only cost memory. */
const MAX_TLS_WORKERS = 256;

function parseTlsWorkers(value: string): number {
  const count = Number(value);
  if (!/^\d+$/.test(value) || count > MAX_TLS_WORKERS) throw new UserError(`--tls-workers: expected a whole number 0-${MAX_TLS_WORKERS}, got "${value}"`, EXIT.usage);
  return count;
}

function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UserError(`--port: expected a port number 0-65535, got "${value}"`, EXIT.usage);
  return port;
}

export default defineCommand({
  meta: { name: 'emulator', description: DESCRIPTION },
  args: {
    port: { type: 'string', description: 'MQTT over TLS port (0 = any free port)', default: '8883', valueHint: 'PORT' },
    host: { type: 'string', description: 'address to listen on', default: '127.0.0.1', valueHint: 'ADDR' },
    'state-dir': { type: 'string', description: 'where the CA, the registry and emulator.json live', default: '.fp-yocto/emulator', valueHint: 'DIR' },
    'server-name': { type: 'string', description: 'extra DNS name or IP for the server certificate (repeatable, or comma-separated)', valueHint: 'NAME' },
    'tls-workers': { type: 'string', description: 'processes doing the TLS for the broker (0 = in its own thread; default: one per core but one from 3 cores up, else 0)', valueHint: 'N' },
  },
  async run({ args }) {
    const port = parsePort(String(args.port));
    const { defaultTlsWorkers } = await import('../../emulator/tls-workers.ts');
    const tlsWorkers = args['tls-workers'] === undefined ? defaultTlsWorkers() : parseTlsWorkers(String(args['tls-workers']));
    const dir = path.resolve(String(args['state-dir']));
    const raw = args['server-name'] as string | string[] | undefined;
    const serverNames = (Array.isArray(raw) ? raw : raw ? [raw] : []).flatMap((n) => String(n).split(',')).map((n) => n.trim()).filter(Boolean);
    const { startEmulator } = await import('../../emulator/index.ts');
    const { createLogWriter } = await import('../../emulator/log-writer.ts');
    const log = createLogWriter((text) => process.stdout.write(text));
    process.once('exit', () => log.flush());
    let emulator;
    try {
      emulator = await startEmulator({
        port,
        host: String(args.host),
        dir,
        serverNames,
        tlsWorkers,
        log: (line) => log.line(line),
      });
    } catch (error) {
      log.flush();
      const e = error as NodeJS.ErrnoException;
      if (e.code === 'EADDRINUSE') throw new UserError(`port ${port} on ${args.host} is already in use: stop what listens there or pass --port`);
      if (e.code === 'EACCES') throw new UserError(`no permission to listen on port ${port} on ${args.host}: use a port above 1023`);
      if (e.code === 'EADDRNOTAVAIL') throw new UserError(`--host ${args.host} is not an address of this machine`);
      if (/already running/.test(e.message ?? '')) throw new UserError(e.message);
      throw error;
    }
    // The start-up lines first, then the banner (tests and init wait for "ready").
    log.flush();
    console.log(`endpoint:      ${emulator.endpoint}:${emulator.port} (MQTT over mutual TLS; ALPN x-amzn-mqtt-ca accepted)`);
    console.log(`root CA:       ${emulator.caPath}`);
    console.log(`state dir:     ${emulator.dir}`);
    console.log(`control URL:   ${emulator.controlUrl}`);
    console.log('ready (Ctrl-C stops)');
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    log.flush();
    console.log(`${signal}: stopping`);
    await emulator.close();
  },
});
