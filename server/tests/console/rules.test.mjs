// Rules in the console: a ruleset deployed over the API, opened, edited in
// the browser (a type error shown under its line, fixed), backtested against
// stored events (added and removed actions), deployed as version 2, seen in
// the audit log, its versions, diff and a roll back through its confirm page;
// the editor by keyboard. Every page visited is checked with axe-core.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  serve, receiver, launch, context, accessible, shot, at, tabThrough, focused, mainText, signIn,
} from './lib.mjs';

let server;
let hooks;
let browser;
let api;

/** The orders ruleset: big orders wait for the owner, small ones ship. */
function orders(port, threshold = '100', text = 'big order {id} from {customer}') {
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
    log "${text}"
    require approval from role owner within 48h do
      ship_order(id)
    else
      notify role owner "Order {id} was not approved in time"
    end
end

rule small_orders "Small orders ship at once"
  when order.placed
  if amount < ${threshold}
  then ship_order(id)
end
`;
}

before(async () => {
  [server, hooks, browser] = await Promise.all([serve(), receiver(), launch()]);
  api = await server.tenant('acme');
  await api.deploy('orders', { 'orders.stw': orders(hooks.port) });
  // Stored events for the backtest: one big order, two small ones, each
  // customer its own key.
  await api.post([
    { id: 'ord-1001', type: 'order.placed', occurred_at: at(-600), key: 'cust-ada', payload: { id: 'ord-1001', customer: 'Ada', amount: 240.0 } },
    { id: 'ord-1002', type: 'order.placed', occurred_at: at(-300), key: 'cust-brook', payload: { id: 'ord-1002', customer: 'Brook', amount: 72.5 } },
    { id: 'ord-1003', type: 'order.placed', occurred_at: at(-60), key: 'cust-chen', payload: { id: 'ord-1003', customer: 'Chen', amount: 18.9 } },
  ]);
});

after(async () => {
  await browser?.close();
  await hooks?.close();
  await server?.stop();
});

test('rules: edit, validate, backtest, deploy, audit, versions, roll back', async () => {
  const { ctx, problems } = await context(browser);
  const page = await ctx.newPage();
  const base = server.base;
  await signIn(page, base, api.token);

  // The list, then the ruleset.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Rules' }).click();
  await page.waitForURL(`${base}/rules`);
  await page.getByRole('cell', { name: 'orders' }).waitFor();
  await accessible(browser, page, 'rules list');
  await shot(page, 'rules', server.dir);

  await page.getByRole('link', { name: 'orders', exact: true }).click();
  await page.waitForURL(`${base}/rules/orders`);
  assert.match(await page.locator('p.lede').innerText(), /Version 1\b/);
  // The files highlighted: keywords and the event's name coloured.
  await page.locator('.code .tok-keyword', { hasText: 'rule' }).first().waitFor();
  await accessible(browser, page, 'ruleset');
  await shot(page, 'ruleset', server.dir);

  // The editor: break the rule (a string compared with a number).
  await page.getByRole('link', { name: 'Edit', exact: true }).click();
  await page.waitForURL(`${base}/rules/orders/edit`);
  const text = page.getByLabel('Text of orders.stw');
  assert.equal((await text.inputValue()).replace(/\r\n/g, '\n'), orders(hooks.port));
  await accessible(browser, page, 'editor');
  await text.fill(orders(hooks.port).replace('if amount >= 100', 'if customer >= 100'));
  await page.getByRole('button', { name: 'Validate' }).click();
  await page.waitForURL(`${base}/rules/orders/edit`);
  await page.locator('.notice.bad', { hasText: 'The rules do not check: 1 error(s)' }).waitFor();
  // The diagnostic is under line 13 of orders.stw, the line of the `if`.
  const file = page.locator('h3:has(code:text-is("orders.stw")) + .code');
  const line = file.locator('span.line[id$="L13"]');
  assert.match(await line.textContent(), /if customer >= 100/);
  const diag = file.locator('span.line[id$="L13"] + .diag.error');
  const said = await diag.innerText();
  assert.match(said, /^error\[E0303\]: mismatched types: `customer` is a `string`, `100` is an `int` \(line 13, column \d+\)/);
  assert.match(said, /help: /);
  // The text kept as typed, for the fix.
  assert.match(await text.inputValue(), /if customer >= 100/);
  await accessible(browser, page, 'editor with a diagnostic');
  await diag.scrollIntoViewIfNeeded();
  await page.evaluate(() => window.scrollBy(0, -260));
  await shot(page, 'editor-diagnostic', server.dir);

  // Fixed: it checks.
  await text.fill(orders(hooks.port));
  await page.getByRole('button', { name: 'Validate' }).click();
  await page.locator('.notice.good', { hasText: 'The rules check' }).waitFor();
  assert.equal(await page.locator('.diag').count(), 0);

  // A change whose actions differ: a lower threshold, another log text.
  const changed = orders(hooks.port, '50', 'order {id} of {customer} needs the owner');
  await text.fill(changed);
  await page.getByLabel('From').fill(at(-3600));
  await page.getByLabel('To').fill(at(3600));
  await page.getByRole('button', { name: 'Backtest' }).click();
  const result = page.locator('section[aria-labelledby="bt-result"]');
  await result.waitFor();
  assert.match(await result.locator('p').first().innerText(), /^3 stored event\(s\) replayed: \d+ added, \d+ removed, \d+ unchanged\.$/);
  const added = result.locator('h3:has-text("Added") + table tbody tr');
  const removed = result.locator('h3:has-text("Removed") + table tbody tr');
  const rows = async (l) => (await l.allInnerTexts()).map((r) => r.replace(/\s+/g, ' ').trim());
  const addedRows = await rows(added);
  const removedRows = await rows(removed);
  // ord-1002 (72.50) now asks the owner and logs; ord-1001 logs other text.
  assert.ok(addedRows.some((r) => r.includes('big_orders ord-1002 approval_requested')), addedRows.join('\n'));
  assert.ok(addedRows.some((r) => r.includes('big_orders ord-1001 log') && r.includes('order ord-1001 of Ada needs the owner')), addedRows.join('\n'));
  assert.ok(removedRows.some((r) => r.includes('big_orders ord-1001 log') && r.includes('big order ord-1001 from Ada')), removedRows.join('\n'));
  assert.ok(removedRows.some((r) => r.includes('small_orders ord-1002 ship_order')), removedRows.join('\n'));
  // The backtest changed nothing: still version 1.
  assert.equal((await api.ok('GET', '/v1/rulesets/orders')).version, 1);
  await accessible(browser, page, 'editor with a backtest');
  await shot(page, 'backtest', server.dir);

  // The keyboard reaches the nav, Validate, Backtest and Deploy.
  const reached = await tabThrough(page);
  for (const name of ['Validate', 'Backtest', 'Deploy']) {
    assert.ok(reached.some((f) => f.tag === 'button' && f.text === name), `Tab never reached ${name}: ${JSON.stringify(reached)}`);
  }
  for (const name of ['Overview', 'Rules', 'Events', 'Approvals', 'Scheduled', 'Deliveries', 'Tasks', 'Audit']) {
    assert.ok(reached.some((f) => f.inNav && f.text === name), `Tab never reached the nav link ${name}`);
  }

  // Deploy: to the ruleset, at version 2.
  await page.getByRole('button', { name: 'Deploy' }).click();
  await page.waitForURL(`${base}/rules/orders`);
  assert.match(await page.locator('p.lede').innerText(), /Version 2\b/);
  const deployed = await api.ok('GET', '/v1/rulesets/orders');
  assert.equal(deployed.version, 2);
  assert.equal(deployed.files['orders.stw'], changed);

  // Version 1, and the diff from 1 to 2.
  await page.getByRole('link', { name: '1', exact: true }).click();
  await page.waitForURL(`${base}/rules/orders/versions/1`);
  await page.getByRole('heading', { level: 1, name: 'Ruleset orders, version 1' }).waitFor();
  assert.match(await page.locator('h3:has(code:text-is("orders.stw")) + .code span.line[id$="L13"]').textContent(), /if amount >= 100/);
  await accessible(browser, page, 'ruleset version');
  await page.goBack();
  await page.getByRole('link', { name: 'Diff with active' }).click();
  await page.waitForURL(`${base}/rules/orders/diff?from=1&to=2`);
  const dels = await page.locator('.diff .line.del').allInnerTexts();
  const adds = await page.locator('.diff .line.add').allInnerTexts();
  assert.ok(dels.some((l) => l.includes('if amount >= 100')), dels.join('\n'));
  assert.ok(adds.some((l) => l.includes('if amount >= 50')), adds.join('\n'));
  await accessible(browser, page, 'diff');

  // The audit log names the deploy.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Audit' }).click();
  await page.waitForURL(`${base}/audit`);
  const audit = (await page.locator('tbody tr').allInnerTexts()).map((r) => r.replace(/\s+/g, ' '));
  assert.ok(audit.length >= 2 && /\bdeploy/.test(audit[0]) && audit[0].includes('orders'), audit.join('\n'));
  await accessible(browser, page, 'audit');
  await shot(page, 'audit', server.dir);

  // Roll back to 1, through its confirm page.
  await page.goto(`${base}/rules/orders`);
  await page.getByRole('link', { name: 'Roll back to 1' }).click();
  await page.waitForURL(`${base}/rules/orders/confirm/rollback?version=1`);
  await page.getByRole('heading', { level: 1, name: 'Roll back to version 1: ruleset orders?' }).waitFor();
  await accessible(browser, page, 'confirm page');
  await page.getByRole('button', { name: 'Roll back to version 1' }).click();
  await page.locator('.notice.good', { hasText: 'Done: ruleset orders is at version 3.' }).waitFor();
  const now = await api.ok('GET', '/v1/rulesets/orders');
  assert.equal(now.version, 3);
  assert.equal(now.files['orders.stw'], orders(hooks.port));

  // Enter on a focused nav link navigates.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Events' }).focus();
  assert.equal((await focused(page)).text, 'Events');
  await page.keyboard.press('Enter');
  await page.waitForURL(`${base}/events`);

  problems.check();
  await ctx.close();
});

test('the ruleset page shows the ruleset\'s own files, not the standard library', async () => {
  const { ctx } = await context(browser);
  const page = await ctx.newPage();
  try {
    await signIn(page, server.base, api.token);
    await page.goto(`${server.base}/rules/orders`);
    assert.deepEqual(await page.locator('h3 code').allInnerTexts(), ['orders.stw']);
  } finally {
    await ctx.close();
  }
});

test('the code view keeps the spaces between highlighted words', async () => {
  const { ctx } = await context(browser);
  const page = await ctx.newPage();
  try {
    await signIn(page, server.base, api.token);
    await page.goto(`${server.base}/rules/orders`);
    // Line 12 is `  when order.placed`: a keyword, a space, an event name.
    const gap = await page.locator('h3:has(code:text-is("orders.stw")) + .code span.line[id$="L12"]').evaluate((line) => {
      const when = line.querySelector('.tok-keyword');
      const event = line.querySelector('.tok-event');
      return event.getBoundingClientRect().left - when.getBoundingClientRect().right;
    });
    assert.ok(gap >= 4, `the space between "when" and "order.placed" is ${gap}px wide`);
  } finally {
    await ctx.close();
  }
});
