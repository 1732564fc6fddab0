// RFC 9457 problem details: every error the API returns is application/problem+json with type,
// title, status, detail and, for validation problems, `errors: [{field, message}]` naming each bad
// field and what was expected.
import type { Response } from 'express';
import type { z } from 'zod';
import type { FieldError, Problem } from '../tsdb/schemas.js';

export const problemTypes = {
  validation: { type: 'urn:timestore:problem:validation', title: 'Invalid request', status: 400 },
  malformedJson: { type: 'urn:timestore:problem:malformed-json', title: 'Malformed JSON', status: 400 },
  notFound: { type: 'urn:timestore:problem:not-found', title: 'Not found', status: 404 },
  methodNotAllowed: {
    type: 'urn:timestore:problem:method-not-allowed',
    title: 'Method not allowed',
    status: 405,
  },
  payloadTooLarge: {
    type: 'urn:timestore:problem:payload-too-large',
    title: 'Request body too large',
    status: 413,
  },
  unsupportedMediaType: {
    type: 'urn:timestore:problem:unsupported-media-type',
    title: 'Unsupported media type',
    status: 415,
  },
  unavailable: { type: 'urn:timestore:problem:unavailable', title: 'Service unavailable', status: 503 },
  notLeader: { type: 'urn:timestore:problem:not-leader', title: 'Not the leader', status: 503 },
  storageCorrupt: {
    type: 'urn:timestore:problem:storage-corrupt',
    title: 'Storage corrupt',
    status: 503,
  },
  internal: { type: 'urn:timestore:problem:internal', title: 'Internal error', status: 500 },
} as const;

export type ProblemKind = keyof typeof problemTypes;

/** Thrown by handlers; the error middleware turns it into a problem response. */
export class HttpProblem extends Error {
  readonly problem: Problem;
  readonly headers: Record<string, string>;

  constructor(
    kind: ProblemKind,
    detail: string,
    extra: Partial<Problem> = {},
    headers: Record<string, string> = {},
  ) {
    super(detail);
    this.name = 'HttpProblem';
    this.problem = { ...problemTypes[kind], detail, ...extra };
    this.headers = headers;
  }

  static validation(errors: FieldError[], where = 'request'): HttpProblem {
    const n = errors.length;
    const summary = errors
      .slice(0, 3)
      .map((e) => `${e.field}: ${e.message}`)
      .join('; ');
    return new HttpProblem(
      'validation',
      `${n} invalid field${n === 1 ? '' : 's'} in the ${where}: ${summary}${n > 3 ? '; ...' : ''}`,
      { errors },
    );
  }
}

/** Field path as clients write it: deviceId, tags.site, attributes.a[2], [3].value (batch item 3). */
export function fieldPath(path: ReadonlyArray<PropertyKey>, prefix = ''): string {
  let out = prefix;
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out === '' ? String(p) : `.${String(p)}`;
  }
  return out;
}

/** One FieldError per zod issue; unknown keys get one error each, naming the key. */
export function zodFieldErrors(
  error: z.ZodError,
  prefix = '',
  knownFields?: readonly string[],
  input?: unknown,
): FieldError[] {
  const out: FieldError[] = [];
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        out.push({
          field: fieldPath([...issue.path, key], prefix),
          message: `unknown field${knownFields ? `; expected only ${knownFields.join(', ')}` : ''}`,
        });
      }
      continue;
    }
    const field = fieldPath(issue.path, prefix) || prefix || 'body';
    // A missing required field reads better as "required" than as a type error on undefined.
    const missing = input !== undefined && issue.path.length > 0 && valueAt(input, issue.path) === undefined;
    out.push({ field, message: missing ? `required: ${issue.message}` : issue.message });
  }
  return out;
}

function valueAt(root: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let v: unknown = root;
  for (const key of path) {
    if (v === null || typeof v !== 'object' || !Object.hasOwn(v, key)) return undefined;
    v = (v as Record<PropertyKey, unknown>)[key];
  }
  return v;
}

export function sendProblem(res: Response, problem: Problem, headers: Record<string, string> = {}): void {
  const requestId = res.locals.requestId as string | undefined;
  const body: Problem = {
    ...problem,
    instance: problem.instance ?? res.req.originalUrl,
    ...(requestId ? { requestId } : {}),
  };
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  res.locals.problemType = problem.type; // for the rejected-inputs counter (src/api/metrics.ts)
  res.status(problem.status).type('application/problem+json').send(JSON.stringify(body));
}
