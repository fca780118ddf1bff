// Runs the layer's testimage case (lib/oeqa/runtime/cases/fleetprovisioning.py, as rendered)
// against a booted QEMU device, as `bitbake -c testimage` would run it over ssh: the case's
// commands really execute in the guest, through a test-only command channel on its second serial
// port. The oeqa framework itself is not here (it lives in openembedded-core), so the harness
// gives the case the three names it imports: OERuntimeTestCase (a unittest.TestCase with
// `target`), OETestDepends (its order is honoured) and OEHasPackage (noted, not checked: the
// QEMU image is Debian-based and has no Yocto package manifest).
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { renderProjectLayer } from '../layer/render.ts';
import { enableUnit, type OverlayEntry } from './image.ts';

export const OEQA_CASE_PATH = 'lib/oeqa/runtime/cases/fleetprovisioning.py';

/** Kernel command-line word that turns the channel on (other boots never start it). */
export const COMMAND_CHANNEL_ARG = 'fp.test_shell=1';
const SHELL_UNIT = 'fp-test-shell.service';

// "<tag> <base64 command>" in, "<tag> <exit status> <base64 output>" out, on ttyS1 in raw mode.
// Ready (systemd-notify) only once the tty is open and raw, so nothing the host sends after
// multi-user.target is reached can be echoed or lost.
const SHELL_SCRIPT = `#!/bin/sh
# Test-only command channel of the fp-yocto QEMU test (never in a Yocto image).
exec </dev/ttyS1 >/dev/ttyS1 2>&1
stty raw -echo
systemd-notify --ready
while read -r tag cmd; do
  out=$(sh -c "$(printf '%s' "$cmd" | base64 -d)" </dev/null 2>&1)
  rc=$?
  printf '%s %s %s\\n' "$tag" "$rc" "$(printf '%s' "$out" | base64 -w0)"
done
`;

const SHELL_UNIT_TEXT = `[Unit]
Description=Test-only command channel on ttyS1 (fp-yocto QEMU test)
ConditionKernelCommandLine=${COMMAND_CHANNEL_ARG}
Before=multi-user.target

[Service]
Type=notify
NotifyAccess=all
ExecStart=/usr/local/sbin/fp-test-shell

[Install]
WantedBy=multi-user.target
`;

/** What a device image needs for the channel: inert unless the kernel command line asks for it. */
export function commandChannelOverlay(): OverlayEntry[] {
  return [
    { type: 'dir', path: '/usr/local/sbin', mode: 0o755 },
    { path: '/usr/local/sbin/fp-test-shell', mode: 0o755, contents: SHELL_SCRIPT },
    { path: `/usr/lib/systemd/system/${SHELL_UNIT}`, mode: 0o644, contents: SHELL_UNIT_TEXT },
    enableUnit(SHELL_UNIT),
  ];
}

const HARNESS = String.raw`
import base64, importlib.util, re, socket, sys, types, unittest

socket_path, case_path = sys.argv[1], sys.argv[2]
depends, packages = {}, []

def OETestDepends(deps):
    def mark(fn):
        depends[fn.__name__] = list(deps)
        return fn
    return mark

def OEHasPackage(pkgs):
    def mark(fn):
        packages.append((fn.__name__, pkgs))
        return fn
    return mark

class OERuntimeTestCase(unittest.TestCase):
    target = None

for name, attrs in [('oeqa', {}), ('oeqa.core', {}), ('oeqa.core.decorator', {}), ('oeqa.runtime', {}),
                    ('oeqa.runtime.decorator', {}),
                    ('oeqa.core.decorator.depends', {'OETestDepends': OETestDepends}),
                    ('oeqa.runtime.case', {'OERuntimeTestCase': OERuntimeTestCase}),
                    ('oeqa.runtime.decorator.package', {'OEHasPackage': OEHasPackage})]:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module

class SerialTarget:
    """target.run() as oeqa's ssh target has it: (exit status, output without trailing whitespace)."""
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(300)
        self.sock.connect(path)
        self.io = self.sock.makefile('rwb')
        self.count = 0

    def run(self, command, timeout=None):
        self.count += 1
        tag = 'c%d' % self.count
        self.io.write(('%s %s\n' % (tag, base64.b64encode(command.encode()).decode())).encode())
        self.io.flush()
        while True:
            line = self.io.readline()
            if not line:
                raise RuntimeError('the command channel closed during: %s' % command)
            m = re.fullmatch(r'(\S+) (\d+) ?(\S*)', line.decode('utf-8', 'replace').strip())
            if m and m.group(1) == tag:
                return int(m.group(2)), base64.b64decode(m.group(3)).decode('utf-8', 'replace').rstrip()

spec = importlib.util.spec_from_file_location('fleetprovisioning', case_path)
case_module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(case_module)
OERuntimeTestCase.target = SerialTarget(socket_path)

# Dependencies outside this module (ssh.SSHTest.test_ssh) stand for "the target answers".
status, _ = OERuntimeTestCase.target.run('true')
assert status == 0, 'the target does not answer'
for fn, pkgs in packages:
    print('%s needs package %s: not checked (no Yocto package manifest in this image)' % (fn, pkgs), file=sys.stderr)

cases = [c for c in vars(case_module).values() if isinstance(c, type) and issubclass(c, OERuntimeTestCase) and c is not OERuntimeTestCase]
suite, done = unittest.TestSuite(), set()
def add(cls, name):
    if name in done:
        return
    for dep in depends.get(name, []):
        module_name, class_name, method = dep.split('.')
        if module_name == 'fleetprovisioning':
            add(getattr(case_module, class_name), method)
    done.add(name)
    suite.addTest(cls(name))
for cls in cases:
    for name in sorted(n for n in dir(cls) if n.startswith('test')):
        add(cls, name)
result = unittest.TextTestRunner(stream=sys.stdout, verbosity=2).run(suite)
sys.exit(0 if result.wasSuccessful() and result.testsRun > 0 else 1)
`;

export interface OeqaResult {
  ok: boolean;
  testsRun: number;
  /** unittest's report (test names, failures), for the failure message. */
  output: string;
}

/** Runs the rendered case against the guest behind `socketPath` (qemu's chardev for ttyS1). */
export async function runOeqaCase(socketPath: string, workDir: string): Promise<OeqaResult> {
  const dir = join(workDir, 'oeqa');
  await mkdir(dir, { recursive: true });
  const layer = await renderProjectLayer();
  const caseText = layer.get(OEQA_CASE_PATH);
  if (!caseText) throw new Error(`the rendered layer has no ${OEQA_CASE_PATH}`);
  await writeFile(join(dir, 'fleetprovisioning.py'), caseText);
  await writeFile(join(dir, 'harness.py'), HARNESS);
  const r = await execa('python3', [join(dir, 'harness.py'), socketPath, join(dir, 'fleetprovisioning.py')], {
    reject: false,
    all: true,
    timeout: 15 * 60_000,
  });
  const output = r.all ?? '';
  const ran = /^Ran (\d+) tests?/m.exec(output);
  return { ok: r.exitCode === 0, testsRun: ran ? Number(ran[1]) : 0, output };
}
