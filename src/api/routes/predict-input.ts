/**
 * Reads the images of a `POST /v1/predict` request, multipart or JSON, into bytes with request-local
 * ids (`images[0]`, … or the caller's own ids in JSON). Client file names are never read: they may
 * carry patient names, and they never reach a path, a log or a response.
 * @module
 */
import type {} from '@fastify/multipart';
import type { FastifyRequest } from 'fastify';
import { AppError } from '../../infra/errors.ts';
import type { PredictRequest } from '../ports.ts';

/** What a predict request asks for: the predictor port's request (model undefined: `production`). */
type PredictInput = PredictRequest;
type PredictImage = PredictRequest['images'][number];

export interface PredictInputLimits {
  /** Most images in one request. */
  maxFiles: number;
}

interface JsonPredictBody {
  images: { id?: string; data: string }[];
  model?: string;
  explain?: boolean;
}

interface PredictQuery {
  model?: string;
  explain?: boolean;
}

/** Canonical or URL-safe base64, optionally padded, whitespace allowed between lines. */
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

function decodeBase64(text: string, where: string): Uint8Array {
  const compact = text.replace(/\s+/g, '');
  if (compact.length === 0 || !BASE64.test(compact) || compact.length % 4 === 1) {
    throw new AppError('VALIDATION_FAILED', `${where}.data is not base64`);
  }
  return new Uint8Array(Buffer.from(compact, compact.includes('-') || compact.includes('_') ? 'base64url' : 'base64'));
}

function parseBooleanField(value: string, name: string): boolean {
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0' || value === '') return false;
  throw new AppError('VALIDATION_FAILED', `${name} must be true or false`);
}

/**
 * The multipart parser (busboy) rejects a malformed body (no closing boundary, broken part headers)
 * with a plain `Error` that has no code; left alone it would become a 500. Errors with a code (our
 * own, Fastify's limits such as `FST_PARTS_LIMIT`, socket errors) keep it.
 */
function asBodyError(error: unknown): unknown {
  if (error instanceof AppError) return error;
  if (error instanceof Error && typeof (error as NodeJS.ErrnoException).code !== 'string') {
    return new AppError('BODY_INVALID', 'the multipart body is malformed (e.g. cut short or without its closing boundary)', { cause: error });
  }
  return error;
}

async function readMultipart(request: FastifyRequest, limits: PredictInputLimits): Promise<PredictInput> {
  try {
    return await readMultipartParts(request, limits);
  } catch (error) {
    throw asBodyError(error);
  }
}

async function readMultipartParts(request: FastifyRequest, limits: PredictInputLimits): Promise<PredictInput> {
  const images: PredictImage[] = [];
  let model: string | undefined;
  let explain: boolean | undefined;
  for await (const part of request.parts()) {
    if (part.type === 'file') {
      if (part.fieldname !== 'image') {
        // Drain it so the parser can go on, then refuse the request.
        part.file.resume();
        // The field's name is the client's and may carry patient data: it is not repeated.
        throw new AppError('VALIDATION_FAILED', 'unexpected file field; send images in the field "image"');
      }
      if (images.length >= limits.maxFiles) throw new AppError('TOO_MANY_FILES', `at most ${limits.maxFiles} images per request`);
      const data = await part.toBuffer();
      images.push({ id: `images[${images.length}]`, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
    } else if (part.fieldname === 'model') {
      model = String(part.value);
    } else if (part.fieldname === 'explain') {
      explain = parseBooleanField(String(part.value), 'explain');
    } else {
      throw new AppError('VALIDATION_FAILED', 'unexpected field; accepted: image, model, explain');
    }
  }
  const query = request.query as PredictQuery;
  return { images, model: model ?? query.model, explain: explain ?? query.explain ?? false };
}

function readJson(request: FastifyRequest, limits: PredictInputLimits): PredictInput {
  // The body has already been validated against PredictJsonRequest (openapi.yaml).
  const body = request.body as JsonPredictBody;
  if (body.images.length > limits.maxFiles) throw new AppError('TOO_MANY_FILES', `at most ${limits.maxFiles} images per request`);
  const query = request.query as PredictQuery;
  const seen = new Set<string>();
  const images = body.images.map((image, index) => {
    const id = image.id ?? `images[${index}]`;
    if (seen.has(id)) throw new AppError('VALIDATION_FAILED', `images[${index}].id repeats an earlier id`);
    seen.add(id);
    return { id, data: decodeBase64(image.data, `images[${index}]`) };
  });
  return { images, model: body.model ?? query.model, explain: body.explain ?? query.explain ?? false };
}

/**
 * The request's images and options.
 * @throws AppError VALIDATION_FAILED (no image, bad base64, unknown field), TOO_MANY_FILES,
 *   UNSUPPORTED_MEDIA_TYPE (neither multipart nor JSON, or multipart without a boundary),
 *   BODY_INVALID (a malformed multipart body).
 */
export async function readPredictInput(request: FastifyRequest, limits: PredictInputLimits): Promise<PredictInput> {
  let input: PredictInput;
  if (request.isMultipart()) {
    // Without a boundary the body cannot be split into parts: the media type itself is unusable.
    if (!/;\s*boundary=/i.test(request.headers['content-type'] ?? '')) {
      throw new AppError('UNSUPPORTED_MEDIA_TYPE', 'multipart/form-data needs a boundary parameter');
    }
    input = await readMultipart(request, limits);
  } else if (request.headers['content-type']?.startsWith('application/json')) {
    input = readJson(request, limits);
  } else {
    throw new AppError('UNSUPPORTED_MEDIA_TYPE', 'send images as multipart/form-data (field "image") or as JSON { images: [{ data: base64 }] }');
  }
  if (input.images.length === 0) throw new AppError('VALIDATION_FAILED', 'no image in the request: send at least one');
  return input;
}
