// A revoked host certificate is refused by the real nginx once `cp sync` installs a tree whose signed
// revocations name its serial (the CRL is left untouched: the signed document alone does it), also over
// the TLS session the agent resumes from its earlier runs. The agent
// with that certificate (`nixfleet agent --once` as a child process) stops at the first request and says
// why: nginx's refusal reason is in its log and its --json outcome. The other host carries on.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireTool } from '../support/skip.ts';
import { requireNetns } from '../support/netns.ts';
import { E2eStack, NEW } from '../support/e2e-stack.ts';
import { until } from '../support/e2e-processes.ts';
import { labFleet } from '../agent/lab-fleet.ts';
import { REVOKED_HOSTS_MAP, REVOKED_SERIALS_MAP } from '../../control-plane/tree-dir.ts';
import { normalizeSerial } from '../../control-plane/release-view.ts';
import type { FleetInput } from '../../publisher/fleet-schema.ts';

test('cp sync of signed revocations naming a certificate -> nginx refuses it; the agent says why', async () => {
  if (
    !requireTool('nginx', 'e2e through nginx') ||
    !requireTool('openssl', 'fleet PKI') ||
    !requireTool('curl', 'requests from inside a namespace') ||
    !requireNetns('hosts and control plane in network namespaces')
  )
    return;
  const stack = await E2eStack.create({ hosts: ['r1', 'r2'], netns: true });
  try {
    const fleet = (): FleetInput =>
      labFleet(stack.lab, { prod: { hosts: { r1: NEW, r2: NEW }, waves: [{ soakSeconds: 0 }] } });
    stack.publish(fleet());
    await stack.startControlPlane();
    await stack.waitAckEndpointPrimed('r1');

    // Before: both hosts fetch, activate and confirm through nginx.
    for (const h of ['r1', 'r2']) {
      const run = await stack.runAgentOnce(h);
      assert.is(run.code, 0, `${h}: ${JSON.stringify(run.outcome)}`);
      assert.is(run.outcome?.['kind'], 'decided');
      assert.ok(
        run.events.some((e) => e['event'] === 'confirmed'),
        `${h} confirmed its activation`,
      );
    }

    // CI revokes r2's certificate (only the certificate: the host key entry is named, so the host itself
    // is not revoked) and publishes; the control plane installs it.
    const r2 = stack.lab.host('r2');
    await new Promise((r) => setTimeout(r, 1100)); // a new issuedAt second for the new timestamp
    const revoked = fleet();
    revoked.revoked = {
      hosts: [
        {
          host: 'r2',
          keyid: r2.key.keyid,
          certSerial: r2.cert.serial.toUpperCase(),
          reason: 'certificate key leaked',
        },
      ],
      closures: [],
    };
    stack.publish(revoked);
    const before = await stack.request('r2', 'timestamp.json');
    assert.is(before.status, 200, 'r2 still reads until the control plane installs the revocation');
    const synced = await stack.sync();
    assert.ok(synced.installed && synced.nginxReloaded, JSON.stringify(synced));
    assert.is(synced.revokedSerials, 1);
    await stack.nginx!.reload();
    // It is the certificate that is refused: its serial is in the serial map; the host name is not revoked.
    assert.match(
      readFileSync(join(stack.cpDir, REVOKED_SERIALS_MAP), 'utf8'),
      new RegExp(normalizeSerial(r2.cert.serial), 'i'),
    );
    assert.not.match(readFileSync(join(stack.cpDir, REVOKED_HOSTS_MAP), 'utf8'), /r2/);

    const refused = await stack.request('r2', 'timestamp.json');
    assert.is(refused.status, 403);
    assert.equal(JSON.parse(refused.body), { error: 'Forbidden', reason: 'revoked' });
    const post = await stack.request('r2', 'acks', { method: 'POST', body: '{}' });
    assert.is(
      post.status,
      403,
      'acks from the revoked certificate are refused by nginx before the endpoint',
    );
    assert.match(post.body, /revoked/);
    const ok = await stack.request('r1', 'timestamp.json');
    assert.is(ok.status, 200);
    assert.is(JSON.parse(ok.body).signed.release.version, 2);

    // The agent behind the revoked certificate: exit 2 (cannot fetch), and it says why.
    const accessLog = () =>
      readFileSync(join(stack.runtimeDir, 'access.log'), 'utf8').split('\n').filter(Boolean);
    // nginx logs a request after answering it, so the line of a request that has its answer may not be
    // written yet. Its one worker answers and logs in order: once a marker request sent afterwards is
    // in the log, every request before it is too.
    const loggedUpTo = async (marker: string): Promise<number> => {
      assert.is((await stack.request('r1', `timestamp.json?${marker}`)).status, 200, marker);
      return until(
        `nginx to log the ${marker} marker`,
        5000,
        () => {
          const at = accessLog().findIndex((l) => l.includes(`"GET /timestamp.json?${marker} `));
          return at >= 0 ? at : undefined;
        },
        20,
      );
    };
    const mark = (await loggedUpTo('before-run')) + 1;
    const run = await stack.runAgentOnce('r2');
    assert.is(run.code, 2, JSON.stringify(run.outcome));
    assert.is(run.outcome?.['kind'], 'unreachable');
    assert.match(String(run.outcome?.['reason']), /HTTP 403 \(Forbidden: revoked\)/);
    const logged = run.events.find((e) => e['event'] === 'control-plane-unreachable');
    assert.match(String(logged?.['reason']), /revoked/);
    // A refusal is an answer: the agent does not retry it.
    const end = await loggedUpTo('after-run');
    const agentLines = accessLog().slice(mark, end);
    const agentRequests = agentLines.map((l) =>
      /"([A-Z]+ \S+)[^"]*" (\d{3})/.exec(l)!.slice(1, 3).join(' '),
    );
    // Over the TLS session its earlier runs left (nginx's default session cache outlives the reload
    // cp sync made): the signed revocations refuse a resumed session as they refuse a new one.
    assert.ok(
      agentLines.every((l) => l.endsWith(' r')),
      `the refused run resumed its session:\n${agentLines.join('\n')}`,
    );
    assert.ok(
      agentRequests.length > 0 && agentRequests.every((r) => r.endsWith(' 403')),
      agentRequests.join('\n'),
    );
    assert.is(
      new Set(agentRequests).size,
      agentRequests.length,
      `a refused request was repeated:\n${agentRequests.join('\n')}`,
    );

    // The other host goes on with release 2.
    const r1 = await stack.runAgentOnce('r1');
    assert.is(r1.code, 0, JSON.stringify(r1.outcome));
    assert.equal([r1.outcome?.['kind'], r1.outcome?.['decision']], ['decided', 'converged']);
  } catch (e) {
    throw stack.explain(e);
  } finally {
    await stack.close();
  }
});

test.run();
