/**
 * TriggersClient: one method per operation of the service's OpenAPI document, typed by the generated
 * Operations (src/generated/api.ts), plus batch helpers and cursor iterators. Every method takes
 * CallOptions last (signal, retry, timeoutMs, headers). Failures throw TriggersError subclasses
 * (errors.ts); 429 and, for requests safe to repeat, 503 are retried (request.ts has the rule).
 */
import type {
  Attempt, BatchAckResponse, BatchResponse, CreateEndpointRequest, Endpoint, EndpointReplayRequest, InboxEvent,
  OperationId, Operations, PatchEndpointRequest, RedeliverRequest, ReplayRequest,
} from './generated/api.js'
import { call, type CallInput, type CallOptions, type RetryInfo, type RetryOptions, type Transport } from './request.js'
import { paginate } from './pages.js'
import { ACK_MAX_IDS, BATCH_MAX_EVENTS, chunk, sendInBatches, type EventInput, type SendEventsResult } from './batch.js'

export interface ClientOptions {
  /** Where the service is, e.g. `https://triggers.example.com` or `http://localhost:8080`. */
  readonly baseUrl: string
  /** The organization's `zap_live_…` key. Only generateKey and the health routes work without one. */
  readonly apiKey?: string
  /** Per attempt, in milliseconds. Default 30,000. */
  readonly timeoutMs?: number
  readonly retry?: RetryOptions
  /** Called before each wait between attempts (for logs and metrics). */
  readonly onRetry?: (info: RetryInfo) => void
  /** Sent with every request. */
  readonly headers?: Readonly<Record<string, string>>
  /** Default: the global fetch (Node 20 and later). */
  readonly fetch?: typeof fetch
}

type Res<K extends OperationId> = Operations[K]['response']
type Query<K extends OperationId> = Operations[K]['query']
/** A list query without the cursor, which the iterators manage. */
type IterQuery<K extends OperationId> = Omit<Query<K>, 'cursor' | 'offset'>

export interface SendEventsOptions extends CallOptions {
  /** Events per request, 1–500. Default 500 (a free tier is answered with its own maximum, which is then used). */
  readonly batchSize?: number
  /** Each batch all or nothing (per batch, not across batches). */
  readonly atomic?: boolean
}

const DEFAULT_RETRY: Required<RetryOptions> = { maxRetries: 3, initialDelayMs: 500, maxDelayMs: 20_000, maxRetryAfterMs: 60_000 }

export class TriggersClient {
  #apiKey: string | undefined
  readonly #t: Transport
  readonly #options: ClientOptions

  constructor (options: ClientOptions) {
    if (typeof options.baseUrl !== 'string' || !/^https?:\/\//.test(options.baseUrl)) throw new TypeError('baseUrl must be an http(s) URL')
    const f = options.fetch ?? globalThis.fetch
    if (typeof f !== 'function') throw new TypeError('no fetch: pass options.fetch')
    this.#options = options
    this.#apiKey = options.apiKey
    this.#t = {
      baseUrl: options.baseUrl,
      fetch: f,
      timeoutMs: options.timeoutMs ?? 30_000,
      retry: { ...DEFAULT_RETRY, ...options.retry },
      headers: options.headers ?? {},
      onRetry: options.onRetry,
      apiKey: () => this.#apiKey,
    }
  }

  /** A client with the same options and another key (e.g. the one generateKey returned). */
  withApiKey (apiKey: string): TriggersClient {
    return new TriggersClient({ ...this.#options, apiKey })
  }

  /** The key this client sends (rotateKey replaces it). */
  get apiKey (): string | undefined { return this.#apiKey }

  async #call<K extends OperationId> (op: K, input: CallInput, opts?: CallOptions, accept?: readonly number[]): Promise<Res<K>> {
    return await call(this.#t, op, input, opts, accept) as Res<K>
  }

  // ── keys ──────────────────────────────────────────────────────────────────────────────────────

  /** Creates an organization and its key (public; limited per client IP). The key is shown once. */
  async generateKey (body: Operations['postApiKeysGenerate']['body'], opts?: CallOptions): Promise<Res<'postApiKeysGenerate'>> {
    return await this.#call('postApiKeysGenerate', { body }, opts)
  }

  /** The organization of this key. */
  async getKey (opts?: CallOptions): Promise<Res<'getApiKeys'>> {
    return await this.#call('getApiKeys', {}, opts)
  }

  /** Replaces the key; this client sends the new one from then on (the old one stops working at once). */
  async rotateKey (opts?: CallOptions): Promise<Res<'postApiKeysRotate'>> {
    const res = await this.#call('postApiKeysRotate', {}, opts)
    this.#apiKey = res.api_key
    return res
  }

  // ── the default webhook ───────────────────────────────────────────────────────────────────────

  /** Sets the organization's webhook URL (its default endpoint); the answer holds the signing secret. */
  async configureWebhook (webhookUrl: string, opts?: CallOptions): Promise<Res<'postApiWebhookConfig'>> {
    return await this.#call('postApiWebhookConfig', { body: { webhook_url: webhookUrl } }, opts)
  }

  async rotateWebhookSecret (opts?: CallOptions): Promise<Res<'postApiWebhookSecretRotate'>> {
    return await this.#call('postApiWebhookSecretRotate', {}, opts)
  }

  /** Re-schedules failed or dead-lettered deliveries (of every endpoint, or of `endpoint_id`). */
  async replayWebhook (body: ReplayRequest, opts?: CallOptions): Promise<Res<'postApiWebhookReplay'>> {
    return await this.#call('postApiWebhookReplay', { body }, opts)
  }

  // ── events ────────────────────────────────────────────────────────────────────────────────────

  /** Sends one event: answered after it is committed. Give it a dedup_id to make retries safe. */
  async sendEvent (event: EventInput, opts?: CallOptions): Promise<Res<'postApiEvents'>> {
    return await this.#call('postApiEvents', { body: event }, opts)
  }

  /** Sends one batch of 1–500 events (one request, one transaction); see sendEvents for longer arrays. */
  async sendBatch (events: readonly EventInput[], opts: CallOptions & { readonly atomic?: boolean } = {}): Promise<BatchResponse> {
    const { atomic, ...callOpts } = opts
    return await this.#call('postApiEventsBatch', { body: atomic === undefined ? { events } : { events, atomic } }, callOpts)
  }

  /**
   * Sends any number of events in batches of at most 500, one batch at a time, and sums the
   * results (`index` is the position in `events`). A batch that fails throws SendEventsError
   * holding what the batches before it stored.
   */
  async sendEvents (events: readonly EventInput[], opts: SendEventsOptions = {}): Promise<SendEventsResult> {
    const { batchSize = BATCH_MAX_EVENTS, ...batchOpts } = opts
    return await sendInBatches(events, batchSize, async batch => await this.sendBatch(batch, batchOpts))
  }

  /** A fresh delivery series for one event: every delivery, or only `endpoint_id`'s. */
  async redeliver (eventId: string, body?: RedeliverRequest, opts?: CallOptions): Promise<Res<'postApiEventsEventIdRedeliver'>> {
    return await this.#call('postApiEventsEventIdRedeliver', { params: { event_id: eventId }, body }, opts)
  }

  /** One delivery per endpoint the event was fanned out to. */
  async getEventDeliveries (eventId: string, opts?: CallOptions): Promise<Res<'getApiEventsEventIdDeliveries'>> {
    return await this.#call('getApiEventsEventIdDeliveries', { params: { event_id: eventId } }, opts)
  }

  /** One page of the event's attempt log, oldest first. */
  async listEventAttempts (eventId: string, query: Query<'getApiEventsEventIdAttempts'> = {}, opts?: CallOptions): Promise<Res<'getApiEventsEventIdAttempts'>> {
    return await this.#call('getApiEventsEventIdAttempts', { params: { event_id: eventId }, query }, opts)
  }

  /** Every attempt to deliver the event, oldest first, page by page. */
  eventAttempts (eventId: string, query: IterQuery<'getApiEventsEventIdAttempts'> = {}, opts?: CallOptions): AsyncGenerator<Attempt, void, undefined> {
    return paginate(async cursor => await this.listEventAttempts(eventId, { ...query, cursor }, opts), p => p.attempts)
  }

  // ── inbox ─────────────────────────────────────────────────────────────────────────────────────

  /** One page of the inbox, newest first. */
  async listInbox (query: Query<'getApiInbox'> = {}, opts?: CallOptions): Promise<Res<'getApiInbox'>> {
    return await this.#call('getApiInbox', { query }, opts)
  }

  /** Every event of the inbox (without `status`: those not yet delivered or acknowledged), newest first, page by page. */
  inbox (query: IterQuery<'getApiInbox'> = {}, opts?: CallOptions): AsyncGenerator<InboxEvent, void, undefined> {
    return paginate(async cursor => await this.listInbox({ ...query, cursor }, opts), p => p.events)
  }

  /** Acknowledges one event (idempotent). */
  async ack (eventId: string, opts?: CallOptions): Promise<Res<'postApiAckEventId'>> {
    return await this.#call('postApiAckEventId', { params: { event_id: eventId } }, opts)
  }

  /** Acknowledges any number of events, 1000 ids a request, and sums the answers. */
  async ackMany (eventIds: readonly string[], opts?: CallOptions): Promise<BatchAckResponse> {
    const sum: BatchAckResponse = { acknowledged: 0, not_found: [] }
    for (const ids of chunk(eventIds, ACK_MAX_IDS)) {
      const res = await this.#call('postApiAck', { body: { event_ids: ids } }, opts)
      sum.acknowledged += res.acknowledged
      sum.not_found.push(...res.not_found)
    }
    return sum
  }

  // ── endpoints ─────────────────────────────────────────────────────────────────────────────────

  /** Creates an endpoint; the answer holds its own signing secret. */
  async createEndpoint (body: CreateEndpointRequest, opts?: CallOptions): Promise<Res<'postApiEndpoints'>> {
    return await this.#call('postApiEndpoints', { body }, opts)
  }

  /** One page of endpoints, oldest first. */
  async listEndpoints (query: Query<'getApiEndpoints'> = {}, opts?: CallOptions): Promise<Res<'getApiEndpoints'>> {
    return await this.#call('getApiEndpoints', { query }, opts)
  }

  /** Every endpoint, oldest first, page by page. */
  endpoints (query: IterQuery<'getApiEndpoints'> = {}, opts?: CallOptions): AsyncGenerator<Endpoint, void, undefined> {
    return paginate(async cursor => await this.listEndpoints({ ...query, cursor }, opts), p => p.endpoints)
  }

  /** One endpoint with its backlog and health (`stats`). */
  async getEndpoint (endpointId: string, opts?: CallOptions): Promise<Res<'getApiEndpointsEndpointId'>> {
    return await this.#call('getApiEndpointsEndpointId', { params: { endpoint_id: endpointId } }, opts)
  }

  async updateEndpoint (endpointId: string, body: PatchEndpointRequest, opts?: CallOptions): Promise<Res<'patchApiEndpointsEndpointId'>> {
    return await this.#call('patchApiEndpointsEndpointId', { params: { endpoint_id: endpointId }, body }, opts)
  }

  async deleteEndpoint (endpointId: string, opts?: CallOptions): Promise<void> {
    await this.#call('deleteApiEndpointsEndpointId', { params: { endpoint_id: endpointId } }, opts)
  }

  async getEndpointSecret (endpointId: string, opts?: CallOptions): Promise<Res<'getApiEndpointsEndpointIdSecret'>> {
    return await this.#call('getApiEndpointsEndpointIdSecret', { params: { endpoint_id: endpointId } }, opts)
  }

  async rotateEndpointSecret (endpointId: string, opts?: CallOptions): Promise<Res<'postApiEndpointsEndpointIdSecretRotate'>> {
    return await this.#call('postApiEndpointsEndpointIdSecretRotate', { params: { endpoint_id: endpointId } }, opts)
  }

  /** Replays what the endpoint failed (`failed`, `dead_letter`) or missed (`missed`, needs `since`). */
  async replayEndpoint (endpointId: string, body: EndpointReplayRequest, opts?: CallOptions): Promise<Res<'postApiEndpointsEndpointIdReplay'>> {
    return await this.#call('postApiEndpointsEndpointIdReplay', { params: { endpoint_id: endpointId }, body }, opts)
  }

  /** One page of the endpoint's attempt log, newest first. */
  async listEndpointAttempts (endpointId: string, query: Query<'getApiEndpointsEndpointIdAttempts'> = {}, opts?: CallOptions): Promise<Res<'getApiEndpointsEndpointIdAttempts'>> {
    return await this.#call('getApiEndpointsEndpointIdAttempts', { params: { endpoint_id: endpointId }, query }, opts)
  }

  /** Every attempt to the endpoint matching the filters, newest first, page by page. */
  endpointAttempts (endpointId: string, query: IterQuery<'getApiEndpointsEndpointIdAttempts'> = {}, opts?: CallOptions): AsyncGenerator<Attempt, void, undefined> {
    return paginate(async cursor => await this.listEndpointAttempts(endpointId, { ...query, cursor }, opts), p => p.attempts)
  }

  /** Attempt outcomes and latency over [since, until) (default the last 24 hours). */
  async getEndpointStats (endpointId: string, query: Query<'getApiEndpointsEndpointIdStats'> = {}, opts?: CallOptions): Promise<Res<'getApiEndpointsEndpointIdStats'>> {
    return await this.#call('getApiEndpointsEndpointIdStats', { params: { endpoint_id: endpointId }, query }, opts)
  }

  /** One delivery attempt. */
  async getAttempt (attemptId: string, opts?: CallOptions): Promise<Res<'getApiAttemptsAttemptId'>> {
    return await this.#call('getApiAttemptsAttemptId', { params: { attempt_id: attemptId } }, opts)
  }

  // ── health and the document ───────────────────────────────────────────────────────────────────

  async health (opts?: CallOptions): Promise<Res<'getHealth'>> {
    return await this.#call('getHealth', {}, opts)
  }

  async live (opts?: CallOptions): Promise<Res<'getHealthLive'>> {
    return await this.#call('getHealthLive', {}, opts)
  }

  /** Readiness: `{status: 'not_ready', …}` (the service's 503) is returned, not thrown, and not retried. */
  async ready (opts?: CallOptions): Promise<Res<'getHealthReady'>> {
    return await this.#call('getHealthReady', {}, { retry: false, ...opts }, [503])
  }

  /** The service's OpenAPI 3.1 document. */
  async openApi (opts?: CallOptions): Promise<Res<'getOpenapiJson'>> {
    return await this.#call('getOpenapiJson', {}, opts)
  }
}

/**
 * The operation each method sends (test/client/generated.test.ts checks that every operation of
 * the document is here, except the two browser pages listed in BROWSER_PAGES).
 */
export const METHOD_OPERATIONS = {
  generateKey: 'postApiKeysGenerate',
  getKey: 'getApiKeys',
  rotateKey: 'postApiKeysRotate',
  configureWebhook: 'postApiWebhookConfig',
  rotateWebhookSecret: 'postApiWebhookSecretRotate',
  replayWebhook: 'postApiWebhookReplay',
  sendEvent: 'postApiEvents',
  sendBatch: 'postApiEventsBatch',
  sendEvents: 'postApiEventsBatch',
  redeliver: 'postApiEventsEventIdRedeliver',
  getEventDeliveries: 'getApiEventsEventIdDeliveries',
  listEventAttempts: 'getApiEventsEventIdAttempts',
  eventAttempts: 'getApiEventsEventIdAttempts',
  listInbox: 'getApiInbox',
  inbox: 'getApiInbox',
  ack: 'postApiAckEventId',
  ackMany: 'postApiAck',
  createEndpoint: 'postApiEndpoints',
  listEndpoints: 'getApiEndpoints',
  endpoints: 'getApiEndpoints',
  getEndpoint: 'getApiEndpointsEndpointId',
  updateEndpoint: 'patchApiEndpointsEndpointId',
  deleteEndpoint: 'deleteApiEndpointsEndpointId',
  getEndpointSecret: 'getApiEndpointsEndpointIdSecret',
  rotateEndpointSecret: 'postApiEndpointsEndpointIdSecretRotate',
  replayEndpoint: 'postApiEndpointsEndpointIdReplay',
  listEndpointAttempts: 'getApiEndpointsEndpointIdAttempts',
  endpointAttempts: 'getApiEndpointsEndpointIdAttempts',
  getEndpointStats: 'getApiEndpointsEndpointIdStats',
  getAttempt: 'getApiAttemptsAttemptId',
  health: 'getHealth',
  live: 'getHealthLive',
  ready: 'getHealthReady',
  openApi: 'getOpenapiJson',
} as const satisfies { readonly [M in keyof TriggersClient]?: OperationId }

/** Pages for a browser, not API calls: the client has no method for them. */
export const BROWSER_PAGES: readonly OperationId[] = ['getDocs', 'getDocsAssetsRedocStandaloneJs']
