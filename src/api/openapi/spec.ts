/**
 * `openapi.yaml` loaded once, with every local `$ref` inlined, and its operations turned into the
 * route descriptions Fastify needs: method, path, scope and the JSON schemas that validate requests
 * and serialise responses (DESIGN section 2). Nothing here knows about handlers.
 * @module
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import type { operations } from '../generated/openapi.ts';

/** Where the contract lives: the repository root. */
export const SPEC_FILE = fileURLToPath(new URL('../../../openapi.yaml', import.meta.url));

export type OperationId = keyof operations;
export type Scope = 'predict' | 'train' | 'admin';
export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH';

type JsonSchema = Record<string, unknown>;

/** One operation of the spec, ready to become a Fastify route. */
export interface OperationRoute {
  operationId: OperationId;
  method: HttpMethod;
  /** The spec's path (`/v1/models/{modelId}`). */
  specPath: string;
  /** The same path in Fastify's syntax (`/v1/models/:modelId`). */
  url: string;
  /** Scope an API key needs (`x-scope`); absent for open operations (`security: []`). */
  scope: Scope | undefined;
  /** Media types the request body may have; empty when the operation takes no body. */
  requestMediaTypes: string[];
  /** Fastify route schema: params, querystring, JSON body and JSON 2xx responses. */
  schema: {
    params?: JsonSchema;
    querystring?: JsonSchema;
    body?: JsonSchema;
    response?: Record<string, JsonSchema>;
  };
}

interface ParameterObject {
  name: string;
  in: 'path' | 'query' | 'header' | 'cookie';
  required?: boolean;
  schema?: JsonSchema;
  description?: string;
}

interface OperationObject {
  operationId?: string;
  security?: unknown[];
  'x-scope'?: Scope;
  parameters?: ParameterObject[];
  requestBody?: { content?: Record<string, { schema?: JsonSchema }> };
  responses?: Record<string, { content?: Record<string, { schema?: JsonSchema }> }>;
}

export interface OpenApiDocument {
  openapi: string;
  paths: Record<string, Record<string, OperationObject>>;
  components: { schemas: Record<string, JsonSchema> };
  [key: string]: unknown;
}

let cachedDocument: OpenApiDocument | undefined;

/** The spec as parsed YAML (with `$ref`s), e.g. for `/docs`. Read from disk once per process. */
export function loadSpec(): OpenApiDocument {
  cachedDocument ??= parse(readFileSync(SPEC_FILE, 'utf8')) as OpenApiDocument;
  return cachedDocument;
}

/**
 * `value` with every `$ref: '#/...'` replaced by a copy of its target, so each route schema stands
 * alone (Fastify's validator and serialiser then need no shared-schema registry).
 * @throws Error on a reference that does not resolve or that refers to itself.
 */
export function dereference<T>(value: T, document: OpenApiDocument, seen: readonly string[] = []): T {
  if (Array.isArray(value)) return value.map((item: unknown) => dereference(item, document, seen)) as T;
  if (value === null || typeof value !== 'object') return value;
  const object = value as Record<string, unknown>;
  const ref = object.$ref;
  if (typeof ref === 'string') {
    if (!ref.startsWith('#/')) throw new Error(`openapi.yaml: only local references are supported, got ${ref}`);
    if (seen.includes(ref)) throw new Error(`openapi.yaml: circular reference ${[...seen, ref].join(' -> ')}`);
    let target: unknown = document;
    for (const segment of ref.slice(2).split('/')) {
      target = (target as Record<string, unknown> | undefined)?.[segment.replaceAll('~1', '/').replaceAll('~0', '~')];
    }
    if (target === undefined) throw new Error(`openapi.yaml: unresolved reference ${ref}`);
    // Siblings of $ref (e.g. a description) are kept over the target's own.
    const { $ref: _ref, ...siblings } = object;
    return { ...(dereference(target, document, [...seen, ref]) as object), ...siblings } as T;
  }
  const result: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(object)) result[key] = dereference(child, document, seen);
  return result as T;
}

const HTTP_METHODS = ['get', 'post', 'put', 'delete', 'patch'] as const;

/** Keywords of OpenAPI schema objects that JSON Schema validators do not know. */
const OPENAPI_ONLY_KEYWORDS = new Set(['example', 'examples', 'xml', 'externalDocs', 'discriminator']);

function toJsonSchema(schema: JsonSchema): JsonSchema {
  const cleaned: JsonSchema = {};
  for (const [key, value] of Object.entries(schema)) {
    if (OPENAPI_ONLY_KEYWORDS.has(key) || key.startsWith('x-')) continue;
    if (key === 'properties' && value && typeof value === 'object') {
      cleaned[key] = Object.fromEntries(Object.entries(value as Record<string, JsonSchema>).map(([name, child]) => [name, toJsonSchema(child)]));
    } else if ((key === 'items' || key === 'additionalProperties') && value && typeof value === 'object') {
      cleaned[key] = toJsonSchema(value as JsonSchema);
    } else {
      cleaned[key] = value;
    }
  }
  return cleaned;
}

function parametersSchema(parameters: readonly ParameterObject[], location: 'path' | 'query'): JsonSchema | undefined {
  const selected = parameters.filter((parameter) => parameter.in === location);
  if (selected.length === 0) return undefined;
  return {
    type: 'object',
    properties: Object.fromEntries(selected.map((parameter) => [parameter.name, toJsonSchema(parameter.schema ?? {})])),
    required: selected.filter((parameter) => parameter.required === true || location === 'path').map((parameter) => parameter.name),
    // Unknown query parameters are refused, so a typo (`?explian=true`) is not silently ignored.
    additionalProperties: location === 'path',
  };
}

/**
 * The JSON body schema; for routes that also take other media types (multipart, zip) it is keyed by
 * content type, so Fastify validates JSON bodies only and leaves the others to their handlers.
 */
function bodySchema(schema: JsonSchema, mediaTypes: readonly string[]): JsonSchema {
  if (mediaTypes.length === 1) return schema;
  return { content: { 'application/json': { schema } } };
}

/** Every operation of the spec as a route description, in spec order. */
export function operationRoutes(document: OpenApiDocument = loadSpec()): OperationRoute[] {
  const routes: OperationRoute[] = [];
  for (const [specPath, pathItem] of Object.entries(document.paths)) {
    for (const method of HTTP_METHODS) {
      const rawOperation = pathItem[method];
      if (!rawOperation) continue;
      const operation = dereference(rawOperation, document);
      if (!operation.operationId) throw new Error(`openapi.yaml: ${method.toUpperCase()} ${specPath} has no operationId`);
      const parameters = operation.parameters ?? [];
      const content = operation.requestBody?.content ?? {};
      const jsonBody = content['application/json']?.schema;
      const response: Record<string, JsonSchema> = {};
      for (const [status, definition] of Object.entries(operation.responses ?? {})) {
        const schema = definition.content?.['application/json']?.schema;
        if (/^2\d\d$/.test(status) && schema) response[status] = toJsonSchema(schema);
      }
      const params = parametersSchema(parameters, 'path');
      const querystring = parametersSchema(parameters, 'query');
      routes.push({
        operationId: operation.operationId as OperationId,
        method: method.toUpperCase() as HttpMethod,
        specPath,
        url: specPath.replace(/\{([^}]+)\}/g, ':$1'),
        scope: operation.security?.length === 0 ? undefined : (operation['x-scope'] ?? 'admin'),
        requestMediaTypes: Object.keys(content),
        schema: {
          ...(params ? { params } : {}),
          ...(querystring ? { querystring } : {}),
          ...(jsonBody ? { body: bodySchema(toJsonSchema(jsonBody), Object.keys(content)) } : {}),
          ...(Object.keys(response).length > 0 ? { response } : {}),
        },
      });
    }
  }
  return routes;
}

/** The codes the spec's `ProblemCode` enum lists. */
export function specProblemCodes(document: OpenApiDocument = loadSpec()): string[] {
  const schema = document.components.schemas.ProblemCode as { enum?: string[] } | undefined;
  return [...(schema?.enum ?? [])];
}
