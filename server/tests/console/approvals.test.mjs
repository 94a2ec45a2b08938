// Approvals and deliveries in the console, with a webhook receiver: two big
// invoices ask the owner; one is approved with a comment (its payment
// webhook arrives), one rejected; the history tabs say so, "via console".
// A ledger webhook that answers 500 goes dead (2 attempts), shows under
// Deliveries filtered by dead, and once the receiver answers 200 the Retry
// button delivers it. Also: the overview, scheduled work, tasks and
// notifications; the inbox by keyboard.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  serve, receiver, launch, context, accessible, shot, at, signIn, tabThrough, focused, waitFor,
} from './lib.mjs';

let server;
let hooks;
let browser;
let api;

function invoices(port) {
  return `## A supplier's invoice arrived in the accounts-payable inbox.
event invoice.received {
  id: string
  vendor: string
  amount: float
}

## The vendor confirmed that the payment arrived.
event invoice.confirmed {
  id: string
}

## Pay an invoice through the bank's payment service.
action pay_invoice(id: string, amount: float) via webhook "http://127.0.0.1:${port}/pay"

## Book an invoice in the ledger.
action book_invoice(id: string, vendor: string) via webhook "http://127.0.0.1:${port}/ledger"

rule invoice_payment "Pay small invoices at once, ask the owner for big ones"
  when invoice.received
  then
    if amount < 1000 then
      pay_invoice(id, amount)
    else
      require approval from role owner within 48h do
        pay_invoice(id, amount)
      else
        notify role owner "Invoice {id} from {vendor} was not paid"
      end
    end
end

rule invoice_booking "Book every invoice, and file its paper copy"
  when invoice.received
  then
    book_invoice(id, vendor)
    create task "File the paper copy of invoice {id} from {vendor}" for role accounts due now() + 2d
    after 7d unless invoice.confirmed on id do
      notify role accounts "{vendor} has not confirmed invoice {id}"
    end
end

rule weekly_report "The week's payments, every Monday morning"
  every "0 8 * * 1" in "Europe/Paris"
  then notify role accounts "The weekly payment report is ready"
end
`;
}

const invoice = (id, vendor, amount, ago) => ({
  id, type: 'invoice.received', occurred_at: at(-ago), key: id, payload: { id, vendor, amount },
});

before(async () => {
  [server, hooks, browser] = await Promise.all([
    serve(['--max-attempts', '2', '--retry-base', '100ms']), receiver(), launch(),
  ]);
  // The ledger is down until the test says otherwise.
  hooks.answer('/ledger', 500);
  api = await server.tenant('acme');
  await api.deploy('payables', { 'payables.stw': invoices(hooks.port) });
  await api.ok('PUT', '/v1/roles/owner', { emails: ['owner@example.com'] });
  await api.post([
    invoice('INV-2041', 'Acme Paper Co.', 312.4, 3000),
    invoice('INV-2042', 'Northwind Freight', 4820.0, 2400),
    invoice('INV-2043', 'Contoso Cleaning', 1275.5, 1800),
    invoice('INV-2044', 'Fabrikam Office', 2150.0, 600),
  ]);
});

after(async () => {
  await browser?.close();
  await hooks?.close();
  await server?.stop();
});

test('approvals: approve one with a comment, reject another; the webhook arrives', async () => {
  const { ctx, problems } = await context(browser);
  const page = await ctx.newPage();
  const base = server.base;
  await signIn(page, base, api.token);
  // The small invoice was paid at once; the three big ones wait.
  await hooks.got('the small invoice\'s payment', (r) => r.path === '/pay' && r.body.id === 'INV-2041');
  const pending = await waitFor('three approvals', async () => {
    const list = await api.list('/v1/approvals?status=pending');
    return list.length === 3 ? list : null;
  });
  assert.deepEqual(pending.map((a) => a.event).sort(), ['INV-2042', 'INV-2043', 'INV-2044']);

  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Approvals' }).click();
  await page.waitForURL(`${base}/approvals`);
  const card = (id) => page.locator('section.card', { has: page.locator(`a[href="/events/${id.replace(/-/g, '%2D')}"], a[href="/events/${id}"]`) });
  for (const id of ['INV-2042', 'INV-2043', 'INV-2044']) {
    const c = card(id);
    await c.waitFor();
    assert.match(await c.locator('h2').innerText(), /^Rule invoice_payment asks owner$/);
    assert.match(await c.innerText(), /Approving runs\s+pay_invoice/);
    assert.match(await c.innerText(), /Rejecting \(or the deadline\) runs\s+notify/);
  }
  await accessible(browser, page, 'approvals inbox');
  await shot(page, 'approvals', server.dir);

  // The keyboard reaches the nav links and each Approve and Reject.
  const reached = await tabThrough(page);
  assert.equal(reached.filter((f) => f.tag === 'button' && f.text === 'Approve').length, 3, JSON.stringify(reached));
  assert.equal(reached.filter((f) => f.tag === 'button' && f.text === 'Reject').length, 3);
  for (const name of ['Overview', 'Rules', 'Events', 'Approvals', 'Scheduled', 'Deliveries', 'Tasks', 'Audit']) {
    assert.ok(reached.some((f) => f.inNav && f.text === name), `Tab never reached the nav link ${name}`);
  }

  // Approve INV-2042, with a comment.
  const approve = card('INV-2042');
  await approve.getByLabel('Comment (optional)').fill('Checked against the purchase order');
  await approve.getByRole('button', { name: 'Approve' }).click();
  await page.waitForURL(`${base}/approvals?done=approved`);
  await page.locator('.notice.good', { hasText: 'Approved.' }).waitFor();
  // Reject INV-2043.
  const reject = card('INV-2043');
  await reject.getByLabel('Comment (optional)').fill('Duplicate of INV-1980');
  await reject.getByRole('button', { name: 'Reject' }).click();
  await page.waitForURL(`${base}/approvals?done=rejected`);

  // The approved one's payment arrives; the rejected one's never does.
  const paid = await hooks.got('the approved invoice\'s payment', (r) => r.path === '/pay' && r.body.id === 'INV-2042');
  assert.equal(paid.body.amount, 4820);
  assert.ok(paid.headers['webhook-signature'], 'the webhook is signed');
  const rejected = await waitFor('the rejection taken', async () => {
    const [a] = (await api.list('/v1/approvals?status=rejected')).filter((x) => x.event === 'INV-2043');
    return a;
  });
  assert.equal(rejected.decision.via, 'console');
  assert.ok(!hooks.requests.some((r) => r.path === '/pay' && r.body.id === 'INV-2043'));

  // The history tabs.
  await page.getByRole('link', { name: 'Approved', exact: true }).click();
  await page.waitForURL(`${base}/approvals?status=approved`);
  const approved = card('INV-2042');
  await approved.waitFor();
  assert.match(await approved.innerText(), /approved by token \S+ via console .*: “Checked against the purchase order”/);
  assert.equal(await card('INV-2043').count(), 0);
  await accessible(browser, page, 'approvals, approved');

  await page.getByRole('link', { name: 'Rejected', exact: true }).click();
  await page.waitForURL(`${base}/approvals?status=rejected`);
  assert.match(await card('INV-2043').innerText(), /rejected by token \S+ via console .*: “Duplicate of INV-1980”/);

  // Still waiting: INV-2044 only.
  await page.getByRole('link', { name: 'Waiting', exact: true }).click();
  await page.waitForURL(`${base}/approvals?status=pending`);
  assert.equal(await page.locator('section.card').count(), 1);
  await card('INV-2044').waitFor();

  // Enter on a focused nav link navigates.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Scheduled' }).focus();
  assert.equal((await focused(page)).text, 'Scheduled');
  await page.keyboard.press('Enter');
  await page.waitForURL(`${base}/scheduled`);

  // The rejection ran the else block: the owner's notification.
  await page.goto(`${base}/tasks?show=notifications`);
  await page.getByRole('cell', { name: 'Invoice INV-2043 from Contoso Cleaning was not paid' }).waitFor();
  await accessible(browser, page, 'notifications');

  problems.check();
  await ctx.close();
});

test('deliveries: a dead webhook, retried from the console, is delivered', async () => {
  const { ctx, problems } = await context(browser);
  const page = await ctx.newPage();
  const base = server.base;
  await signIn(page, base, api.token);

  // Each invoice's ledger booking fails twice and is dead.
  const dead = await waitFor('four dead ledger bookings', async () => {
    const list = await api.list('/v1/actions?status=dead');
    return list.filter((a) => a.action === 'book_invoice').length === 4 ? list : null;
  });
  assert.ok(dead.every((a) => a.attempts === 2), JSON.stringify(dead));

  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Deliveries' }).click();
  await page.waitForURL(`${base}/deliveries`);
  await page.getByLabel('Status').selectOption('dead');
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.waitForURL(`${base}/deliveries?status=dead&rule=`);
  const rows = page.locator('tbody tr');
  assert.equal(await rows.count(), 4);
  for (const text of await rows.allInnerTexts()) {
    assert.match(text, /book_invoice/);
    assert.match(text, /\bdead\b/);
    assert.match(text, /500/);
  }
  await accessible(browser, page, 'deliveries, dead');

  // The ledger is back: retry INV-2042's booking.
  hooks.answer('/ledger', 200);
  const row = rows.filter({ has: page.locator('a', { hasText: 'INV-2042' }) });
  await row.getByRole('button', { name: 'Retry' }).click();
  await page.waitForURL(`${base}/deliveries?done=one`);
  await page.locator('.notice.good', { hasText: 'Queued again' }).waitFor();
  const booked = await hooks.got('the retried booking', (r) => r.path === '/ledger' && r.status === 200 && r.body.id === 'INV-2042');
  assert.equal(booked.body.vendor, 'Northwind Freight');
  const action = dead.find((a) => a.action === 'book_invoice' && a.event === 'INV-2042');
  await waitFor('the booking delivered', async () => {
    const list = await api.list('/v1/actions?status=delivered');
    return list.find((a) => a.id === action.id);
  });
  // Only that one was retried.
  assert.equal((await api.list('/v1/actions?status=dead')).length, 3);
  await page.goto(`${base}/deliveries?status=delivered`);
  await rows.filter({ hasText: 'book_invoice' }).first().waitFor();
  await page.goto(`${base}/deliveries`);
  await accessible(browser, page, 'deliveries');
  await shot(page, 'deliveries', server.dir);

  // The confirm page of "Retry every dead action…".
  await page.getByRole('link', { name: 'Retry every dead action…' }).click();
  await page.waitForURL(`${base}/deliveries/retry-dead`);
  await page.getByRole('button', { name: 'Retry 3 action(s)' }).waitFor();
  await accessible(browser, page, 'retry every dead action');

  problems.check();
  await ctx.close();
});

test('overview, scheduled, tasks and audit with the day\'s work', async () => {
  const { ctx, problems } = await context(browser);
  const page = await ctx.newPage();
  const base = server.base;
  await signIn(page, base, api.token);

  const stat = (section, name) => page.locator(`section[aria-labelledby="${section}"] .stat`, { hasText: name }).locator('.n');
  assert.equal(await stat('ov-events', 'processed').innerText(), '4');
  assert.equal(await stat('ov-approvals', 'waiting').innerText(), '1');
  assert.equal(await stat('ov-actions', 'dead').innerText(), '3');
  await accessible(browser, page, 'overview');
  await shot(page, 'overview', server.dir);

  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Scheduled' }).click();
  await page.waitForURL(`${base}/scheduled`);
  // Each invoice's reminder (7 days), and the weekly report's next ticks.
  const timers = page.locator('h2:text-is("Timers") + table tbody tr');
  assert.equal(await timers.count(), 4);
  assert.match(await timers.first().innerText(), /invoice_booking/);
  assert.match(await timers.first().innerText(), /invoice\.confirmed with id = INV-/);
  assert.match(await page.locator('h2:text-is("Scheduled rules") + table').innerText(), /weekly_report/);
  await accessible(browser, page, 'scheduled');
  await shot(page, 'scheduled', server.dir);

  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Tasks' }).click();
  await page.waitForURL(`${base}/tasks`);
  assert.equal(await page.locator('tbody tr').count(), 4);
  await page.getByRole('cell', { name: 'File the paper copy of invoice INV-2042 from Northwind Freight' }).waitFor();
  await page.getByLabel('Role', { exact: true }).fill('accounts');
  await page.getByRole('button', { name: 'Filter' }).click();
  await page.waitForURL(`${base}/tasks?show=tasks&assignee=&role=accounts`);
  assert.equal(await page.locator('tbody tr').count(), 4);
  await accessible(browser, page, 'tasks');
  await shot(page, 'tasks', server.dir);

  await page.getByRole('link', { name: 'Notifications', exact: true }).click();
  await page.waitForURL(`${base}/tasks?show=notifications`);
  await page.getByRole('cell', { name: 'Invoice INV-2043 from Contoso Cleaning was not paid' }).waitFor();

  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Audit' }).click();
  await page.waitForURL(`${base}/audit`);
  const audit = (await page.locator('tbody tr').allInnerTexts()).map((r) => r.replace(/\s+/g, ' '));
  assert.ok(audit.some((r) => /approv/.test(r)), audit.join('\n'));
  assert.ok(audit.some((r) => /retr/.test(r)), audit.join('\n'));

  problems.check();
  await ctx.close();
});
