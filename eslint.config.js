// Lint: the recommended JavaScript and TypeScript rules, plus the layering rule of STYLE.md
// (src/ml knows nothing of HTTP, queues, src/api or src/workers).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/**', 'data/**', 'dist/**', 'coverage/**', 'test-artifacts/**', 'bench/results/**', 'src/api/generated/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  {
    files: ['src/ml/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['fastify', 'fastify/*', '@fastify/*', 'bullmq', 'ioredis'], message: 'src/ml must not depend on HTTP or queues.' },
          { group: ['**/api/**', '**/workers/**'], message: 'src/ml must not import from src/api or src/workers.' },
        ],
      }],
    },
  },
  {
    files: ['src/services/**/*.ts', 'src/serving/**/*.ts', 'src/infra/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['**/api/**'], message: 'services and infrastructure must not depend on the HTTP layer.' },
          { group: ['**/workers/**'], message: 'services and infrastructure must not depend on the workers.' },
        ],
      }],
    },
  },
  {
    files: ['src/workers/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ group: ['fastify', 'fastify/*', '@fastify/*', '**/api/**'], message: 'workers must not depend on the HTTP layer.' }],
      }],
    },
  },
);
