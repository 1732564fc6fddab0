// Lint catches real mistakes (floating promises are lint-free here on purpose: the type checker
// and tests cover them); formatting belongs to prettier.
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**', 'charts/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'warn',
    },
  },
  {
    files: ['src/raft/**/*.ts'],
    rules: {
      // The Raft core is a pure state machine: time and randomness come in from outside.
      'no-restricted-properties': [
        'error',
        { object: 'Date', property: 'now', message: 'src/raft is pure: time comes in through tick().' },
        {
          object: 'Math',
          property: 'random',
          message: 'src/raft is pure: randomness comes in through config.',
        },
      ],
      'no-restricted-imports': ['error', { patterns: ['node:*', '../*/**', '../../*'] }],
    },
  },
);
