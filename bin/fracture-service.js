#!/usr/bin/env node
// Entry point of the `fracture-service` command. It runs the TypeScript sources directly through tsx
// (no build step after `npm ci`) and turns off V8's baseline WebAssembly tier: with Liftoff on, the
// WASM backend's training steps stay up to 2x slower for many iterations (DESIGN.md section 5).
import v8 from 'node:v8';
import { register } from 'tsx/esm/api';

v8.setFlagsFromString('--no-liftoff');
register();
const { main } = await import('../src/cli/main.ts');
try {
  process.exitCode = await main(process.argv);
} catch (error) {
  // Printed here: left unhandled, the WASM backend's own handler would rethrow it with a page of
  // minified source around it.
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
}
