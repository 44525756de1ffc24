/**
 * @triggers-api/client: a typed client for the Triggers API.
 *
 *   import { TriggersClient, verifyWebhook, isApiError } from '@triggers-api/client'
 *   const client = new TriggersClient({ baseUrl: 'http://localhost:8080', apiKey: process.env.TRIGGERS_API_KEY })
 *   await client.sendEvent({ type: 'order.created', payload: { order_id: 42 }, dedup_id: 'order-42' })
 */
export { TriggersClient, METHOD_OPERATIONS, BROWSER_PAGES, type ClientOptions, type SendEventsOptions } from './client.js'
export { type CallOptions, type RetryOptions, type RetryInfo, parseRetryAfter, safeToRepeat } from './request.js'
export {
  TriggersError, TriggersApiError, TriggersHttpError, TriggersConnectionError, isApiError, isKnownCode,
  type AnyTriggersApiError, type ErrorContext, type ResponseFacts,
} from './errors.js'
export { BATCH_MAX_EVENTS, ACK_MAX_IDS, SendEventsError, chunk, type EventInput, type SendEventsResult } from './batch.js'
export { paginate, type CursorPage } from './pages.js'
export { verifyWebhook, WebhookVerificationError, type WebhookEvent, type HeaderSource } from './webhooks.js'
export * from './generated/api.js'
