// Who may do what: signing in and out (the session ends on the server
// too), a read-only token (no control offered, every form refused), a
// second tenant (nothing of the first, by list or by address), and CSRF
// (the approve form without its token, or sent from another origin).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  serve, receiver, launch, context, accessible, shot, at, signIn, csrfOf, postForm, waitFor, mainText,
} from './lib.mjs';

let server;
let hooks;
let browser;
let acme;

function orders(port, threshold) {
  return `## An order placed in the web shop.
event order.placed {
  id: string
  customer: string
  amount: float
}

## Ask the warehouse to ship an order.
action ship_order(id: string) via webhook "http://127.0.0.1:${port}/ship"

rule big_orders "Big orders wait for the owner"
  when order.placed
  if amount >= ${threshold}
  then
    require approval from role owner within 48h do
      ship_order(id)
    end
end

rule small_orders "Small orders ship at once"
  when order.placed
  if amount < ${threshold}
  then ship_order(id)
end
`;
}

let approvals; // acme's two pending approvals
let forms; // their ids as the inbox's forms send them (the API's ids)
let dead; // acme's dead delivery

before(async () => {
  [server, hooks, browser] = await Promise.all([
    serve(['--max-attempts', '2', '--retry-base', '100ms']), receiver(), launch(),
  ]);
  hooks.answer('/ship', 500); // the warehouse is down: shipping goes dead
  acme = await server.tenant('acme');
  await acme.deploy('orders', { 'orders.stw': orders(hooks.port, 200) });
  await acme.deploy('orders', { 'orders.stw': orders(hooks.port, 100) }); // version 2
  await acme.post([
    { id: 'ord-1', type: 'order.placed', occurred_at: at(-60), key: 'cust-ada', payload: { id: 'ord-1', customer: 'Ada', amount: 310 } },
    { id: 'ord-2', type: 'order.placed', occurred_at: at(-50), key: 'cust-bo', payload: { id: 'ord-2', customer: 'Bo', amount: 150 } },
    { id: 'ord-3', type: 'order.placed', occurred_at: at(-40), key: 'cust-cy', payload: { id: 'ord-3', customer: 'Cy', amount: 20 } },
  ]);
  approvals = await waitFor('two approvals', async () => {
    const list = await acme.list('/v1/approvals?status=pending');
    return list.length === 2 ? list : null;
  });
  // The inbox's forms name an approval by its id, as the API shows it.
  forms = approvals.map((a) => a.id);
  assert.equal(forms.length, 2);
  [dead] = await waitFor('the small order\'s shipping dead', async () => {
    const list = await acme.list('/v1/actions?status=dead');
    return list.length === 1 ? list : null;
  });
});

after(async () => {
  await browser?.close();
  await hooks?.close();
  await server?.stop();
});

/** acme's state, which no refused form may change. */
async function unchanged() {
  const pending = await acme.list('/v1/approvals?status=pending');
  assert.deepEqual(pending.map((a) => a.id).sort(), approvals.map((a) => a.id).sort());
  assert.ok(pending.every((a) => a.decision === null), JSON.stringify(pending));
  const actions = await acme.list('/v1/actions?status=dead');
  assert.deepEqual(actions.map((a) => a.id), [dead.id]);
  const ruleset = await acme.ok('GET', '/v1/rulesets/orders');
  assert.equal(ruleset.version, 2);
  assert.equal(ruleset.enabled, true);
  assert.equal((await acme.list('/v1/rulesets')).length, 1);
}

test('sign in with a token, see the overview, sign out', async () => {
  const { ctx, problems } = await context(browser);
  const page = await ctx.newPage();
  const base = server.base;

  // Not signed in: every page leads to the sign-in page.
  await page.goto(`${base}/approvals`);
  await page.waitForURL(`${base}/sign-in`);
  await page.getByRole('heading', { level: 1, name: 'Sign in to Steward' }).waitFor();
  await accessible(browser, page, 'sign in');
  await shot(page, 'sign-in', server.dir);

  // A wrong token is refused, and says so.
  problems.expect(`${base}/sign-in`);
  await page.getByLabel('Token').fill('acme.nope.nope');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').filter({ hasText: 'That token is not valid.' }).waitFor();
  await accessible(browser, page, 'sign in refused');

  await signIn(page, base, acme.token);
  assert.match(await page.locator('header .who').innerText(), /Tenant acme/);
  assert.equal(await page.locator('section[aria-labelledby="ov-approvals"] .stat', { hasText: 'waiting' }).locator('.n').innerText(), '2');
  const cookies = await ctx.cookies();
  const session = cookies.find((c) => c.name === 'steward_session');
  assert.ok(session && session.httpOnly && session.sameSite === 'Strict', JSON.stringify(cookies));

  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.waitForURL(`${base}/sign-in`);
  await page.goto(`${base}/`);
  await page.waitForURL(`${base}/sign-in`);
  await page.goBack();
  await page.waitForURL(`${base}/sign-in`);

  // The old cookie, put back, is no session any more.
  const again = await context(browser);
  await again.ctx.addCookies([session]);
  const p2 = await again.ctx.newPage();
  await p2.goto(`${base}/`);
  await p2.waitForURL(`${base}/sign-in`);

  problems.check();
  again.problems.check();
  await again.ctx.close();
  await ctx.close();
});

test('the admin token signs in, then chooses a tenant to look at', async () => {
  const { ctx, problems } = await context(browser);
  const page = await ctx.newPage();
  const base = server.base;
  await page.goto(`${base}/sign-in`);
  await page.getByLabel('Token').fill(server.adminToken);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${base}/tenant`);
  await page.getByRole('heading', { level: 1, name: 'Choose a tenant' }).waitFor();
  await accessible(browser, page, 'choose a tenant');
  await page.getByLabel('Tenant').fill('acme');
  await page.getByRole('button', { name: 'Look at this tenant' }).click();
  await page.waitForURL(`${base}/`);
  assert.match(await page.locator('header .who').innerText(), /Tenant acme\s+\(change\)/);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Rules' }).click();
  await page.getByRole('link', { name: 'orders', exact: true }).waitFor();
  problems.check();
  await ctx.close();
});

test('a read token: no control is offered, and every form is refused', async () => {
  const read = await server.tenant('acme', ['read']);
  const { ctx, problems } = await context(browser);
  const page = await ctx.newPage();
  const base = server.base;
  await signIn(page, base, read.token);
  const csrf = await csrfOf(page);
  assert.ok(csrf.length > 10);

  const none = async (where, ...names) => {
    for (const name of names) {
      assert.equal(await page.getByRole('button', { name, exact: true }).count(), 0, `${where} offers the button ${name}`);
      assert.equal(await page.getByRole('link', { name, exact: true }).count(), 0, `${where} offers the link ${name}`);
    }
  };

  await page.goto(`${base}/rules`);
  await page.getByRole('link', { name: 'orders', exact: true }).waitFor();
  await none('the rules', 'New ruleset');

  await page.goto(`${base}/rules/orders`);
  await page.getByRole('link', { name: 'Open in the editor (read only)' }).waitFor();
  await none('the ruleset', 'Edit', 'Disable', 'Enable', 'Deploy');
  assert.equal(await page.getByRole('link', { name: /^Roll back to/ }).count(), 0);
  // Read may still compare versions.
  await page.getByRole('link', { name: 'Diff with active' }).waitFor();

  await page.goto(`${base}/rules/orders/edit`);
  await page.getByRole('button', { name: 'Validate' }).waitFor();
  await none('the editor', 'Deploy');

  await page.goto(`${base}/approvals`);
  assert.equal(await page.locator('section.card').count(), 2);
  await none('the inbox', 'Approve', 'Reject');
  assert.equal(await page.locator('form[action="/approvals/decide"]').count(), 0);

  await page.goto(`${base}/deliveries?status=dead`);
  assert.equal(await page.locator('tbody tr').count(), 1);
  await none('the deliveries', 'Retry', 'Retry every dead action…');
  await accessible(browser, page, 'deliveries, read only');

  // The forms, posted anyway with the session's own CSRF token.
  const posts = [
    ['/approvals/decide', { id: forms[0], decision: 'approve', comment: '' }],
    ['/approvals/decide', { id: forms[1], decision: 'reject', comment: '' }],
    ['/deliveries/retry', { id: dead.id }],
    ['/deliveries/retry-dead', {}],
    ['/rules/orders/confirm/disable', {}],
    ['/rules/orders/confirm/enable', {}],
    ['/rules/orders/confirm/rollback', { version: '1' }],
    ['/rules/orders/edit', { path: 'orders.stw', text: orders(hooks.port, 5), from: '', to: '', do: 'deploy' }],
    ['/new-ruleset', { name: 'sneaky', path: 'sneaky.stw', text: 'event x { id: string }\n', from: '', to: '', do: 'deploy' }],
  ];
  for (const [url, form] of posts) {
    const r = await postForm(page, `${base}${url}`, { csrf, ...form });
    assert.equal(r.status(), 403, `POST ${url} by a read token: ${r.status()}`);
    assert.match(await r.text(), /does not have the scope/);
  }
  // The pages behind the controls, too.
  for (const url of ['/rules/orders/confirm/disable', '/rules/orders/confirm/rollback?version=1', '/deliveries/retry-dead', '/new-ruleset']) {
    const r = await page.request.get(`${base}${url}`, { failOnStatusCode: false });
    assert.equal(r.status(), 403, `GET ${url} by a read token`);
  }
  await unchanged();

  problems.check();
  await ctx.close();
});

test('another tenant sees nothing of the first', async () => {
  const globex = await server.tenant('globex');
  const { ctx, problems } = await context(browser);
  const page = await ctx.newPage();
  const base = server.base;
  await signIn(page, base, globex.token);
  assert.match(await page.locator('header .who').innerText(), /Tenant globex/);
  for (const n of await page.locator('.stat .n').allInnerTexts()) assert.equal(n, '0');

  const acmeWords = /ord-\d|cust-(ada|bo|cy)|orders|big_orders|small_orders|ship_order/;
  const lists = {
    '/events': 'No events yet.',
    '/rules': 'No rulesets yet.',
    '/approvals': 'Nothing is waiting for a decision.',
    '/approvals?status=approved': 'None.',
    '/approvals?status=cancelled': 'None.',
    '/deliveries': 'No action yet',
    '/deliveries?status=dead': 'No action matches these filters.',
    '/tasks': 'No tasks.',
    '/tasks?show=notifications': 'No notifications.',
    '/scheduled': 'No timer is pending.',
  };
  for (const [url, says] of Object.entries(lists)) {
    await page.goto(`${base}${url}`);
    await page.locator('p.empty', { hasText: says }).first().waitFor();
    assert.equal(await page.locator('tbody tr').count(), 0, `${url} lists rows`);
    assert.doesNotMatch(await mainText(page), acmeWords, url);
  }
  await page.goto(`${base}/audit`);
  assert.doesNotMatch(await mainText(page), acmeWords, '/audit');
  assert.doesNotMatch(await mainText(page), /\bacme\b/, '/audit');

  // By address: acme's event, ruleset, its pages: not found.
  for (const url of ['/events/ord-1', '/rules/orders', '/rules/orders/edit', '/rules/orders/versions/1', '/rules/orders/diff?from=1&to=2', '/rules/orders/confirm/disable']) {
    problems.expect(`${base}${url}`);
    const r = await page.goto(`${base}${url}`);
    assert.equal(r.status(), 404, `${url}: ${r.status()}`);
    assert.doesNotMatch(await mainText(page), /Ada|big_orders|ship_order|amount/, url);
  }
  // A key's time line: nothing happened for it here.
  await page.goto(`${base}/keys/cust-ada`);
  await page.locator('p.empty', { hasText: 'Nothing has happened for this key.' }).waitFor();
  assert.equal(await page.locator('ol.timeline li').count(), 0);

  // Deciding acme's approval or retrying its delivery: not found.
  const csrf = await csrfOf(page);
  const decide = await postForm(page, `${base}/approvals/decide`, { csrf, id: forms[0], decision: 'approve', comment: '' });
  assert.equal(decide.status(), 404);
  const retry = await postForm(page, `${base}/deliveries/retry`, { csrf, id: dead.id });
  assert.equal(retry.status(), 404);
  await unchanged();

  problems.check();
  await ctx.close();
});

test('CSRF: the approve form without its token, or from another origin, is refused', async () => {
  const { ctx, problems } = await context(browser);
  const page = await ctx.newPage();
  const base = server.base;
  await signIn(page, base, acme.token);
  await page.goto(`${base}/approvals`);
  const csrf = await csrfOf(page);
  // The inbox's own form carries the same token.
  const own = page.locator('form[action="/approvals/decide"]').first();
  assert.equal(await own.locator('input[name="csrf"]').inputValue(), csrf);
  const id = await own.locator('input[name="id"]').inputValue();
  assert.ok(forms.includes(id), id);
  const form = { id, decision: 'approve', comment: 'forged' };

  const without = await postForm(page, `${base}/approvals/decide`, form);
  assert.equal(without.status(), 403);
  assert.match(await without.text(), /security token is missing or stale/);
  const wrong = await postForm(page, `${base}/approvals/decide`, { ...form, csrf: `${csrf}x` });
  assert.equal(wrong.status(), 403);
  const evil = await postForm(page, `${base}/approvals/decide`, { ...form, csrf }, { Origin: 'http://evil.example' });
  assert.equal(evil.status(), 403);
  assert.match(await evil.text(), /sent from another site/);
  const crossSite = await postForm(page, `${base}/approvals/decide`, { ...form, csrf }, { 'Sec-Fetch-Site': 'cross-site' });
  assert.equal(crossSite.status(), 403);
  // Signing out is a form like the others.
  const signOut = await postForm(page, `${base}/sign-out`, {}, { Origin: 'http://evil.example' });
  assert.equal(signOut.status(), 403);

  // A page of another origin (the receiver's port) whose form posts to the
  // console, even with the right token, in the signed-in browser.
  hooks.page('/evil', `<!doctype html><html lang="en"><title>Win a prize</title>
<form method="post" action="${base}/approvals/decide">
<input type="hidden" name="csrf" value="${csrf}"><input type="hidden" name="id" value="${id}">
<input type="hidden" name="decision" value="approve"><button>Claim</button></form></html>`);
  problems.expect(`${base}/approvals/decide`);
  await page.goto(hooks.url('/evil'));
  const [answer] = await Promise.all([
    page.waitForResponse(`${base}/approvals/decide`),
    page.getByRole('button', { name: 'Claim' }).click(),
  ]);
  assert.equal(answer.status(), 403);

  await unchanged();

  // The same form from the console itself is taken.
  const ok = await postForm(page, `${base}/approvals/decide`, { ...form, csrf, comment: 'from the console' }, { Origin: base });
  assert.equal(ok.status(), 303);
  assert.equal(ok.headers().location, '/approvals?done=approved');
  const decided = await acme.ok('GET', `/v1/approvals/${encodeURIComponent(id)}`);
  assert.equal(decided.decision.via, 'console');
  assert.equal(decided.decision.comment, 'from the console');

  problems.check();
  await ctx.close();
});

test('a read token is not offered "Retry the dead ones…" on the overview', async () => {
  const read = await server.tenant('acme', ['read']);
  const { ctx } = await context(browser);
  const page = await ctx.newPage();
  try {
    await signIn(page, server.base, read.token);
    assert.equal(await page.getByRole('link', { name: 'Retry the dead ones…' }).count(), 0);
  } finally {
    await ctx.close();
  }
});

test('the console serves a favicon (browsers ask for one on every first page)', async () => {
  const r = await fetch(`${server.base}/favicon.ico`);
  assert.ok(r.status === 200 || r.status === 204, `GET /favicon.ico: ${r.status}`);
});
