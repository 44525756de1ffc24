/** JSON Schema helpers for tests that validate bodies and examples against the OpenAPI document. */

export type Json = Record<string, unknown>

export function isObject (v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** A copy of a schema where every object schema with `properties` refuses other properties. */
export function closed (schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(closed)
  if (!isObject(schema)) return schema
  const out: Json = {}
  for (const [k, v] of Object.entries(schema)) out[k] = k === 'properties' && isObject(v) ? Object.fromEntries(Object.entries(v).map(([p, s]) => [p, closed(s)])) : closed(v)
  if (isObject(schema.properties) && !('additionalProperties' in schema)) out.additionalProperties = false
  return out
}
