// Regenerates the API types from openapi.yaml into a temporary file and fails when they differ from
// the checked-in src/api/generated/openapi.ts (which nobody edits by hand). `--write` updates it.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const target = path.join(root, 'src/api/generated/openapi.ts');
const dir = mkdtempSync(path.join(tmpdir(), 'api-types-'));
try {
  const fresh = path.join(dir, 'openapi.ts');
  execFileSync(process.execPath, [path.join(root, 'node_modules/openapi-typescript/bin/cli.js'), path.join(root, 'openapi.yaml'), '-o', fresh], { stdio: 'pipe' });
  const generated = readFileSync(fresh, 'utf8');
  if (process.argv.includes('--write')) {
    writeFileSync(target, generated);
    console.log(`wrote ${path.relative(root, target)}`);
  } else if (generated !== readFileSync(target, 'utf8')) {
    console.error(`${path.relative(root, target)} is out of date with openapi.yaml: run \`npm run gen:api-types\``);
    process.exit(1);
  } else {
    console.log(`${path.relative(root, target)} matches openapi.yaml`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
