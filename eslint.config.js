// Lint (make check): eslint's and typescript-eslint's recommended rules. Not the type-aware ones:
// they build a whole TypeScript program per run — no-floating-promises alone took 8 s here (and
// found nothing), on top of the `tsc --noEmit` that make check already runs. Each rule changed or
// switched off below says why.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'dist-lib/', '.runtime/', 'demo-ca/', '.demo/', 'bench/out/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    // Node's globals for the two plain .js/.mjs files (TypeScript files leave undefined names to tsc).
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'module',
      globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly' },
    },
    rules: {
      // `_name` marks a parameter a signature needs but the body does not; `catch {}` needs no name.
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      // A `let` that a cleanup closure declared earlier reads is assigned once, later (scripts/demo.mts).
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
    },
  },
  {
    // yargs hands command handlers loosely typed args (CommandModule<…, any>), and tests and benches
    // read JSON replies whose shape the assertions check; in lib/ an `any` is a hole and stays refused.
    files: ['scripts/**', 'test/**', 'bench/**', 'examples/**'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
);
