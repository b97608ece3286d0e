import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES_DIR } from './fixtures';

/**
 * A churn table built from the real CDNOW purchase log: RFM features over the calibration period
 * (to 1997-09-30, as in the published summary) and, as the label, whether the customer bought
 * nothing in the following nine months (1997-10-01 to 1998-06-30).
 */
export function cdnowChurnCsv(): string {
  const text = readFileSync(join(FIXTURES_DIR, 'cdnow', 'cdnow_master_transactions.csv'), 'utf8');
  const end = '1997-09-30';
  const perCustomer = new Map<string, { days: Map<string, number>; later: boolean }>();
  for (const line of text.split('\n').slice(1)) {
    if (!line) continue;
    const [id, date, , dollars] = line.split(',') as [string, string, string, string];
    const c = perCustomer.get(id) ?? { days: new Map(), later: false };
    if (date <= end) c.days.set(date, (c.days.get(date) ?? 0) + Number(dollars));
    else c.later = true;
    perCustomer.set(id, c);
  }
  const day = (d: string) => Date.parse(`${d}T00:00:00Z`) / 86_400_000;
  const rows = ['customer_id,frequency,recency_days,age_days,monetary_mean,first_spend,churned'];
  for (const [id, c] of perCustomer) {
    const dates = [...c.days.keys()].sort();
    if (!dates.length) continue;
    const spend = dates.map((d) => c.days.get(d)!);
    const repeat = spend.slice(1);
    rows.push([
      id,
      dates.length - 1,
      day(end) - day(dates[dates.length - 1]!),
      day(end) - day(dates[0]!),
      repeat.length ? (repeat.reduce((a, b) => a + b, 0) / repeat.length).toFixed(2) : '',
      spend[0]!.toFixed(2),
      c.later ? 'no' : 'yes',
    ].join(','));
  }
  return `${rows.join('\n')}\n`;
}
