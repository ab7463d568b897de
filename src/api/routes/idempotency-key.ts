/**
 * The contract's `Idempotency-Key` request header (`POST /v1/experiments`, `POST /v1/predictions`).
 * @module
 */
import { AppError } from '../../infra/errors.ts';

/** 1-128 visible ASCII characters. */
const IDEMPOTENCY_KEY = /^[\x21-\x7E]{1,128}$/;

/**
 * The `Idempotency-Key` header, validated (undefined when absent).
 * @throws AppError `VALIDATION_FAILED` for a repeated header or one outside the contract. The detail
 *   never repeats the key: clients may put anything in it.
 */
export function idempotencyKeyOf(headers: Readonly<Record<string, string | string[] | undefined>>): string | undefined {
  const value = headers['idempotency-key'];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !IDEMPOTENCY_KEY.test(value)) {
    throw new AppError('VALIDATION_FAILED', 'the Idempotency-Key header must be one value of 1-128 visible ASCII characters (0x21-0x7E)', {
      extensions: { errors: [{ path: 'headers/idempotency-key', message: 'must be 1-128 visible ASCII characters' }] },
    });
  }
  return value;
}
