// @ts-check
/**
 * autocannon `setupRequest` for the ingest scenarios (1 and 7). CommonJS on purpose: in autocannon's
 * `workers` mode each worker thread `require()`s this file by absolute path (functions cannot be
 * passed to worker threads), and plain Node must load it without tsx. The run's parameters travel in
 * the request object itself (autocannon hands every field of the request spec to setupRequest):
 *   benchKeys     API keys, rotated per request (32 enterprise organizations)
 *   benchPayloads ~150-byte JSON payloads, rotated per request
 *   benchPrefix   a prefix unique to the run; the dedup_id is `<prefix><threadId>-<n>`, unique per
 *                 request across all autocannon threads, and the prefix lets the bench count the
 *                 stored rows of exactly this run afterwards.
 * Keep the body format in step with eventBody() in payload.ts.
 */
'use strict'
const { threadId } = require('node:worker_threads')

let n = 0

/**
 * @param {{ headers: Record<string, string>, body?: string, benchKeys: string[], benchPayloads: string[], benchPrefix: string }} req
 */
module.exports = function setupRequest (req) {
  const i = n++
  req.headers['x-api-key'] = /** @type {string} */ (req.benchKeys[i % req.benchKeys.length])
  req.body = '{"type":"order.created","dedup_id":"' + req.benchPrefix + threadId + '-' + i +
    '","payload":' + req.benchPayloads[i % req.benchPayloads.length] + '}'
  return req
}
