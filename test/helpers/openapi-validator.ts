/**
 * Validates responses against openapi.yaml with a JSON Schema 2020-12 validator (the dialect of
 * OpenAPI 3.1), independently of the server's own draft-07 validator, so a response the server
 * serialised can still fail the contract here.
 * @module
 */
import assert from 'node:assert/strict';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { dereference, loadSpec, operationRoutes } from '../../src/api/openapi/spec.ts';

const ajv = new Ajv2020({ allErrors: true, strict: false });
addFormats.default(ajv);
ajv.addFormat('binary', true);

const document = loadSpec();
const compiled = new Map<string, ValidateFunction>();

interface ResponseObject {
  content?: Record<string, { schema?: unknown }>;
}

function responseSchema(operationId: string, status: number, mediaType: string): unknown {
  for (const [, pathItem] of Object.entries(document.paths)) {
    for (const operation of Object.values(pathItem)) {
      if (operation.operationId !== operationId) continue;
      const responses = (operation.responses ?? {}) as Record<string, ResponseObject>;
      const response = dereference(responses[String(status)] ?? responses.default, document);
      if (!response) throw new Error(`${operationId}: no response ${status} and no default in openapi.yaml`);
      const media = response.content?.[mediaType];
      if (!media) throw new Error(`${operationId} ${status}: openapi.yaml declares no ${mediaType} content`);
      return media.schema ?? {};
    }
  }
  throw new Error(`no operation ${operationId} in openapi.yaml`);
}

/** Asserts that `body` (parsed JSON) matches the spec's schema for the operation and status. */
export function assertMatchesSpec(operationId: string, status: number, body: unknown, mediaType = status >= 400 ? 'application/problem+json' : 'application/json'): void {
  const key = `${operationId} ${status} ${mediaType}`;
  let validate = compiled.get(key);
  if (!validate) {
    validate = ajv.compile(responseSchema(operationId, status, mediaType) as object);
    compiled.set(key, validate);
  }
  const valid = validate(body);
  assert.ok(valid, `${key} does not match openapi.yaml: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(body).slice(0, 500)}`);
}

/** Every operation id of the spec. */
export function specOperationIds(): string[] {
  return operationRoutes().map((route) => route.operationId);
}
