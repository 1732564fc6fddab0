// OpenTelemetry tracing: SDK setup from the standard OTEL_* environment, manual spans for HTTP
// requests (an express middleware), forwarding, propose → commit → apply and snapshots, and W3C
// trace-context propagation over HTTP headers (forwarded writes, Raft RPCs).
//
// Off unless OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_TRACES_EXPORTER
// is set (and OTEL_SDK_DISABLED is not true, OTEL_TRACES_EXPORTER is not "none"). When off, every
// helper here is a cheap no-op (the @opentelemetry/api no-op tracer).
//
// Manual spans rather than auto-instrumentation: the http/express instrumentations need ESM loader
// hooks (--experimental-loader / register) to patch ESM imports, which is brittle; these helpers
// work the same under tsx, node and in tests.
//
//   const tracing = await startTracing({ serviceName: 'timestore', serviceInstanceId: nodeId });
//   app.use(tracingMiddleware());                       // first middleware: one SERVER span per request
//   await withSpan('timestore.forward', { kind: SpanKind.CLIENT, attributes: { 'timestore.leader': id } },
//     () => fetch(url, { method: 'POST', headers: injectTraceHeaders({ 'content-type': 'application/json' }), body }));
//   const p = startProposalSpan({ 'timestore.points': n });   // in service.write(), on the request's context
//   p.proposed(index); … p.committed(); … p.applied(); (or p.fail(err))   // by the driver
//   await tracing.shutdown();                           // on SIGTERM: flushes pending spans
import {
  context,
  propagation,
  trace,
  SpanKind,
  SpanStatusCode,
  ROOT_CONTEXT,
  type Attributes,
  type Context,
  type Span,
  type TextMapGetter,
} from '@opentelemetry/api';
import type { NextFunction, Request, Response } from 'express';

export { SpanKind, SpanStatusCode } from '@opentelemetry/api';
export const TRACER_NAME = 'timestore';

/** Whether the standard OTEL_* environment asks for trace export. */
export function tracingEnabledFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  if ((env.OTEL_SDK_DISABLED ?? '').trim().toLowerCase() === 'true') return false;
  const exporters = (env.OTEL_TRACES_EXPORTER ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (exporters.includes('none')) return false;
  if (exporters.length > 0) return true;
  return !!(env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim());
}

export interface TracingHandle {
  enabled: boolean;
  /** Flushes pending spans (tests, before an expected exit). */
  flush(): Promise<void>;
  /** Flushes and stops the SDK. Idempotent. */
  shutdown(): Promise<void>;
}

export interface StartTracingOptions {
  /** service.name unless OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES say otherwise (default 'timestore'). */
  serviceName?: string;
  /** service.instance.id, e.g. the node id or pod name. */
  serviceInstanceId?: string;
}

/**
 * Starts the OpenTelemetry NodeSDK for traces when the environment asks for it (see
 * tracingEnabledFromEnv), else does nothing. Exporter, protocol (http/protobuf default, http/json,
 * grpc), endpoint, headers, sampler and propagators come from the standard OTEL_* variables.
 * OTel metrics and logs stay off (metrics are Prometheus, logs are pino on stdout).
 * Call once per process, before serving.
 */
export async function startTracing(opts: StartTracingOptions = {}): Promise<TracingHandle> {
  // The SDK itself reads process.env (exporter, protocol, endpoint, headers, sampler, propagators).
  const env = process.env;
  if (!tracingEnabledFromEnv(env)) {
    return { enabled: false, flush: async () => {}, shutdown: async () => {} };
  }
  // Loaded lazily: the SDK (and its exporters) costs nothing when tracing is off.
  const { NodeSDK, resources } = await import('@opentelemetry/sdk-node');
  const attrs: Attributes = {};
  if (opts.serviceInstanceId) attrs['service.instance.id'] = opts.serviceInstanceId;
  const sdk = new NodeSDK({
    // OTEL_SERVICE_NAME (read by the env resource detector) wins over this default.
    serviceName: env.OTEL_SERVICE_NAME?.trim() || opts.serviceName || 'timestore',
    resource: resources.defaultResource().merge(resources.resourceFromAttributes(attrs)),
    instrumentations: [],
    metricReaders: [],
    logRecordProcessors: [],
  });
  sdk.start();
  let stopped: Promise<void> | null = null;
  return {
    enabled: true,
    async flush() {
      const provider = trace.getTracerProvider() as unknown as {
        forceFlush?: () => Promise<void>;
        getDelegate?: () => unknown;
      };
      const delegate = (provider.getDelegate?.() ?? provider) as { forceFlush?: () => Promise<void> };
      await delegate.forceFlush?.();
    },
    shutdown() {
      stopped ??= sdk.shutdown().catch(() => {});
      return stopped;
    },
  };
}

export function tracer() {
  return trace.getTracer(TRACER_NAME);
}

/** Trace id of the active span, if any (for logs). */
export function activeTraceId(ctx: Context = context.active()): string | undefined {
  const sc = trace.getSpan(ctx)?.spanContext();
  return sc && trace.isSpanContextValid(sc) ? sc.traceId : undefined;
}

const headerGetter: TextMapGetter<Record<string, string | string[] | undefined>> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => {
    const k = Object.keys(carrier).find((h) => h.toLowerCase() === key.toLowerCase());
    return k === undefined ? undefined : carrier[k];
  },
};

/**
 * Adds W3C `traceparent` / `tracestate` (and baggage, per OTEL_PROPAGATORS) for `ctx` (default: the
 * active context) to `headers` and returns it. Use on forwarded writes and Raft RPCs.
 */
export function injectTraceHeaders<H extends Record<string, string>>(
  headers: H,
  ctx: Context = context.active(),
): H & { traceparent?: string; tracestate?: string } {
  propagation.inject(ctx, headers);
  return headers;
}

/** The context carried by incoming headers (node's IncomingHttpHeaders or a plain object). */
export function extractTraceContext(
  headers: Record<string, string | string[] | undefined>,
  base: Context = ROOT_CONTEXT,
): Context {
  return propagation.extract(base, headers, headerGetter);
}

/**
 * Runs `fn` inside a new span (child of `parent`, default the active context), ending it when fn
 * settles; an exception marks the span as an error and is rethrown.
 */
export async function withSpan<T>(
  name: string,
  opts: { kind?: SpanKind; attributes?: Attributes; parent?: Context },
  fn: (span: Span) => Promise<T> | T,
): Promise<T> {
  const parent = opts.parent ?? context.active();
  const span = tracer().startSpan(
    name,
    { kind: opts.kind ?? SpanKind.INTERNAL, attributes: opts.attributes },
    parent,
  );
  try {
    return await context.with(trace.setSpan(parent, span), () => fn(span));
  } catch (err) {
    recordError(span, err);
    throw err;
  } finally {
    span.end();
  }
}

export function recordError(span: Span, err: unknown): void {
  span.recordException(err instanceof Error ? err : String(err));
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
}

/**
 * Express middleware: one SERVER span per request, continuing an incoming traceparent; the rest of
 * the chain runs with that span active (so withSpan / injectTraceHeaders downstream nest under it).
 * The span is named "METHOD /route/template" once the route is known. Sets res.locals.traceId.
 */
export function tracingMiddleware() {
  return (req: Request, res: Response, next: NextFunction): void => {
    const parent = extractTraceContext(req.headers);
    const span = tracer().startSpan(
      `${req.method}`,
      {
        kind: SpanKind.SERVER,
        attributes: { 'http.request.method': req.method, 'url.path': req.path, 'url.scheme': req.protocol },
      },
      parent,
    );
    const sc = span.spanContext();
    if (trace.isSpanContextValid(sc)) res.locals.traceId = sc.traceId;
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      const route = (req as Request & { route?: { path?: unknown } }).route;
      if (route?.path !== undefined) {
        const template = (req.baseUrl ?? '') + String(route.path);
        span.setAttribute('http.route', template);
        span.updateName(`${req.method} ${template}`);
      }
      span.setAttribute('http.response.status_code', res.statusCode);
      if (res.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      if (!res.writableFinished) span.setAttribute('timestore.aborted', true);
      span.end();
    };
    res.on('finish', end);
    res.on('close', end);
    context.with(trace.setSpan(parent, span), next);
  };
}

/** CLIENT span around forwarding a write to the leader; `fn` gets headers to send (traceparent added). */
export function forwardSpan<T>(
  leader: { id: string | null; url: string },
  fn: (headers: Record<string, string>) => Promise<T>,
): Promise<T> {
  return withSpan(
    'timestore.forward',
    {
      kind: SpanKind.CLIENT,
      attributes: { 'timestore.leader.id': leader.id ?? '', 'server.address': leader.url },
    },
    () => fn(injectTraceHeaders({})),
  );
}

/** CLIENT span around a Raft RPC (append, vote, snapshot) to a peer; `fn` gets headers to send. */
export function raftRpcSpan<T>(
  rpc: string,
  peer: string,
  fn: (headers: Record<string, string>) => Promise<T>,
  attributes: Attributes = {},
): Promise<T> {
  return withSpan(
    `raft.${rpc}`,
    { kind: SpanKind.CLIENT, attributes: { 'timestore.peer': peer, ...attributes } },
    () => fn(injectTraceHeaders({})),
  );
}

/** Snapshot send (leader → follower, CLIENT) and install (follower, INTERNAL) spans. */
export function snapshotSendSpan<T>(
  peer: string,
  index: number,
  fn: (headers: Record<string, string>) => Promise<T>,
): Promise<T> {
  return withSpan(
    'raft.snapshot.send',
    { kind: SpanKind.CLIENT, attributes: { 'timestore.peer': peer, 'timestore.snapshot.index': index } },
    () => fn(injectTraceHeaders({})),
  );
}

export function snapshotInstallSpan<T>(
  index: number,
  fn: (span: Span) => Promise<T> | T,
  parent?: Context,
): Promise<T> {
  return withSpan(
    'raft.snapshot.install',
    { attributes: { 'timestore.snapshot.index': index }, ...(parent ? { parent } : {}) },
    fn,
  );
}

export function snapshotTakeSpan<T>(index: number, fn: (span: Span) => Promise<T> | T): Promise<T> {
  return withSpan('raft.snapshot.take', { attributes: { 'timestore.snapshot.index': index } }, fn);
}

/**
 * The life of one proposal as spans: `raft.proposal` (propose → applied) with children
 * `raft.replicate` (propose → committed by a quorum) and `raft.apply` (committed → applied).
 * Created on the writer's context (so it nests under the HTTP request span); its methods are
 * called later by the Raft driver, outside that context. Every method is idempotent.
 */
export interface ProposalSpan {
  /** The proposal got a log index (propose() returned ok). */
  proposed(index: number, term?: number): void;
  committed(): void;
  applied(): void;
  fail(err: unknown): void;
  /** The proposal's context, e.g. to inject into Raft RPCs carrying its entry. */
  readonly context: Context;
}

export function startProposalSpan(
  attributes: Attributes = {},
  parent: Context = context.active(),
): ProposalSpan {
  const t = tracer();
  const root = t.startSpan('raft.proposal', { kind: SpanKind.INTERNAL, attributes }, parent);
  const ctx = trace.setSpan(parent, root);
  let replicate: Span | null = t.startSpan('raft.replicate', {}, ctx);
  let apply: Span | null = null;
  let done = false;
  const finish = () => {
    replicate?.end();
    replicate = null;
    apply?.end();
    apply = null;
    if (!done) root.end();
    done = true;
  };
  return {
    context: ctx,
    proposed(index, term) {
      root.setAttribute('timestore.raft.index', index);
      if (term !== undefined) root.setAttribute('timestore.raft.term', term);
    },
    committed() {
      if (done || !replicate) return;
      replicate.end();
      replicate = null;
      apply = t.startSpan('raft.apply', {}, ctx);
    },
    applied() {
      if (done) return;
      if (replicate) this.committed();
      finish();
    },
    fail(err) {
      if (done) return;
      for (const s of [replicate, apply, root]) if (s) recordError(s, err);
      finish();
    },
  };
}
