// Host lists paged by fixed ranges of the fleet's order (site-gen/lists.ts pagesOfList): a host joining
// or leaving a list changes the one page whose range holds it, no page exceeds HOSTS_PER_PAGE rows,
// a sparse list is one page, the first page is always number 1.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HOSTS_PER_PAGE, pagesOfList, type ListPage } from '../../site-gen/lists.ts';
import type { HostRow } from '../../site-gen/model.ts';

const FLEET = 10_000;
const fleet = Array.from({ length: FLEET }, (_, i) => ({ host: `h-${i}` }) as HostRow);
const position = new Map(fleet.map((h, i) => [h, i]));
const pagesOf = (rows: HostRow[]) => pagesOfList(rows, (h) => position.get(h)!, FLEET);
const names = (pages: ListPage[]) => pages.map((p) => `${p.n}:${p.rows.map((h) => h.host).join()}`);

function checkPaging(rows: HostRow[], pages: ListPage[]): void {
  assert.equal(
    pages.flatMap((p) => p.rows),
    rows,
    'every row once, in order',
  );
  assert.ok(pages.every((p) => p.rows.length <= HOSTS_PER_PAGE));
  assert.is(pages[0]!.n, 1);
  assert.is(new Set(pages.map((p) => p.n)).size, pages.length, 'distinct page numbers');
}

test('the whole fleet: pages of HOSTS_PER_PAGE rows in order, numbered 1, 2, ...', () => {
  const pages = pagesOf(fleet);
  checkPaging(fleet, pages);
  assert.is(pages.length, FLEET / HOSTS_PER_PAGE);
  assert.equal(
    pages.map((p) => p.n),
    pages.map((_, i) => i + 1),
  );
});

test('a sparse list is one page; an empty list one empty page numbered 1', () => {
  const sparse = fleet.filter((_, i) => i % 97 === 5);
  assert.ok(sparse.length <= HOSTS_PER_PAGE);
  const pages = pagesOf(sparse);
  assert.is(pages.length, 1);
  checkPaging(sparse, pages);
  assert.equal(pagesOf([]), [{ n: 1, rows: [] }]);
});

test('a host leaving a dense list changes only the page that held it', () => {
  // A phase holding most of the fleet (as `pending` does early in a rollout).
  const pending = fleet.filter((_, i) => i % 5 !== 0);
  const before = pagesOf(pending);
  checkPaging(pending, before);
  for (const leaving of [pending[3]!, pending[4_000]!, pending.at(-1)!]) {
    const rows = pending.filter((h) => h !== leaving);
    const after = pagesOf(rows);
    checkPaging(rows, after);
    const changed = names(after).filter((p) => !names(before).includes(p));
    assert.is(changed.length, 1, `one page changed when ${leaving.host} left`);
    assert.ok(
      before.find((p) => p.rows.includes(leaving))!.n === Number(changed[0]!.split(':')[0]),
    );
  }
  // and joining
  const joining = fleet[5_000]!;
  const rows = fleet.filter((h, i) => i % 5 !== 0 || h === joining);
  const changed = names(pagesOf(rows)).filter((p) => !names(before).includes(p));
  assert.is(changed.length, 1);
});

test('pages follow the list as it thins out: never more than HOSTS_PER_PAGE, ranges merge', () => {
  let rows = fleet.slice();
  for (let keep = 2; keep <= 64; keep *= 2) {
    rows = rows.filter((_, i) => i % 2 === 0);
    const pages = pagesOf(rows);
    checkPaging(rows, pages);
    // Siblings merge once they fit: never more pages than twice the fewest possible.
    assert.ok(pages.length <= 2 * Math.ceil(rows.length / HOSTS_PER_PAGE), `${keep}`);
  }
});

test.run();
