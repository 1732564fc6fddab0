// Reads the PromQL of a Grafana dashboard and the metric names it queries; reads the series names a
// /metrics exposition defines. Used by dashboard.test.ts against createMetrics(), and meant to be
// reused against a live node's /metrics (fetch its text, pass it to definedSeries()).
import { readFileSync } from 'node:fs';

export interface PanelQuery {
  panel: string;
  expr: string;
}

interface Panel {
  title?: string;
  targets?: Array<{ expr?: string }>;
  panels?: Panel[];
}

/** Every target expr of every panel (rows' nested panels included), plus query variables. */
export function dashboardQueries(dashboard: {
  panels?: Panel[];
  templating?: { list?: Array<{ name: string; query?: unknown }> };
}): PanelQuery[] {
  const out: PanelQuery[] = [];
  const walk = (ps: Panel[] | undefined) => {
    for (const p of ps ?? []) {
      for (const t of p.targets ?? []) if (t.expr) out.push({ panel: p.title ?? '?', expr: t.expr });
      walk(p.panels);
    }
  };
  walk(dashboard.panels);
  for (const v of dashboard.templating?.list ?? []) {
    const q = typeof v.query === 'string' ? v.query : (v.query as { query?: string } | undefined)?.query;
    const m = q ? /^label_values\(\s*([a-zA-Z_:][\w:]*)/.exec(q) : null;
    if (m) out.push({ panel: `variable $${v.name}`, expr: m[1]! });
  }
  return out;
}

export function loadDashboard(path: string) {
  return JSON.parse(readFileSync(path, 'utf8')) as Parameters<typeof dashboardQueries>[0];
}

const KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'and',
  'or',
  'unless',
  'offset',
  'inf',
  'nan',
  'atan2',
]);

/** Metric names a PromQL expression selects (functions, keywords, labels, strings and ranges excluded). */
export function metricNamesInExpr(expr: string): string[] {
  let e = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""') // strings
    .replace(/\{[^}]*\}/g, ' ') // label matchers
    .replace(/\[[^\]]*\]/g, ' ') // ranges / subqueries
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' '); // label lists
  e = e.replace(/\$\{?\w+\}?/g, ' '); // Grafana variables outside matchers
  const names = new Set<string>();
  const re = /[a-zA-Z_:][a-zA-Z0-9_:]*/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(e))) {
    const name = m[0];
    const before = e[m.index - 1];
    if (before !== undefined && /[0-9.]/.test(before)) continue; // 1e3, 0.5
    const rest = e.slice(m.index + name.length);
    if (/^\s*\(/.test(rest)) continue; // function call
    if (KEYWORDS.has(name.toLowerCase())) continue;
    names.add(name);
  }
  return [...names];
}

/** Label names used in the matchers of `metric{...}` selectors of an expression. */
export function matcherLabels(expr: string): Array<{ metric: string; label: string }> {
  const out: Array<{ metric: string; label: string }> = [];
  const re = /([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(expr))) {
    const body = m[2]!.replace(/"(?:[^"\\]|\\.)*"/g, '""');
    for (const lm of body.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)/g))
      out.push({ metric: m[1]!, label: lm[1]! });
  }
  return out;
}

/**
 * Series names defined by an exposition (from its # TYPE lines, so labelled metrics that have no
 * sample yet still count): a histogram `x` defines x_bucket, x_sum and x_count; a summary x, x_sum, x_count.
 */
export function definedSeries(exposition: string): Set<string> {
  const out = new Set<string>();
  for (const line of exposition.split('\n')) {
    const m = /^# TYPE (\S+) (\S+)/.exec(line);
    if (!m) continue;
    const [, name, type] = m as unknown as [string, string, string];
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) out.add(name + s);
    else if (type === 'summary') for (const s of ['', '_sum', '_count']) out.add(name + s);
    else out.add(name);
  }
  return out;
}
