// What the API counts, as a structural interface: src/observability's prom-client counters
// (`metrics.api` of createMetrics) fit it, and createApp works without any.
import type { Response } from 'express';

export interface ApiMetrics {
  /** timestore_ingested_points_total{format}: points accepted by a write request on this node. */
  ingestedPoints: { inc(labels: { format: string }, value?: number): void };
  /** timestore_rejected_inputs_total{reason}: requests rejected with a 4xx for their input. */
  rejectedInputs: { inc(labels: { reason: string }, value?: number): void };
}

/**
 * The fixed vocabulary of `reason`, by problem type. Not-found answers (an id or route that does not
 * exist) are lookups, not rejected input, and are not counted.
 */
export const REJECTION_REASONS: Readonly<Record<string, string>> = {
  'urn:timestore:problem:validation': 'validation',
  'urn:timestore:problem:malformed-json': 'malformed_json',
  'urn:timestore:problem:payload-too-large': 'payload_too_large',
  'urn:timestore:problem:unsupported-media-type': 'unsupported_media_type',
  'urn:timestore:problem:method-not-allowed': 'method_not_allowed',
  'about:blank': 'bad_request',
};

/** Counts a finished response as a rejected input if it is a 4xx problem of a known type. */
export function countRejection(metrics: ApiMetrics, res: Response): void {
  if (res.statusCode < 400 || res.statusCode >= 500) return;
  const type = res.locals.problemType as string | undefined;
  const reason = type !== undefined ? REJECTION_REASONS[type] : undefined;
  if (reason) metrics.rejectedInputs.inc({ reason });
}
