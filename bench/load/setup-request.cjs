// @ts-check
/**
 * autocannon `setupRequest` for the closed-loop ingest scenarios (1, 7, 9, 11, 13). CommonJS on
 * purpose: in autocannon's `workers` mode each worker thread `require()`s this file by absolute path
 * (functions cannot be passed to worker threads), and plain Node must load it without tsx. The run's
 * parameters travel in the request object itself (autocannon hands every field of the request spec to
 * setupRequest):
 *   benchKeys     API keys, rotated per request
 *   benchPayloads ~150-byte JSON payloads, rotated per event
 *   benchPrefix   a prefix unique to the run; the dedup_id is `<prefix><threadId>-<n>`, unique per
 *                 event across all autocannon threads, and the prefix lets the bench count the
 *                 stored rows of exactly this run afterwards.
 *   benchBatch    0: one event per request (POST /api/events); N > 0: `{"events":[N events]}`
 *                 (POST /api/events/batch), each event with its own dedup_id.
 * Keep the body format in step with eventBody() and batchBody() in payload.ts.
 */
'use strict'
const { threadId } = require('node:worker_threads')

let n = 0

/**
 * @param {{ headers: Record<string, string>, body?: string, benchKeys: string[], benchPayloads: string[], benchPrefix: string, benchBatch?: number }} req
 */
module.exports = function setupRequest (req) {
  const i = n++
  req.headers['x-api-key'] = /** @type {string} */ (req.benchKeys[i % req.benchKeys.length])
  const batch = req.benchBatch ?? 0
  if (batch === 0) {
    req.body = '{"type":"order.created","dedup_id":"' + req.benchPrefix + threadId + '-' + i +
      '","payload":' + req.benchPayloads[i % req.benchPayloads.length] + '}'
    return req
  }
  let body = '{"events":['
  for (let k = 0; k < batch; k++) {
    const j = i * batch + k
    body += (k === 0 ? '' : ',') + '{"type":"order.created","dedup_id":"' + req.benchPrefix + threadId + '-' + j +
      '","payload":' + req.benchPayloads[j % req.benchPayloads.length] + '}'
  }
  req.body = body + ']}'
  return req
}
