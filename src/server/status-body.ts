// What counts as a Knocknoc /_status answer. An address that answers 200 is not a healthy node by
// that alone: something else may listen there, or a node may be broken. The body must be the
// node's JSON (CONTRACTS.md, "GET /_status"), read bounded, with the fields of the right types, and
// say versionMatch true, as HAProxy's check (`http-check expect rstring "versionMatch":true`) wants.
import type { StatusBody } from './http.js';

/** A /_status body is a few hundred bytes; past this, it is not one (and is not read further). */
export const MAX_STATUS_BODY_BYTES = 16 * 1024;

const isString = (v: unknown): v is string => typeof v === 'string';
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** The body as a Knocknoc /_status answer, or undefined when it is not one. */
export function parseStatusBody(text: string): StatusBody | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const b = value as Record<string, unknown>;
  const ok =
    (b.status === 'ok' || b.status === 'out-of-step' || b.status === 'error') &&
    isString(b.server) &&
    isString(b.version) &&
    isCount(b.schemaVersion) &&
    (b.databaseSchemaVersion === null || isCount(b.databaseSchemaVersion)) &&
    typeof b.versionMatch === 'boolean' &&
    (b.database === 'ok' || b.database === 'unreachable') &&
    (b.databaseHost === undefined || b.databaseHost === null || isString(b.databaseHost)) &&
    isCount(b.uptimeSeconds);
  return ok ? (b as unknown as StatusBody) : undefined;
}

/** Serving as a load balancer sees it: 200, a Knocknoc answer, in step with its database. */
export function isServing(reply: { http: number | undefined; body: StatusBody | undefined }): boolean {
  return reply.http === 200 && reply.body !== undefined && reply.body.status === 'ok' && reply.body.versionMatch;
}
