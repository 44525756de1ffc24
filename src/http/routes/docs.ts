/**
 * GET /openapi.json and GET /docs: both built once per thread from http/openapi.ts and sent as
 * prebuilt strings. No auth, no rate limit. Listener threads only.
 */
import type { Ctx } from '../context.ts'
import { sendDocument } from '../reply.ts'
import { buildOpenApi, renderDocs } from '../openapi.ts'
import { VERSION } from '../../version.ts'

const doc = buildOpenApi(VERSION)
const json = JSON.stringify(doc)
const html = renderDocs(doc)

export function openapi (ctx: Ctx): void { sendDocument(ctx, 'application/json', json) }
export function docs (ctx: Ctx): void { sendDocument(ctx, 'text/html; charset=utf-8', html) }
